"""The connection pool on PostgreSQL: a connection back from idle is pinged before use (a node
restarted or failed over meanwhile: the request gets a new connection and never sees it); one in
steady use is not pinged (a round trip in ten of a booking), and if it died meanwhile its
request fails with an error the unit of work answers as a retryable 503."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from teeka import db as teeka_db


async def _pid(engine) -> int:
    async with engine.connect() as c:
        return int((await c.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(admin, pid: int) -> None:
    async with admin.connect() as c:
        await c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(50):
            gone = (await c.execute(text("SELECT count(*) = 0 FROM pg_stat_activity "
                                         "WHERE pid = :pid"), {"pid": pid})).scalar_one()
            if gone:
                return
            await asyncio.sleep(0.05)


@pytest.mark.postgres_only
async def test_a_connection_back_from_idle_is_pinged_first(settings, monkeypatch) -> None:
    engine = teeka_db.make_engine(settings.model_copy(update={"db_pool_size": 1}))
    admin = teeka_db.make_engine(settings.model_copy(update={"db_pool_size": 1}))
    try:
        first = await _pid(engine)
        # in steady use (back within IDLE_PING_S): no ping, so a connection that died is met
        monkeypatch.setattr(teeka_db, "IDLE_PING_S", 1e9)
        await _kill(admin, first)
        with pytest.raises(DBAPIError) as failed:
            await _pid(engine)
        assert failed.value.connection_invalidated  # the unit of work answers this with 503
        second = await _pid(engine)  # the pool connected again
        assert second != first
        # back from idle: pinged, replaced, and the request never sees it
        monkeypatch.setattr(teeka_db, "IDLE_PING_S", 0.0)
        await _kill(admin, second)
        third = await _pid(engine)
        assert third not in (first, second)
    finally:
        await engine.dispose()
        await admin.dispose()
