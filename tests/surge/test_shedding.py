"""Load shedding: beyond the in-flight bound a worker answers 503 + Retry-After at once; health
stays responsive; a request that cannot get a database connection in time is a 503 too."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import text

from teeka.surge.shedding import watch_loop_lag
from tests.factories import app_with, bulk_citizens, publish
from tests.surge.test_waiting_room import make_opening


async def test_overload_is_refused_at_once_and_health_stays_up(settings, world) -> None:
    async with app_with(settings, max_in_flight=2) as (_, c):
        results = await asyncio.gather(
            *[c.get("/api/v2/admin/location/districts/7") for _ in range(30)],
            *[c.get("/api/v1/sessions", params={"district_id": 109}) for _ in range(10)],
            *[c.get("/healthz") for _ in range(10)])
        codes = Counter(r.status_code for r in results)
        assert codes[503] > 0 and codes[200] > 0 and set(codes) <= {200, 503}, codes
        for r in results:
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "2"
                assert ("errorCode" in r.json()) == r.url.path.startswith("/api/v2/")
        assert all(r.status_code == 200 for r in results if r.url.path == "/healthz")
        live = await c.get("/livez")  # answered before the application, never shed
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        metrics = await c.get("/metrics")
        assert "teeka_requests_shed_total" in metrics.text


async def test_no_database_connection_in_time_is_a_503(settings, world) -> None:
    async with app_with(settings, db_pool_size=1, db_pool_timeout=0.3) as (app, c):
        async with app.state.sessionmaker() as hog:
            await hog.execute(text("SELECT 1"))  # holds the only connection
            r = await c.get("/api/v2/admin/location/districts/7")
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert r.json()["errorCode"] == "APPOIN0503"
            r = await c.get("/api/v1/sessions", params={"district_id": 109})
            assert r.status_code == 503 and r.json()["code"] == "Busy"
        assert (await c.get("/api/v2/admin/location/districts/7")).status_code == 200
        assert re.search(r'^teeka_busy_total{cause="db_pool"} [1-9]', (await c.get("/metrics")).text,
                         re.MULTILINE)  # the operators see why


async def test_beyond_the_pool_and_its_waiting_places_a_request_is_refused_at_once(
        settings, world) -> None:
    """One connection and one waiting place: with the connection held, two requests wait for
    it and a third is refused at once (503 + Retry-After, a sign of stress for the waiting
    room), long before the pool's timeout — by the load shedder, which sees the door full, or
    at the door itself; once the connection is free the two are answered."""
    async with app_with(settings, db_pool_size=1, db_max_waiting=1,
                        db_pool_timeout=20) as (app, c):
        before = _refusals((await c.get("/metrics")).text)
        async with app.state.sessionmaker() as hog:
            await hog.execute(text("SELECT 1"))  # holds the only connection
            asked = [asyncio.create_task(c.get("/api/v1/sessions", params={"district_id": 109}))
                     for _ in range(3)]
            done, waiting = await asyncio.wait(asked, timeout=10,
                                               return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1 and len(waiting) == 2  # the refusal did not wait for the pool
            refused = done.pop().result()
            assert refused.status_code == 503 and refused.json()["code"] == "Busy"
            assert refused.headers["Retry-After"]
            assert app.state.waiting_room._pending_busy == 1
            assert app.state.db_door.inside == 2
            # while the door is full, the load shedder refuses what would meet it, before the
            # request takes a place in flight (a page here, in the language asked for)
            shed = _shed((await c.get("/metrics")).text)
            page = await c.get("/account", headers={"Accept-Language": "en"})
            assert page.status_code == 503 and "busy" in page.text
            assert _shed((await c.get("/metrics")).text) == shed + 1
        assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200]
        assert app.state.db_door.inside == 0
        assert _refusals((await c.get("/metrics")).text) == before + 2


async def test_a_crowd_joining_a_process_new_to_an_opening_waits_for_one_load_or_hears_busy(
        settings, world, maker) -> None:
    """A process that has not seen an opening yet loads it once from the waiting room's own
    connections, however many join at that moment; with those connections all held, the crowd
    hears Busy (503 + Retry-After) when none comes in time, never a 500; then they join."""
    async with app_with(settings) as (_, other):
        await publish(maker, world, centre_id=world.centre_a, dose1=2)
        oid = await make_opening(other, world)  # the process that made it knows it
    people = await bulk_citizens(maker, settings, 5)
    async with app_with(settings, db_pool_timeout=0.3) as (app, c):
        engine = app.state.room_engine or app.state.engine  # SQLite: one connection in all
        before = _busy((await c.get("/metrics")).text, "db_pool")
        async with contextlib.AsyncExitStack() as held:
            for _ in range(engine.pool.size()):
                hog = await held.enter_async_context(app.state.waiting_room.sessionmaker())
                await hog.execute(text("SELECT 1"))
            crowd = await asyncio.gather(*[c.post(f"/api/v1/openings/{oid}/join", headers=h)
                                           for h, _ in people])
            assert [r.status_code for r in crowd] == [503] * 5, [r.text for r in crowd]
            assert all(r.headers["Retry-After"] and r.json()["code"] == "Busy" for r in crowd)
        # one load tried (and timed out) for the five
        assert _busy((await c.get("/metrics")).text, "db_pool") == before + 1
        crowd = await asyncio.gather(*[c.post(f"/api/v1/openings/{oid}/join", headers=h)
                                       for h, _ in people])
        assert [r.status_code for r in crowd] == [200] * 5


async def test_made_up_opening_ids_cost_no_read_each(settings, world, maker) -> None:
    """Polls and joins for openings that do not exist are 404, and a crowd of made-up ids does
    not cost the waiting room a database read each (its two connections are what its steps
    need): unknown ids are looked up in the list of openings, one read at a time, each at
    least LIST_AGAIN_S after the last. A real opening is still found (made in this process,
    which then forgets it, as another process that never saw it)."""
    from sqlalchemy import event

    async with app_with(settings) as (app, c):
        await publish(maker, world, centre_id=world.centre_a, dose1=2)
        oid = await make_opening(c, world)
        (h, _), = await bulk_citizens(maker, settings, 1)
        engine = (app.state.room_engine or app.state.engine).sync_engine
        reads: list[str] = []

        def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            if "FROM opening" in statement:
                reads.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            app.state.waiting_room._openings.clear()  # a process that has seen none yet
            made_up = [oid + 1000 + i for i in range(40)] + [0, -5]
            answers = await asyncio.gather(*[
                c.get(f"/api/v1/openings/{n}/status", headers={**h, "X-Queue-Token": "x"})
                for n in made_up], *[c.post(f"/api/v1/openings/{n}/join", headers=h)
                                     for n in made_up])
            assert {r.status_code for r in answers} == {404}, [r.text for r in answers]
            assert (await c.post(f"/api/v1/openings/{oid}/join", headers=h)).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        # the crowd's requests that arrived while a read was under way wait for the next one
        assert 1 <= len(reads) <= 4, reads


async def test_a_poll_arriving_as_a_list_read_ends_does_not_spin(settings, world) -> None:
    """A request that finds the list read already done, before that read's callback has
    cleared it (one turn of the loop), starts a new read: awaiting the done read again would
    loop without ever yielding, and the worker would spin for good (found in review)."""
    import signal

    from teeka import errors

    async with app_with(settings) as (app, _):
        room = app.state.waiting_room

        async def old_read() -> tuple[float, list]:
            return time.monotonic() - 10, []

        done = asyncio.get_running_loop().create_task(old_read())
        await done
        room._listing = done  # as in the turn before its callback runs

        def spinning(*_: object) -> None:
            raise TimeoutError("the lookup spun without yielding")

        before = signal.signal(signal.SIGALRM, spinning)
        signal.setitimer(signal.ITIMER_REAL, 3)
        try:
            try:
                await room.opening(None, 10**8)
            except errors.DomainError as exc:
                assert exc.code == "NotFound"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)


def _busy(metrics: str, cause: str) -> float:
    found = re.search(rf'^teeka_busy_total{{cause="{cause}"}} (\S+)$', metrics, re.MULTILINE)
    assert found, f"the refusals for {cause} are counted"
    return float(found[1])


async def test_a_worker_lets_the_collectors_young_generation_grow(settings, world) -> None:
    """While the application runs, the cyclic collector's young pass waits for
    GC_YOUNG_THRESHOLD new objects instead of CPython's 700 (its passes, each scanning and
    promoting the objects of the requests in flight, took a worker ~10 s of an opening-day
    run); the older generations keep their thresholds, and all are as before once it stops."""
    import gc

    from teeka.app import GC_YOUNG_THRESHOLD

    before = gc.get_threshold()
    assert before[0] < GC_YOUNG_THRESHOLD
    async with app_with(settings) as (app, _):
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


async def test_a_blocked_event_loop_shows_in_the_lag_metric() -> None:
    """A worker whose loop is held by a long synchronous step is seen late by its watcher."""
    def late() -> float:  # observations over 100 ms so far
        count = REGISTRY.get_sample_value("teeka_event_loop_lag_seconds_count") or 0.0
        fast = REGISTRY.get_sample_value("teeka_event_loop_lag_seconds_bucket",
                                         {"le": "0.1"}) or 0.0
        return count - fast

    before = late()
    watcher = asyncio.create_task(watch_loop_lag(period=0.01))
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop held, as by a long step
        await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
    assert late() >= before + 1  # (more only if the machine itself stalled meanwhile)


def _refusals(metrics: str) -> float:
    """The door's refusals and the load shedder's (which refuses when it sees the door full)."""
    return _door_refusals(metrics) + _shed(metrics)


def _shed(metrics: str) -> float:
    found = re.search(r"^teeka_requests_shed_total (\S+)$", metrics, re.MULTILINE)
    assert found
    return float(found[1])


def _door_refusals(metrics: str) -> float:
    return _busy(metrics, "db_door")


async def test_the_crowd_is_shed_first_and_bookings_keep_their_share(settings, world) -> None:
    day = "27-11-2026"
    async with app_with(settings, max_in_flight=8) as (app, c):  # crowd bound: 4
        others = [c.get("/api/v1/sessions", params={"district_id": 109}) for _ in range(4)]
        crowd = [c.get("/api/v2/appointment/sessions/public/findByDistrict",
                       params={"district_id": 109, "date": day}) for _ in range(30)]
        results = await asyncio.gather(*crowd, *others)  # the crowd arrives first
        assert all(r.status_code == 200 for r in results[30:])
        codes = Counter(r.status_code for r in results[:30])
        assert codes[503] > 0 and set(codes) <= {200, 503}, codes
        assert all(r.headers["Retry-After"] == "2" for r in results[:30] if r.status_code == 503)
        # refusing the crowd is not a sign that bookings are in trouble
        assert app.state.waiting_room._pending_busy == 0


async def test_the_queue_yields_to_the_people_it_admitted(settings, world, maker) -> None:
    """While other work (a booking) is in flight beyond `queue_yields_at`, the queue's status
    polls are refused at once with 503 + Retry-After; the poll of someone whose turn has come
    is not, nor a join; once the work is done, the queue is answered again."""
    from datetime import timedelta

    from teeka.kit import clock
    from tests.factories import bulk_citizens, publish
    from tests.surge.test_waiting_room import join, make_opening

    async with app_with(settings, queue_yields_at=1) as (app, c):
        await publish(maker, world, centre_id=world.centre_a, dose1=1)
        oid = await make_opening(c, world)
        people = await bulk_citizens(maker, settings, 3)
        tokens = [(await join(c, h, oid))["token"] for h, _ in people[:2]]
        clock.shift(timedelta(seconds=61))

        async def poll(i: int) -> httpx.Response:
            return await c.get(f"/api/v1/openings/{oid}/status",
                               headers={**people[i][0], "X-Queue-Token": tokens[i]})

        answers = [await poll(0), await poll(1)]
        assert sorted(r.json()["state"] for r in answers) == ["admitted", "waiting"]
        turn = next(i for i, r in enumerate(answers) if r.json()["state"] == "admitted")
        wait = 1 - turn
        # the one waiting polls with the ticket it was just given; the one admitted with the
        # ticket it had while waiting (news: its turn has come)
        tokens[wait] = answers[wait].json()["token"]
        arrived = asyncio.Event()

        async def slow_body():  # a booking whose body is still on its way: work in flight
            yield b'{"session_id": "'
            await arrived.wait()
            yield b'x", "slot": "09:00AM-11:00AM", "beneficiaries": ["1"]}'

        work = asyncio.create_task(c.post(
            "/api/v1/appointments", content=slow_body(),
            headers={**people[turn][0], "Idempotency-Key": "yield-0001",
                     "Content-Type": "application/json"}))
        await asyncio.sleep(0.05)
        refused = await poll(wait)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        joining = await c.post(f"/api/v1/openings/{oid}/join", headers=people[2][0])
        assert joining.status_code == 200  # a place in the line is never refused for this
        news = await poll(turn)  # someone whose turn has come hears it all the same
        assert news.status_code == 200 and news.json()["state"] == "admitted"
        arrived.set()
        assert (await work).status_code in (404, 409, 422)  # answered (no such session)
        clock.shift(timedelta(seconds=3))
        again = await poll(wait)
        assert again.status_code == 200 and again.json()["state"] == "waiting"
        assert app.state.waiting_room._pending_busy == 0  # yielding is not a sign of stress


def test_a_refusal_speaks_the_language_the_routes_would_and_carries_the_security_headers(
        ) -> None:
    """The shedder's 503 chooses the language as the routes do (`?lang=`, the `lang` cookie,
    Accept-Language; the national API: Hindi only when asked for first) and carries the same
    security headers as every other answer."""
    from teeka.i18n import translate
    from teeka.surge.shedding import MESSAGE, LoadShedder
    from teeka.web.security import HEADERS

    shedder = LoadShedder(None, max_in_flight=1, extra_headers=HEADERS)  # type: ignore[arg-type]

    def said(path: str, query: bytes = b"", **headers: str) -> str:
        scope = {"type": "http", "path": path, "query_string": query,
                 "headers": [(k.replace("_", "-").encode(), v.encode())
                             for k, v in headers.items()]}
        sent, body = shedder._refusal(scope)
        names = {k.decode() for k, _ in sent}
        assert {k.lower() for k in HEADERS} <= names and "retry-after" in names
        return body.decode()

    hi, en = translate("hi", MESSAGE), translate("en", MESSAGE)
    assert en in said("/api/v1/openings/1/status", b"lang=en", accept_language="hi")
    assert hi in said("/api/v1/openings/1/status", b"x=1&lang=hi", cookie="lang=en")
    assert en in said("/api/v1/openings/1/status", cookie="a=b; lang=en",
                      accept_language="hi")
    assert hi in said("/api/v1/openings/1/status", cookie="lang=xx", accept_language="hi-IN")
    # read as Starlette reads a query: decoded, the last `lang` wins, an unknown one ignored
    assert en in said("/api/v1/openings/1/status", b"lang=hi&lang=en")
    assert en in said("/api/v1/openings/1/status", b"lang=%65n", accept_language="hi")
    assert en in said("/api/v1/openings/1/status", b"lang=xx", accept_language="en")
    assert hi in said("/api/v1/openings/1/status")  # the state's language by default
    assert en in said("/api/v2/appointment/sessions/public/findByPin")  # as the national API
    assert hi in said("/api/v2/appointment/sessions/public/findByPin", accept_language="hi_IN")
