"""The servers on the operators' watch (teeka.watch.beat, teeka.watch.signals): every process
reports what it counted over the last minute, and the watch adds them up: people refused with
503, unexpected errors, a saturated event loop, no outbox worker, a process that stopped
reporting without shutting down (and one that was restarted), through the API, the page and
the pager; real `teeka serve` and `teeka worker` processes report themselves."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry, OutboxMessage, ServerBeat
from teeka.surge.shedding import watch_loop_lag
from teeka.watch.beat import Beat
from teeka.watch.pager import page_on_call
from tests.factories import app_with, running_server
from tests.staff import by_id, csrf_of, staff_client
from tests.watch.test_pager import on_call


async def _watch(client, world) -> dict:
    r = await client.get("/api/v1/watch", headers=world.headers("state"))
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_servers_report_is_added_up_and_no_worker_is_trouble(
        client, world, maker) -> None:
    web = Beat("web", runs_worker=False)
    await web.write(maker)  # the start of its window
    assert (await _watch(client, world))["trouble"] == ["no_worker"]
    for _ in range(3):
        assert (await client.get("/api/v2/admin/location/districts/7")).status_code == 200
    await web.write(maker)
    found = await _watch(client, world)
    [server] = found["servers"]
    assert server["kind"] == "web" and server["pid"] == os.getpid()
    assert server["requests"] >= 3 and server["failed"] == 0 and not server["saturated"]
    assert found["trouble"] == ["no_worker"]  # nobody delivers SMS or pages
    await Beat("worker", runs_worker=True).write(maker)
    found = await _watch(client, world)
    assert found["trouble"] == [] and len(found["servers"]) == 2
    # a process that shuts down says so, and is neither listed nor silent
    await web.stop(maker)
    clock.shift(timedelta(minutes=5))
    found = await _watch(client, world)
    assert found["servers"] == [] and found["servers_silent"] != []  # the worker went quiet
    assert [s["kind"] for s in found["servers_silent"]] == ["worker"]


async def test_people_refused_and_unexpected_errors_are_trouble(settings, world, maker) -> None:
    async with app_with(settings, max_in_flight=2) as (app, c):
        @app.get("/test-only/fails")
        async def fails() -> None:  # a bug in a handler: the framework answers 500
            raise RuntimeError("a bug")

        beat = Beat("web", runs_worker=True)
        await beat.write(maker)
        results = await asyncio.gather(
            *[c.get("/api/v2/admin/location/districts/7") for _ in range(60)])
        refused = Counter(r.status_code for r in results)[503]
        assert refused >= 20, Counter(r.status_code for r in results)
        quiet = httpx.AsyncClient(transport=httpx.ASGITransport(app=app,
                                                                 raise_app_exceptions=False),
                                  base_url="http://teeka.test")
        async with quiet:
            for _ in range(5):
                assert (await quiet.get("/test-only/fails")).status_code == 500
        await beat.write(maker)
        found = await _watch(c, world)
        assert found["trouble"] == ["servers_refusing", "server_errors"], found
        [server] = found["servers"]
        assert server["shed_work"] + server["busy"] >= refused and server["failed"] == 5
        assert server["shed_crowd"] == 0

        # the page says it, in Hindi too
        async with staff_client(app, "state") as page_client:
            page = await page_client.get("/staff/watch")
            assert page.status_code == 200
            assert 'data-trouble="servers_refusing"' in page.text
            assert 'data-trouble="server_errors"' in page.text
            assert f'data-server="{os.getpid()}"' in page.text
            hindi = await page_client.get("/staff/watch?lang=hi")
            assert "सर्वर" in hindi.text and "अप्रत्याशित त्रुटि (500)" in hindi.text

        # a minute later, with nothing refused since, the trouble is over
        await beat.write(maker)
        await beat.write(maker)
        await beat.write(maker)
        await beat.write(maker)
        assert (await _watch(c, world))["trouble"] == []


async def test_the_crowds_busy_answers_are_not_people_refused(
        client, settings, world, maker) -> None:
    """Redis unreachable during an opening: the crowd's joins are answered Busy (503), which is
    the crowd's refusal, not people trying to book or record."""
    from tests.factories import login_citizen
    from tests.surge.test_waiting_room import make_opening

    opening = await make_opening(client, world)
    headers = await login_citizen(client, maker, settings)
    async with app_with(settings, redis_url="redis://127.0.0.1:1/0") as (_, c):
        beat = Beat("web", runs_worker=True)
        await beat.write(maker)
        for _ in range(25):
            r = await c.post(f"/api/v1/openings/{opening}/join", headers=headers)
            assert r.status_code == 503 and r.headers["Retry-After"], r.text
        await beat.write(maker)
        found = await _watch(c, world)
        [server] = found["servers"]
        assert server["shed_crowd"] >= 25 and server["busy"] == 0, server
        assert found["trouble"] == [], found


