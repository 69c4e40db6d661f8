"""An acknowledged booking is a committed booking: if the commit fails, the client gets a
retryable refusal, never a 2xx (the unit of work ends before the response is sent)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from teeka.db import session_scope
from teeka.models import Appointment
from tests.factories import bulk_citizens, publish


class _SerializationFailure(Exception):
    sqlstate = "40001"


async def test_a_failed_commit_is_never_acknowledged(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    (h, ref), = await bulk_citizens(maker, settings, 1)

    def fail_booking_commits(session: Session) -> None:
        if session.info.get("capacity_changed"):
            raise OperationalError("COMMIT", {}, _SerializationFailure())

    event.listen(Session, "before_commit", fail_booking_commits)
    try:
        r = await client.post("/api/v1/appointments",
                              headers={**h, "Idempotency-Key": "ack-000001"},
                              json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                    "beneficiaries": [ref]})
    finally:
        event.remove(Session, "before_commit", fail_booking_commits)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] and r.json()["code"] == "Busy"
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(Appointment))).scalar() == 0
    # the retry with the same key now books, once
    r = await client.post("/api/v1/appointments", headers={**h, "Idempotency-Key": "ack-000001"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": [ref]})
    assert r.status_code == 201


async def test_the_commit_happens_before_the_response_starts(app, world, maker, settings) -> None:
    """Raw ASGI: record when the booking's commit ends and when the response starts."""
    import json

    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    (h, ref), = await bulk_citizens(maker, settings, 1)
    events: list[str] = []

    def committed(session: Session) -> None:
        if session.info.get("capacity_changed"):
            events.append("commit")

    body = json.dumps({"session_id": sid, "slot": "09:00AM-11:00AM",
                       "beneficiaries": [ref]}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/v1/appointments", "raw_path": b"/api/v1/appointments",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("teeka.test", 80),
             "headers": [(b"host", b"teeka.test"), (b"content-type", b"application/json"),
                         (b"authorization", h["Authorization"].encode()),
                         (b"idempotency-key", b"order-00001"),
                         (b"content-length", str(len(body)).encode())]}
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        import asyncio

        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            events.append(f"response {message['status']}")

    event.listen(Session, "after_commit", committed)
    try:
        await app(scope, receive, send)
    finally:
        event.remove(Session, "after_commit", committed)
    assert events[-1] == "response 201" and "commit" in events, events  # nothing after


@pytest.mark.postgres_only
async def test_every_acknowledged_write_waits_for_the_standby(client, world, maker,
                                                              settings) -> None:
    """On PostgreSQL the commit of a write request must write WAL (so that, with synchronous
    replication, it waits for a standby): a booking writes rows; its idempotent replay writes
    nothing, so the unit of work adds a WAL mark; the booking itself needs none."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    (h, ref), = await bulk_citizens(maker, settings, 1)
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    engine = maker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        body = {"session_id": sid, "slot": "09:00AM-11:00AM", "beneficiaries": [ref]}
        first = await client.post("/api/v1/appointments",
                                  headers={**h, "Idempotency-Key": "wal-000001"}, json=body)
        booked, seen[:] = list(seen), []
        again = await client.post("/api/v1/appointments",
                                  headers={**h, "Idempotency-Key": "wal-000001"}, json=body)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert not any("pg_logical_emit_message" in s for s in booked)
    assert any("pg_logical_emit_message" in s for s in seen)


@pytest.mark.postgres_only
async def test_a_commit_the_standby_may_not_have_is_never_acknowledged(maker) -> None:
    """When a commit's wait for a synchronous standby is cancelled, PostgreSQL still commits
    locally and says so only in a WARNING sent with the COMMIT's answer: the unit of work must
    hear it and refuse (Busy, the client retries with its key) instead of acknowledging. Here a
    deferred trigger sends PostgreSQL's very words during the COMMIT (a real cancelled wait
    needs a standby: make drill); a unit of work without them commits as usual."""
    from sqlalchemy import text

    from teeka.errors import Busy

    async def unit_of_work(warn: bool) -> None:
        async with session_scope(maker) as db:
            await db.execute(text("CREATE TEMP TABLE ack_probe (id int) ON COMMIT DROP"))
            await db.execute(text(
                "CREATE OR REPLACE FUNCTION pg_temp.ack_probe_warn() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN RAISE WARNING 'canceling wait for synchronous"
                " replication due to user request' USING DETAIL = 'The transaction has already"
                " committed locally, but might not have been replicated to the standby.';"
                " RETURN NULL; END $$"))
            if warn:
                await db.execute(text(
                    "CREATE CONSTRAINT TRIGGER ack_probe_at_commit AFTER INSERT ON ack_probe"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                    " EXECUTE FUNCTION pg_temp.ack_probe_warn()"))
            await db.execute(text("INSERT INTO ack_probe VALUES (1)"))

    await unit_of_work(warn=False)
    with pytest.raises(Busy):
        await unit_of_work(warn=True)
    await unit_of_work(warn=False)  # the connection's next unit of work is not refused


async def test_a_unit_of_work_ends_without_a_task_of_its_own(maker) -> None:
    """Closing a unit of work after its commit or rollback awaits nothing: it must not start a
    task (SQLAlchemy's `async with` does, and under load the task and its shield cost three
    turns of the event loop, tens of milliseconds, on every request)."""
    import asyncio

    from teeka.errors import NotFound

    loop = asyncio.get_running_loop()
    started: list[object] = []
    before = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: object, **kwargs: object) -> object:
        started.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)  # type: ignore[arg-type]

    try:
        async with session_scope(maker) as db:  # committed
            await db.execute(select(func.count()).select_from(Appointment))
            loop.set_task_factory(factory)  # type: ignore[arg-type]
        with pytest.raises(NotFound):  # rolled back
            async with session_scope(maker) as db:
                await db.execute(select(func.count()).select_from(Appointment))
                raise NotFound()
    finally:
        loop.set_task_factory(before)
    assert started == []
