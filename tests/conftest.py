"""Real databases built by the migrations, real HTTP through the app.

TEEKA_TEST_DATABASE_URL picks the engine: unset means a fresh SQLite file; a PostgreSQL URL
gets a fresh database of that name created (and dropped after the run).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.app import create_app
from teeka.config import Settings
from teeka.db import Base, session_scope
from teeka.kit import clock
from tests.factories import running_server

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    url = os.environ.get("TEEKA_TEST_DATABASE_URL", "")
    if url:
        return url
    return "sqlite+aiosqlite:///" + str(Path(tempfile.mkdtemp(prefix="teeka-test-")) / "t.sqlite3")


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    m = re.match(r"postgresql\+asyncpg://([^@/]+)@([^:/]+):?(\d+)?/(\w+)", url)
    assert m, url
    conn = await asyncpg.connect(user=m[1], host=m[2], port=int(m[3] or 5432), database="postgres")
    try:
        await conn.execute(sql.format(db=m[4]))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = _database_url()
    if is_postgres(url):
        asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        asyncio.run(_pg_admin(url, 'CREATE DATABASE "{db}"'))
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "head")
    yield url
    if is_postgres(url):
        asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 20,
                    data_dir=tmp_path_factory.mktemp("var"), embedded_worker=False,
                    otp_resend_interval_seconds=0, environment="development", db_pool_size=20,
                    # the races put a hundred requests at once on one process; the database's
                    # door has its own test (tests/surge/test_shedding.py)
                    db_max_waiting=1000,
                    # limits have their own tests (tests/surge/test_limits.py)
                    limit_public="100000/minute", limit_otp="100000/minute",
                    limit_otp_client="100000/minute",
                    limit_search="100000/minute", limit_booking="100000/minute")


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    yield application
    await application.state.engine.dispose()
    if application.state.room_engine is not None:
        await application.state.room_engine.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test") as c:
        yield c


@pytest.fixture
async def db(app: object) -> AsyncIterator[AsyncSession]:
    """A unit of work for test set-up, committed at the end of the `async with`."""
    async with session_scope(app.state.sessionmaker) as session:  # type: ignore[attr-defined]
        yield session


@pytest.fixture(autouse=True)
async def _clean(app: object) -> AsyncIterator[None]:
    clock.reset()
    yield
    clock.reset()
    async with session_scope(app.state.sessionmaker) as session:  # type: ignore[attr-defined]
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(delete(table))
    app.state.snapshots.clear()  # type: ignore[attr-defined]
    from teeka.surge.limits import Limiter

    app.state.limiter = Limiter(app.state.settings)  # type: ignore[attr-defined]
    from teeka.surge.store import MemoryStore

    app.state.waiting_room.reset(MemoryStore())  # type: ignore[attr-defined]


# Fail the run when anything was skipped and TEEKA_NO_SKIPS=1 (CI): nothing CI can run may hide.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("TEEKA_NO_SKIPS") == "1" and _skipped:
        print(f"\nTEEKA_NO_SKIPS: {len(_skipped)} test(s) were skipped: {_skipped[:5]}")
        session.exitstatus = 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests are not collected on SQLite (deselected, not skipped)."""
    if is_postgres(os.environ.get("TEEKA_TEST_DATABASE_URL", "")):
        return
    keep = [i for i in items if "concurrency" not in i.nodeid.split("/")
            and i.get_closest_marker("postgres_only") is None]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
async def world(app: object, settings: Settings) -> object:
    from tests.factories import make_world

    return await make_world(app.state.sessionmaker, settings)  # type: ignore[attr-defined]


@pytest.fixture
def maker(app: object) -> object:
    return app.state.sessionmaker  # type: ignore[attr-defined]


# ---------------------------------------------------------------- a live server in its own process
# A real Teeka server, migrated and loaded with the demo data, for tests written as a third-party
# client or a person in a browser would act (plain HTTP only).

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TEEKA_TEST_DATABASE_URL", "")
    tmp = tmp_path_factory.mktemp("live")
    if is_postgres(base):
        url = base.rsplit("/", 1)[0] + "/" + base.rsplit("/", 1)[1] + "_live"
        asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        asyncio.run(_pg_admin(url, 'CREATE DATABASE "{db}"'))
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'live.sqlite3'}"
    env = {**os.environ, "TEEKA_DATABASE_URL": url, "TEEKA_SECRET_KEY": "live-" + "s" * 30,
           "TEEKA_ENVIRONMENT": "development", "TEEKA_DATA_DIR": str(tmp),
           "TEEKA_OTP_RESEND_INTERVAL_SECONDS": "0", "TEEKA_LOG_LEVEL": "WARNING",
           "TEEKA_LIMIT_PUBLIC": "100000/minute", "TEEKA_LIMIT_OTP": "100000/minute",
           "TEEKA_LIMIT_OTP_CLIENT": "100000/minute",
           "TEEKA_LIMIT_SEARCH": "100000/minute", "TEEKA_LIMIT_BOOKING": "100000/minute"}
    teeka = str(Path(sys.executable).parent / "teeka")
    for cmd in (["db", "upgrade"], ["demo"]):
        subprocess.run([teeka, *cmd], env=env, check=True, capture_output=True, timeout=300)
    try:
        with running_server(env) as base_url:
            yield base_url
    finally:
        if is_postgres(base):
            asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


@pytest.fixture
def still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time stands still but for `clock.shift()`: for a test that counts what happens at a rate
    (the waiting room's admissions), which real time passing between requests would add to on a
    slow machine."""
    base = clock.now()
    monkeypatch.setattr(clock, "now", lambda: base + clock._offset)