def _worker_on(host: str) -> Beat:
    """An outbox worker's reports, as from `host`."""
    beat = Beat("worker", runs_worker=True)
    beat.host = host
    return beat


async def test_one_new_process_replaces_one_silent_one(client, world, maker) -> None:
    """Two workers killed, one started again (on another host, as a rescheduled container
    would be): one is still missing."""
    first, second = Beat("worker", runs_worker=True), Beat("worker", runs_worker=True)
    await first.write(maker)
    await second.write(maker)
    clock.shift(timedelta(seconds=90))
    await _worker_on("elsewhere").write(maker)
    found = await _watch(client, world)
    assert found["servers_restarted"] == 1 and found["trouble"] == ["server_silent"], found
    assert len(found["servers_silent"]) == 1
    await Beat("worker", runs_worker=True).write(maker)  # the second one back
    found = await _watch(client, world)
    assert found["servers_restarted"] == 2 and found["trouble"] == [], found


async def test_a_newcomer_replaces_the_silent_one_of_its_own_host_first(
        client, world, maker) -> None:
    """Two workers gone silent, on two hosts, the first one earlier; one restarted, on the
    second host: the one still missing is the first host's (it was listed as the second's, so
    retiring what the page showed would have cleared the alarm with a process still down)."""
    await _worker_on("host-one").write(maker)
    clock.shift(timedelta(seconds=10))
    await _worker_on("host-two").write(maker)
    clock.shift(timedelta(seconds=90))
    await _worker_on("host-two").write(maker)  # back
    found = await _watch(client, world)
    assert found["servers_restarted"] == 1 and found["trouble"] == ["server_silent"], found
    assert [s["host"] for s in found["servers_silent"]] == ["host-one"]


async def test_a_saturated_event_loop_is_trouble(client, world, maker) -> None:
    beat = Beat("web", runs_worker=True)
    await beat.write(maker)
    watcher = asyncio.create_task(watch_loop_lag(period=0.01))
    try:
        await asyncio.sleep(0.05)
        time.sleep(1.1)  # the loop held by a long synchronous step
        await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
    await beat.write(maker)
    found = await _watch(client, world)
    assert found["trouble"] == ["servers_saturated"], found
    assert found["servers"][0]["lag_stalled"] >= 1 and found["servers"][0]["saturated"]


async def test_a_process_gone_silent_is_trouble_until_a_new_one_takes_over(
        client, world, maker) -> None:
    old = Beat("web", runs_worker=True)
    await old.write(maker)
    clock.shift(timedelta(seconds=90))  # no report for 90 s, and it never said it stopped
    found = await _watch(client, world)
    assert found["trouble"] == ["server_silent"] and found["servers"] == []
    assert [s["pid"] for s in found["servers_silent"]] == [os.getpid()]
    # the operator on call is told
    await on_call(maker, world, "state", "9000000001")
    async with session_scope(maker) as session:
        assert await page_on_call(session) == ["server_silent"]
    async with session_scope(maker) as session:
        [sms] = (await session.execute(select(OutboxMessage.body))).scalars().all()
    assert "A server stopped reporting." in sms or "एक सर्वर ने रिपोर्ट" in sms
    # restarted: a new process of its kind on the same host reports
    await Beat("web", runs_worker=True).write(maker)
    found = await _watch(client, world)
    assert found["trouble"] == [] and found["servers_restarted"] == 1
    assert found["servers_silent"] == [] and len(found["servers"]) == 1
    # a day later the old one's row is gone
    clock.shift(timedelta(days=1, minutes=1))
    await Beat("web", runs_worker=True).write(maker)
    async with session_scope(maker) as session:
        assert len((await session.execute(select(ServerBeat))).scalars().all()) == 1


