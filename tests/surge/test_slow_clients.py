"""A flood of slow or idle clients cannot hold a worker's sockets (teeka.web.server): a real
`teeka serve` with a 1-second deadline for a request's head and body and at most 20 open
connections. Plain uvicorn keeps a connection that sends nothing for ever and accepts
connections without limit. The load shedder's refusals, and the waiting room's polls that memory
answers, are answered by the server's protocol as soon as a request's head has arrived; a small
body is buffered there, so a slow one takes no place in flight."""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from teeka.config import Settings
from teeka.i18n import translate
from teeka.surge.shedding import LAG_PERIOD_S, MESSAGE
from tests.factories import running_server

LIMIT = 20


@pytest.fixture
def server(request: pytest.FixtureRequest, settings: Settings, world: object,
           tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    """(host, port, pid) of a `teeka serve` (one process) with short deadlines (1 s, or the
    test's `deadline` mark)."""
    mark = request.node.get_closest_marker("deadline")
    deadline = str(mark.args[0]) if mark else "1"
    more = request.node.get_closest_marker("server_env")
    env = {**os.environ, "TEEKA_DATABASE_URL": settings.database_url,
           "TEEKA_SECRET_KEY": settings.resolved_secret(), "TEEKA_DATA_DIR": str(tmp_path),
           "TEEKA_EMBEDDED_WORKER": "false", "TEEKA_LOG_LEVEL": "WARNING",
           "TEEKA_HTTP_HEAD_TIMEOUT_S": deadline, "TEEKA_HTTP_BODY_TIMEOUT_S": deadline,
           **(more.kwargs if more else {})}
    with running_server(env, "--limit-concurrency", str(LIMIT)) as base:
        url = urlparse(base)
        assert url.hostname and url.port
        yield url.hostname, url.port, serving_pid(url.port)


def serving_pid(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(port).encode() in argv:
                return int(entry.name)
    raise AssertionError("no teeka serve process found")


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=5)
    return s


def answer(s: socket.socket) -> bytes:
    """All the server sends until it closes the connection (b"" when it sends nothing)."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def healthz(host: str, port: int) -> int:
    return httpx.get(f"http://{host}:{port}/healthz", timeout=5).status_code


def test_idle_and_slow_connections_are_closed(server: tuple[str, int, int]) -> None:
    host, port, _ = server
    idle = connect(host, port)  # sends nothing at all
    slow = connect(host, port)  # a request head, a line at a time, never finished
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: teeka\r\n")
    started = time.monotonic()
    for _ in range(3):
        time.sleep(0.25)
        slow.sendall(b"X-Slow: still coming\r\n")  # each line restarts nothing
    body = connect(host, port)  # a small body that stops short (buffered by the protocol)
    body.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"session")
    large = connect(host, port)  # a large one (the application reads it as it comes)
    large.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    timed_out = answer(idle)
    assert timed_out.startswith(b"HTTP/1.1 408 ") and "समय समाप्त".encode() in timed_out
    assert answer(slow).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3  # the head's deadline counts from the connection
    assert answer(body).startswith(b"HTTP/1.1 408 ")  # never reached the application
    assert answer(large) == b""  # the application was waiting for the body: closed, no answer
    # a kept-alive connection that asks in time is served, request after request
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=5) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.6)


def test_a_request_head_too_large_is_refused(server: tuple[str, int, int]) -> None:
    host, port, _ = server
    s = connect(host, port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: teeka\r\nX-Big: " + b"a" * 20_000)
    assert answer(s).startswith(b"HTTP/1.1 400 ")


def test_a_body_too_large_is_refused_before_it_is_read(server: tuple[str, int, int]) -> None:
    host, port, _ = server
    s = connect(host, port)
    s.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
              b"Content-Type: application/json\r\nContent-Length: 4000000000\r\n\r\n{")
    refused = answer(s)
    assert refused.startswith(b"HTTP/1.1 413 ")
    assert "अनुरोध बहुत बड़ा है".encode() in refused and b"Request too large" in refused
    assert healthz(host, port) == 200


def test_a_chunked_body_too_large_is_cut_off(server: tuple[str, int, int]) -> None:
    """A chunked body has no length to refuse up front: it is cut off once more than the bound
    has arrived, long before the client has sent it all (without the bound the application
    reads all 10 MiB into memory and then answers)."""
    host, port, _ = server
    s = connect(host, port)
    s.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"[" * (64 * 1024))
    sent = 0
    try:
        for _ in range(160):  # 10 MiB
            s.sendall(chunk)
            sent += 64 * 1024
        s.sendall(b"0\r\n\r\n")
        refused = answer(s)
    except OSError:  # reset while sending or reading: the server closed it
        refused = b""
    assert sent < 10 * 1024 * 1024 or refused.startswith(b"HTTP/1.1 413 ")
    assert not refused or refused.startswith(b"HTTP/1.1 413 ")
    assert healthz(host, port) == 200


@pytest.mark.deadline(8)  # the flood's accepted connections stay while it is counted
def test_connections_beyond_the_bound_are_refused_at_once(server: tuple[str, int, int]) -> None:
    host, port, pid = server
    before = sockets_of(pid)
    held = [connect(host, port) for _ in range(10)]
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=5) as client:
        assert client.get("/healthz").status_code == 200  # a client already connected ...
        held += [connect(host, port) for _ in range(3 * LIMIT)]
        # ... goes on being answered while the flood is refused
        assert client.get("/healthz").status_code == 200
        # at most LIMIT - 1 connections open: the client's and LIMIT - 2 of the rest. The
        # refused ones are answered as soon as the server accepts them (on a busy machine,
        # not all at once); the accepted ones wait for their head, saying nothing.
        expected = len(held) - (LIMIT - 2)
        refused: set[socket.socket] = set()
        until = time.monotonic() + 4
        while len(refused) < expected and time.monotonic() < until:
            ready, _, _ = select.select([s for s in held if s not in refused], [], [], 0.1)
            for s in ready:
                data = s.recv(1024)
                assert data.startswith(b"HTTP/1.1 503 ") and b"retry-after: 2" in data, data
                assert "सर्वर व्यस्त है".encode() in data and b"Server busy" in data, data
                refused.add(s)
        time.sleep(0.2)  # and no more than that
        ready, _, _ = select.select([s for s in held if s not in refused], [], [], 0)
        assert len(refused) == expected and not ready
        assert sockets_of(pid) <= before + LIMIT
    for s in held:
        s.close()
    time.sleep(0.5)  # the server sees them go
    assert healthz(host, port) == 200
    assert sockets_of(pid) <= before + 1


@pytest.mark.deadline(3)
@pytest.mark.server_env(TEEKA_MAX_IN_FLIGHT="2")  # the crowd's bound: 1
def test_the_shedder_refuses_before_the_request_becomes_a_task(
        server: tuple[str, int, int]) -> None:
    host, port, _ = server
    day = (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y")
    crowd = f"/api/v2/appointment/sessions/public/calendarByDistrict?district_id=109&date={day}"
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=5) as client:
        assert client.get(crowd).status_code == 200  # nothing in flight: answered
        before = shed_early(client)
        # a booking whose large body is still on its way (the application reads it as it
        # comes; a small one the protocol would buffer first): one request in flight
        slow = connect(host, port)
        slow.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        time.sleep(0.3)
        for lang, text in (("hi", translate("hi", MESSAGE)), ("en", MESSAGE)):
            r = client.get(crowd, headers={"Accept-Language": lang})
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert r.json() == {"errorCode": "APPOIN0503", "error": text}
        assert shed_early(client) == before + 2  # by the protocol, not the application
        # the connection answered early goes on: once the slow body is given up (and its
        # request, told of the disconnect, has left the shedder's count), served again
        assert answer(slow) == b""
        until = time.monotonic() + 5
        while (code := client.get(crowd).status_code) != 200 and time.monotonic() < until:
            time.sleep(0.1)
        assert code == 200


def test_the_event_loops_lateness_is_measured(server: tuple[str, int, int]) -> None:
    """`teeka serve` measures how late its event loop runs a timer (a saturation sign for the
    operators) from its start, a few times a second."""
    host, port, _ = server
    time.sleep(3 * LAG_PERIOD_S)
    text = httpx.get(f"http://{host}:{port}/metrics", timeout=5).text
    assert metric(text, "teeka_event_loop_lag_seconds_count") >= 2
    assert re.search(r'^teeka_event_loop_lag_seconds_bucket{le="0.05"} ', text, re.MULTILINE)


def metric(text: str, name: str) -> float:
    """A counter's value in a /metrics answer."""
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found
    return float(found[1])


def shed_early(client: httpx.Client) -> float:
    return metric(client.get("/metrics").text, "teeka_requests_shed_early_total")


@pytest.mark.deadline(3)
@pytest.mark.server_env(TEEKA_MAX_IN_FLIGHT="2")  # the crowd's bound: 1
async def test_queue_polls_memory_answers_are_given_by_the_protocol(
        server: tuple[str, int, int], world: Any, maker: Any, settings: Settings) -> None:
    """A status poll this process's memory answers with no I/O (too early: 429; still waiting:
    200) is answered by the protocol, before the load shedder: even while it sheds the crowd,
    the poll hears its own time to come back, not "busy"."""
    from tests.factories import bulk_citizens, publish
    from tests.surge.test_waiting_room import make_opening

    host, port, _ = server
    await publish(maker, world, centre_id=world.centre_a, dose1=5)
    (first, _), (second, _) = await bulk_citizens(maker, settings, 2)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
        oid = await make_opening(client, world, seconds_ahead=12)
        joined = (await client.post(f"/api/v1/openings/{oid}/join", headers=first)).json()
        assert joined["state"] == "waiting" and joined["poll_after_s"] == 6
        poll = {**first, "X-Queue-Token": joined["token"]}
        before = await answered_early(client)
        # a booking whose large body is still on its way: the crowd's bound is reached
        slow = connect(host, port)
        slow.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        await asyncio.sleep(0.3)
        for lang, text in (("hi", "बहुत"), ("en", "Too many")):
            r = await client.get(f"/api/v1/openings/{oid}/status",
                                 headers={**poll, "Accept-Language": lang})
            assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 6
            assert r.json()["code"] == "RateLimited" and text in r.json()["message"]
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-content-type-options"] == "nosniff"
        assert await answered_early(client) == before + 2  # by the protocol, before the shedder
        assert answer(slow) == b""  # the slow body given up
        # At the ticket's time, while this process's view of the room is fresh (another join
        # has just refreshed it): still waiting, answered the same way.
        await asyncio.sleep(6)
        assert (await client.post(f"/api/v1/openings/{oid}/join", headers=second)).status_code \
            == 200
        r = await client.get(f"/api/v1/openings/{oid}/status", headers=poll)
        assert r.status_code == 200, r.text
        again = r.json()
        assert again["state"] == "waiting" and again["position"] is None
        assert 1 <= again["estimated_wait_s"] <= 6 and again["token"] != joined["token"]
        assert await answered_early(client) == before + 3


async def answered_early(client: httpx.AsyncClient) -> float:
    return metric((await client.get("/metrics")).text, "teeka_queue_polls_answered_early_total")


@pytest.mark.deadline(3)
@pytest.mark.server_env(TEEKA_MAX_IN_FLIGHT="2")  # the crowd's bound: 1; everything else: 2
def test_slow_small_bodies_take_no_place_in_flight(server: tuple[str, int, int]) -> None:
    """A booking's body sent slowly is buffered by the protocol: the request becomes a task only
    when the body is whole. Ten slow bookings leave the shedder's places to everyone else (before,
    one of them alone filled the crowd's bound); the one that finishes is answered; the others
    get 408 at the body's deadline."""
    host, port, _ = server
    day = (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y")
    crowd = f"/api/v2/appointment/sessions/public/calendarByDistrict?district_id=109&date={day}"
    body = b'{"session_id": "x", "slot": "09:00AM-11:00AM", "beneficiaries": ["1"]}'
    slow = [connect(host, port) for _ in range(10)]
    for s in slow:
        s.sendall(b"POST /api/v1/appointments HTTP/1.1\r\nHost: teeka\r\n"
                  b"Content-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    time.sleep(0.3)
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=5) as client:
        for _ in range(3):
            assert client.get(crowd).status_code == 200  # not shed: nothing is in flight
        assert client.post("/api/v1/appointments", json={}).status_code == 401  # nor refused
    slow[0].sendall(body[5:])  # this one's body is whole: the application answers it
    assert slow[0].recv(65536).startswith(b"HTTP/1.1 401 ")
    for s in slow[1:]:
        assert answer(s).startswith(b"HTTP/1.1 408 ")