async def test_an_operator_retires_a_silent_server_and_it_is_no_longer_alarmed(
        client, world, maker) -> None:
    """A host taken out of service without its processes shutting down (scaled down, a
    container not coming back): the operator says so, and the watch and the pager stop
    calling it silent, instead of for a day."""
    gone, live = Beat("worker", runs_worker=True), Beat("web", runs_worker=True)
    await gone.write(maker)
    clock.shift(timedelta(seconds=90))
    await live.write(maker)
    found = await _watch(client, world)
    assert found["trouble"] == ["server_silent"]
    assert [s["name"] for s in found["servers_silent"]] == [gone.name]
    state = world.headers("state")
    url = f"/api/v1/watch/servers/{gone.name}/retire"
    # an operator only; one still reporting is refused; one never seen is not found
    assert (await client.post(url, headers=world.headers("raipur_admin"))).status_code == 403
    r = await client.post(f"/api/v1/watch/servers/{live.name}/retire", headers=state)
    assert r.status_code == 409 and r.json()["code"] == "ServerStillReporting", r.text
    r = await client.post("/api/v1/watch/servers/nowhere:1:00/retire", headers=state)
    assert r.status_code == 404
    r = await client.post(url, headers=state)
    assert r.status_code == 200 and r.json() == {"name": gone.name, "retired": True}, r.text
    found = await _watch(client, world)
    assert found["trouble"] == [] and found["servers_silent"] == []
    assert [s["name"] for s in found["servers"]] == [live.name]
    # nobody on call is paged for it
    await on_call(maker, world, "state", "9000000001")
    async with session_scope(maker) as session:
        assert await page_on_call(session) == []
    # said again (a double click): nothing changes; who did it is audited, once
    r = await client.post(url, headers=state)
    assert r.status_code == 200 and r.json()["retired"] is False
    async with session_scope(maker) as session:
        [entry] = (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "watch.server.retired"))).scalars().all()
    assert entry.object_id == gone.name and entry.actor == world.actor("state").label
    assert entry.detail["kind"] == "worker"
    # it was only cut off, and reports again: listed again
    await gone.write(maker)
    found = await _watch(client, world)
    assert sorted(s["name"] for s in found["servers"]) == sorted([gone.name, live.name])


async def test_the_watch_page_retires_a_silent_server(app, world, maker) -> None:
    gone = Beat("web", runs_worker=True)
    await gone.write(maker)
    clock.shift(timedelta(seconds=90))
    async with staff_client(app, "state") as c:
        page = await c.get("/staff/watch")
        assert gone.host in by_id(page.text, "servers-silent")
        r = await c.post("/staff/watch/servers/retire",
                         data={"csrf": csrf_of(page.text), "name": gone.name})
        assert r.status_code == 303 and r.headers["location"].startswith(
            "/staff/watch?notice=retired")
        page = await c.get(r.headers["location"])
        assert "taken out of service" in by_id(page.text, "notice")
        assert 'id="servers-silent"' not in page.text
        assert "server_silent" not in page.text  # no trouble left about it
        # one that is reporting is refused on the page, in Hindi for a Hindi reader
        live = Beat("web", runs_worker=True)
        await live.write(maker)
        r = await c.post("/staff/watch/servers/retire?lang=hi",
                         data={"csrf": csrf_of(page.text), "name": live.name})
        assert r.status_code == 409
        assert "अभी भी रिपोर्ट" in by_id(r.text, "form-error")
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get("/staff/problems")
        r = await c.post("/staff/watch/servers/retire",
                         data={"csrf": csrf_of(page.text), "name": gone.name})
        assert r.status_code == 403


async def test_the_servers_are_for_operators_only(client, world) -> None:
    r = await client.get("/api/v1/watch", headers=world.headers("raipur_admin"))
    assert r.status_code == 403


def _env(settings) -> dict[str, str]:
    return {**os.environ, "TEEKA_DATABASE_URL": settings.database_url,
            "TEEKA_SECRET_KEY": settings.secret_key, "TEEKA_ENVIRONMENT": "development",
            "TEEKA_DATA_DIR": str(settings.data_dir), "TEEKA_LOG_LEVEL": "WARNING",
            "TEEKA_BEAT_SECONDS": "0.3"}


async def _reported(maker, kind: str, wait_s: float = 60) -> ServerBeat:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        async with session_scope(maker) as session:
            row = (await session.execute(select(ServerBeat).where(
                ServerBeat.kind == kind, ServerBeat.stopped_at.is_(None)))).scalars().first()
            if row is not None:
                return row
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} reported")


async def _stopped(maker, name: str, wait_s: float = 30) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        async with session_scope(maker) as session:
            row = await session.get(ServerBeat, name)
            if row is not None and row.stopped_at is not None:
                return True
        await asyncio.sleep(0.2)
    return False


async def test_real_processes_report_themselves_and_say_when_they_stop(
        client, world, maker, settings) -> None:
    env = _env(settings)
    with running_server({**env, "TEEKA_EMBEDDED_WORKER": "false"}) as base_url:
        web = await _reported(maker, "web")
        assert not web.runs_worker
        assert httpx.get(f"{base_url}/api/v2/admin/location/districts/7").status_code == 200
        teeka = str(Path(sys.executable).parent / "teeka")
        worker = subprocess.Popen([teeka, "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            found = await _reported(maker, "worker")
            assert found.runs_worker
            listed = await _watch(client, world)
            assert sorted(s["kind"] for s in listed["servers"]) == ["web", "worker"]
            assert "no_worker" not in listed["trouble"]
            worker.send_signal(signal.SIGTERM)  # a worker shut down says so
            worker.wait(timeout=30)
            assert await _stopped(maker, found.name)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert await _stopped(maker, web.name)  # so does a server
    # a worker killed outright says nothing, and is silent once its reports are overdue
    worker = subprocess.Popen([teeka, "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        killed = await _reported(maker, "worker")
    finally:
        worker.kill()
        worker.wait(timeout=30)
    clock.shift(timedelta(minutes=2))
    found = await _watch(client, world)
    assert found["trouble"] == ["server_silent"], found
    assert [s["pid"] for s in found["servers_silent"]] == [killed.pid] == [worker.pid]


async def test_a_client_leaving_mid_body_is_not_counted_as_an_error(app) -> None:
    """A phone that drops off the network half-way through sending a form is the client's
    doing, not a 500 of ours: the servers' reports do not count it as one (a crowd of such
    phones would otherwise page the operator with `server_errors`)."""
    from starlette.requests import ClientDisconnect

    from teeka.watch.beat import read_counts

    body = b"csrf=x&username=someone&password="
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/staff/login", "raw_path":
             b"/staff/login", "query_string": b"", "root_path": "",
             "server": ("teeka.test", 80), "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"teeka.test"),
                         (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(len(body) + 500).encode())]}
    messages = [{"type": "http.request", "body": body, "more_body": True},
                {"type": "http.disconnect"}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    before = read_counts()
    try:
        await app(scope, receive, send)
    except ClientDisconnect:
        pass
    after = read_counts()
    assert after.requests - before.requests == 1  # it was worked on ...
    assert after.failed == before.failed  # ... and is no error of ours
    # an error of ours still counts
    from teeka.surge.shedding import FAILED
    FAILED.inc()
    assert read_counts().failed == after.failed + 1
