"""Opening day: a statewide opening with a realistic crowd, offered at about 10x what booking
can absorb, until every place is gone (docs/BENCHMARKS.md, "Opening day").

The scenario, against a running stack (bench/run.py starts it):

* places: one new day of sessions at centres all over the state (first-dose, open share), as
  many places as booking absorbs in `seconds` at the sustained rate measured just before;
* an opening for the whole state from that day, admitting people at that sustained rate, holds
  of `hold_seconds`;
* a crowd of 1.5 people per place, each an account with one person: 70 % join the waiting room
  before the opening time (pre-queued), 30 % arrive late during the release. Everyone polls the
  queue impatiently (faster than the room asks), so that the crowd offers 10x the booking rate
  all through the release (Pace: the interval follows how many are still waiting);
  once admitted they book at once, choosing among slots that an availability view (refreshed
  every 0.3 s, like the public snapshot) shows as free, and try another slot on SlotFull;
* the load generator is a minimal HTTP/1.1 client on keep-alive connections (cheap enough to
  offer thousands of requests a second from the same two cores).

Measured: goodput (confirmed bookings per second while the release runs, between the 10th and
90th percentile booking) against the sustained rate; every non-2xx answer (refusals are 429/503
with Retry-After; their latency p99); 5xx other than the load shedder's 503; after the run:
every acknowledged booking present, no slot over capacity, counters equal a recount; holds that
did not lead to a booking; admissions out of queue order (the room's admission log against the
queue, and late arrivals against the order in which their joins were answered); the correlation
of the pre-queue's join order with the drawn order (near 0: shuffled); how long after the crowd
leaves latency is back to what it was before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cpu import Meter

SLOT = "09:00AM-11:00AM"
BOOKERS = 1000  # the opening's booking connections (a connection per person booking)
PLACES_PER_SESSION = 10


# ------------------------------------------------------------------ a minimal HTTP/1.1 client


class Conn(asyncio.Protocol):
    """One keep-alive connection, as an asyncio protocol: a request is one write, its answer
    is parsed from the bytes as they arrive (no stream reader, no coroutine per read), so that
    the crowd's generator costs the shared cores as little as it can."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, dict[bytes, bytes], bytes]] | None = None
        self.head: tuple[int, dict[bytes, bytes]] | None = None
        self.need = 0  # body bytes still to come after the head

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
        loop = asyncio.get_running_loop()
        if self.transport is None or self.transport.is_closing():
            self.transport = None
            await loop.create_connection(lambda: self, self.host, self.port)
        assert self.transport is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.waiter = loop.create_future()
        self.buf.clear()
        self.head = None
        self.transport.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
                             f"Content-Length: {len(body)}\r\n{head}\r\n".encode() + body)
        return await self.waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("closed by the server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            found: dict[bytes, bytes] = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                found[k.strip().lower()] = v.strip()
            if found.get(b"transfer-encoding") == b"chunked":  # not sent by the server here
                self._fail(ValueError("chunked answer"))
                return
            self.head = (int(lines[0].split(b" ", 2)[1]), found)
            self.need = int(found.get(b"content-length", b"0"))
            del self.buf[:end + 4]
        if len(self.buf) < self.need or self.waiter is None:
            return
        status, found = self.head
        body = bytes(self.buf[:self.need])
        self.head = None
        waiter, self.waiter = self.waiter, None
        if found.get(b"connection") == b"close":
            self.close()
        if not waiter.done():
            waiter.set_result((status, found, body))

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None


class Client:
    """A pool of keep-alive connections; every answer is recorded."""

    def __init__(self, host: str, port: int, size: int) -> None:
        # Last used, first reused: a large pool (the bookers') keeps the connections it needs
        # warm instead of cycling through all of them, each idle past the server's keep-alive
        # timeout (5 s) and connected again (seen: bookings slow by a connect under load).
        self.pool: asyncio.Queue[Conn] = asyncio.LifoQueue()
        for _ in range(size):
            self.pool.put_nowait(Conn(host, port))
        self.log: list[tuple[str, int, float, float, bool]] = []  # kind, code, at, ms, retry-after
        self.errors = 0

    async def call(self, kind: str, method: str, path: str, headers: dict[str, str],
                   body: Any = None) -> tuple[int, dict[bytes, bytes], bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        conn = await self.pool.get()
        started = time.monotonic()
        try:
            for attempt in (1, 2):
                reused = conn.transport is not None
                try:
                    code, found, raw = await conn.request(method, path, headers, data)
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    conn.close()
                    # A kept-alive connection the server closed meanwhile: ask again on a new
                    # one, as every HTTP client does; anything else is an error.
                    if attempt == 2 or not reused:
                        self.errors += 1
                        code, found, raw = 599, {}, b""
                        break
        finally:
            self.pool.put_nowait(conn)
        done = time.monotonic()
        self.log.append((kind, code, done, (done - started) * 1000, b"retry-after" in found))
        return code, found, raw


# ------------------------------------------------------------------ the scenario's data


async def prepare(dsn: str, places: int, crowd: int, rate: int, opens_in: float,
                  hold_seconds: int) -> dict[str, Any]:
    """A new day of sessions all over the state, crowd accounts of one person, the opening."""
    conn = await asyncpg.connect(dsn)
    try:
        last = await conn.fetchval("SELECT max(date) FROM vaccination_session")
        day = last + timedelta(days=1)
        vaccine = await conn.fetchval("SELECT min(id) FROM vaccine")
        sessions = -(-places // PLACES_PER_SESSION)
        centres = await conn.fetch("SELECT id FROM centre WHERE active ORDER BY id")
        step = max(1, len(centres) // sessions)
        chosen = [r["id"] for r in centres[::step]][:sessions]
        now = datetime.now(UTC).replace(tzinfo=None)
        left = places
        async with conn.transaction():
            for centre in chosen:
                sid = str(uuid.uuid4())
                cap = min(PLACES_PER_SESSION, left)
                left -= cap
                await conn.execute(
                    """INSERT INTO vaccination_session (id, centre_id, date, vaccine_id, min_age,
                       max_age, walkin_allowance, walkins_used, created_at)
                       VALUES ($1, $2, $3, $4, 18, NULL, 0, 0, $5)""",
                    sid, centre, day, vaccine, now)
                slot = await conn.fetchval(
                    "INSERT INTO session_slot (session_id, label, ordinal) VALUES ($1, $2, 0)"
                    " RETURNING id", sid, SLOT)
                await conn.execute(
                    """INSERT INTO capacity_bucket (slot_id, session_id, dose_kind, share,
                       capacity, booked, release_at) VALUES ($1, $2, 'first', 'open', $3, 0,
                       NULL)""", slot, sid, cap)
            # Accounts none of whose people has an appointment; one person each (the others
            # are set aside), so a hold is one place and a booking one appointment, as in the
            # sustained-rate measurement it is compared with.
            accounts = await conn.fetch(
                """SELECT b.account_id, min(b.reference_id) AS ref FROM beneficiary b
                   WHERE b.reference_id LIKE '99%' AND b.status = 'active'
                   GROUP BY b.account_id HAVING NOT EXISTS (SELECT 1 FROM appointment a
                     JOIN beneficiary o ON o.id = a.beneficiary_id
                     WHERE o.account_id = b.account_id)
                   ORDER BY b.account_id DESC LIMIT $1""", crowd)
            await conn.execute(
                """UPDATE beneficiary SET status = 'deleted' WHERE account_id = ANY($1::int[])
                   AND reference_id <> ALL($2::text[])""",
                [r["account_id"] for r in accounts], [r["ref"] for r in accounts])
            opens_at = datetime.now(UTC) + timedelta(seconds=opens_in)
            oid = await conn.fetchval(
                """INSERT INTO opening (district_id, first_day, opens_at, hold_seconds,
                   admit_per_second, created_at) VALUES (NULL, $1, $2, $3, $4, $5)
                   RETURNING id""",
                day, opens_at.replace(tzinfo=None), hold_seconds, rate, now)
    finally:
        await conn.close()
    return {"day": day, "opening": oid, "opens_at": opens_at, "sessions": len(chosen),
            "places": places - left, "accounts": [(r["account_id"], r["ref"]) for r in accounts]}


class View:
    """What the crowd believes is free: the day's slots, refreshed from the database like the
    public availability snapshot (every 0.3 s); a SlotFull answer drops a slot until then."""

    def __init__(self, dsn: str, day: Any) -> None:
        self.dsn, self.day = dsn, day
        self.free: list[str] = []
        self.running = True

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while self.running:
                rows = await conn.fetch(
                    """SELECT b.session_id FROM capacity_bucket b JOIN vaccination_session s
                       ON s.id = b.session_id WHERE s.date = $1 AND b.booked < b.capacity""",
                    self.day)
                self.free = [r["session_id"] for r in rows]
                await asyncio.sleep(0.3)
        finally:
            await conn.close()

    def pick(self) -> str | None:
        return random.choice(self.free) if self.free else None

    def full(self, sid: str) -> None:
        if sid in self.free:
            self.free.remove(sid)


# ------------------------------------------------------------------ the crowd


@dataclass
class Person:
    account: int
    ref: str
    bearer: str
    join_at: float  # monotonic
    late: bool
    token: str = ""
    state: str = "new"
    position: int | None = None
    join_sent: float = 0.0  # the first time this person asked to join
    join_answered: float = 0.0
    admitted_at: float | None = None
    hold_until: float = 0.0  # when the hold expires, from the answer that said "admitted"
    failed_at: float | None = None
    booked_at: float | None = None
    ids: list[str] = field(default_factory=list)
    failure: str | None = None
    news_ms: float | None = None  # how long the poll that told them their turn had come took
    last_sent: float | None = None  # when their last booking request left


class Pace:
    """The crowd's polls, released at a steady rate so that the crowd offers `target` requests a
    second all through the release, however many are still waiting: with a fixed interval per
    person the offered load would thin as people book or are told the queue closed (and start
    below the target, before the late arrivals come). A waiting person, answered, queues for
    their next turn (`turn`) and waits at least FLOOR_S; every 10 ms the pacer lets through
    as many queued people, first in first out, as the target leaves after the crowd's other
    requests (joins, bookings) of the last second. A rate per person corrected by feedback
    instead swung between 5x and 17x: people already asleep answer a correction seconds late."""

    FLOOR_S = 0.1  # nobody asks more than ten times a second

    def __init__(self, target: float, logs: list[list[tuple[str, int, float, float, bool]]]
                 ) -> None:
        self.target, self.logs = target, logs
        self.queued: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        self.running = True
        self.trace: list[tuple[float, int]] = []  # (when, requests sent in the second before)

    async def turn(self) -> None:
        """Wait for this person's next poll."""
        future = asyncio.get_running_loop().create_future()
        self.queued.append((time.monotonic() + self.FLOOR_S, future))
        await future

    def sent_last_second(self) -> tuple[int, int]:
        """(all the crowd's requests, its polls) answered in the last second."""
        since, n, polls = time.monotonic() - 1.0, 0, 0
        for log in self.logs:
            i = len(log) - 1
            while i >= 0 and log[i][2] >= since:
                n += log[i][0] != "probe"
                polls += log[i][0] == "status"
                i -= 1
        return n, polls

    async def run(self) -> None:
        others, credit, last, looked = 0, 0.0, time.monotonic(), 0.0
        while self.running:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            if now - looked >= 0.5:  # the crowd's other requests, every half second
                sent, polls = self.sent_last_second()
                self.trace.append((now, sent))
                others, looked = sent - polls, now
            credit = min(credit + (now - last) * max(0.0, self.target - others),
                         self.target * 0.05)  # no burst beyond 50 ms' worth
            last = now
            while credit >= 1 and self.queued and self.queued[0][0] <= now:
                _, future = self.queued.popleft()
                future.set_result(None)
                credit -= 1
        for _, future in self.queued:
            future.cancel()


async def person(p: Person, client: Client, booker: Client, view: View, oid: int,
                 pace: Pace, hold_s: int, deadline: float) -> None:
    """One person of the crowd. `client` carries the waiting (joins and polls), `booker` the
    bookings: on their phones, someone's booking does not wait behind other people's polls."""
    auth = {"Authorization": f"Bearer {p.bearer}", "Accept-Language": "hi"}
    await asyncio.sleep(max(0.0, p.join_at - time.monotonic()))
    while time.monotonic() < deadline:  # join (again after a refusal, as told)
        p.join_sent = p.join_sent or time.monotonic()
        code, found, raw = await client.call("join", "POST", f"/api/v1/openings/{oid}/join", auth)
        if code == 200:
            p.join_answered = time.monotonic()
            take(p, raw)
            break
        await asyncio.sleep(float(found.get(b"retry-after", b"1")))
    while time.monotonic() < deadline and p.state == "waiting":
        # Impatient: asks again well before the room said to (the room answers 429 at once).
        await pace.turn()
        asked = time.monotonic()
        code, found, raw = await client.call(
            "status", "GET", f"/api/v1/openings/{oid}/status", {**auth, "X-Queue-Token": p.token})
        if code == 200:
            take(p, raw)
            if p.state == "admitted":
                p.news_ms = (time.monotonic() - asked) * 1000
    if p.state != "admitted":
        return
    p.admitted_at = time.monotonic()
    tries = 0
    while time.monotonic() < min(deadline, p.hold_until):
        sid = view.pick()
        if sid is None:
            await asyncio.sleep(0.1)
            continue
        tries += 1
        p.last_sent = time.monotonic()
        code, found, raw = await booker.call(
            "book", "POST", "/api/v1/appointments",
            {**auth, "Idempotency-Key": f"open-{p.ref}-{tries}"},
            {"session_id": sid, "slot": SLOT, "beneficiaries": [p.ref], "dose": 1})
        if code == 201:
            p.booked_at = time.monotonic()
            p.ids = json.loads(raw)["appointment_ids"]
            return
        if code in (429, 503):
            await asyncio.sleep(float(found.get(b"retry-after", b"1")))
            continue
        err = json.loads(raw).get("code") if raw.startswith(b"{") else str(code)
        if err == "SlotFull":
            view.full(sid)
            continue
        p.failure = f"{code} {err}"
        p.failed_at = time.monotonic()
        return
    p.failure = p.failure or "hold ran out"


def backlog(crowd: list[Person], opens: float, last: float) -> list[list[float]]:
    out = []
    for start in range(0, int(last - opens) + 10, 10):
        a, b = opens + start, opens + start + 10
        came = [p for p in crowd if p.admitted_at is not None and a <= p.admitted_at < b]
        took = [p.booked_at - p.admitted_at for p in came if p.booked_at is not None]
        waiting = sum(1 for p in crowd if p.admitted_at is not None and p.admitted_at < b
                      and (p.booked_at is None or p.booked_at >= b)
                      and (p.booked_at is not None or p.hold_until > b))
        done = sum(1 for p in crowd if p.booked_at is not None and a <= p.booked_at < b)
        out.append([start, len(came), done, waiting,
                    *([round(pct(took, 50), 1), round(pct(took, 90), 1), round(max(took), 1)]
                      if took else [0.0, 0.0, 0.0])])
    return out


def bookings_by_10s(log: list[tuple[str, int, float, float, bool]], opens: float, last: float
                    ) -> list[list[float]]:
    out = []
    for start in range(0, int(last - opens) + 10, 10):
        books = [e for e in log if e[0] == "book" and start <= e[2] - opens < start + 10]
        ok = [e[3] for e in books if e[1] == 201]
        out.append([start, len(ok), sum(1 for e in books if e[1] == 503),
                    *([round(pct(ok, 50)), round(pct(ok, 99))] if len(ok) > 1 else [0, 0])])
    return out


def take(p: Person, raw: bytes) -> None:
    body = json.loads(raw)
    p.token, p.state, p.position = body["token"], body["state"], body["position"]
    if p.state == "admitted":
        p.hold_until = time.monotonic() + (body["hold_expires_in_s"] or 0)


# ------------------------------------------------------------------ checks


async def recovery_probe(client: Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.monotonic()
        await client.call("probe", "GET", path, {"Accept-Encoding": "gzip"})
        out.append((time.monotonic() - started) * 1000)
    return out


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        for i, j in enumerate(order):
            r[j] = float(i)
        return r

    rx, ry = ranks(xs), ranks(ys)
    if len(rx) < 3:
        return 0.0
    return statistics.correlation(rx, ry)


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1]


async def run(host: str, port: int, dsn: str, redis_url: str, secret: str, rate: float,
              seconds: float, token: Any, server_groups: list[int]
              ) -> tuple[dict[str, Any], list[str]]:
    """The opening-day scenario; returns its figures and the acknowledged appointment ids."""
    import redis.asyncio as aioredis

    places = max(200, round(rate * seconds))
    crowd_size = round(places * 1.5)
    hold_s = 60
    opens_in = 8.0 if seconds >= 20 else 5.0  # the pre-queue's time to gather
    probe_path = ("/api/v2/appointment/sessions/public/calendarByDistrict?district_id=109&date="
                  + (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y"))
    client = Client(host, port, 600)  # a crowd is many phones: enough connections to offer 10x
    prober = Client(host, port, 1)  # latency before and after, on the booking tier
    before = await recovery_probe(prober, probe_path, 40)
    baseline = statistics.median(before)
    setup = await prepare(dsn, places, crowd_size, max(1, round(rate)), opens_in, hold_s)
    oid = setup["opening"]
    t0 = time.monotonic()
    opens_mono = t0 + (setup["opens_at"] - datetime.now(UTC)).total_seconds()
    release_s = places / rate
    accounts = setup["accounts"]
    random.Random(7).shuffle(accounts)
    pre = int(len(accounts) * 0.7)
    crowd = []
    for i, (account, ref) in enumerate(accounts):
        late = i >= pre
        join_at = (opens_mono + random.uniform(0, release_s * 0.6) if late
                   else opens_mono - random.uniform(1.5, opens_in - 1.0))
        crowd.append(Person(account, ref, token(secret, account), join_at, late))
    # Impatient polls: the whole crowd offers 10x the sustained booking rate, all through the
    # release (Pace).
    # Admitted people book through these connections: as many as people book at once in life,
    # each from their own phone (since 27 Nov, ninth session; 64 before, which kept a backlog of
    # admitted people in the generator, unseen by the room: thousands of holds ran out unused).
    # TEEKA_BENCH_BOOKERS changes it for experiments.
    booker = Client(host, port, int(os.environ.get("TEEKA_BENCH_BOOKERS", str(BOOKERS))))
    pace = Pace(10 * rate, [client.log, booker.log])
    pacer = asyncio.create_task(pace.run())
    view = View(dsn, setup["day"])
    viewer = asyncio.create_task(view.run())
    deadline = opens_mono + release_s * 4 + hold_s + 30
    cpu_before = time.process_time()
    meter = Meter(server_groups)  # where the CPU went, marked every 0.5 s
    crowd_done = asyncio.Event()

    async def marks() -> None:
        while not crowd_done.is_set():
            meter.mark()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(crowd_done.wait(), 0.5)
        meter.mark()

    marker = asyncio.create_task(marks())
    lags: list[tuple[float, float]] = []  # (when, ms): how late the generator's own loop runs

    async def loop_lag() -> None:
        # Every latency above is measured by this process: a sleep of 10 ms that wakes late
        # shows how much of it is this process's own loop being busy (or off the CPU), not
        # the server's answer.
        while not crowd_done.is_set():
            asked = time.monotonic()
            await asyncio.sleep(0.01)
            woke = time.monotonic()
            lags.append((woke, max(0.0, (woke - asked - 0.01) * 1000)))

    lagger = asyncio.create_task(loop_lag())
    # No cyclic garbage collection in this process while the crowd runs: its full passes over
    # the crowd's objects and answers stopped this loop for up to ~0.3 s (measured, 27 Nov,
    # eleventh session: 6 full and 74 middle passes, 3 s in all, in one run), and every request
    # in flight then looked that much slower — the generator's pause, not the server's. A few
    # minutes of cycles are memory this machine has; collected once the crowd has left.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        await asyncio.gather(*[person(p, client, booker, view, oid, pace, hold_s, deadline)
                               for p in crowd])
    finally:
        gc.enable()
        gc.unfreeze()
    crowd_done.set()
    pace.running = False
    await pacer
    await marker
    await lagger
    client.log += booker.log
    client.errors += booker.errors
    for conn in list(booker.pool._queue):  # type: ignore[attr-defined]
        conn.close()
    crowd_left = time.monotonic()
    generator_cpu = time.process_time() - cpu_before
    view.running = False
    await viewer
    # back to normal: the probe's median over 20 requests within 1.5x (+5 ms) of before
    recovered = None
    while time.monotonic() - crowd_left < 60:
        window = await recovery_probe(prober, probe_path, 20)
        if statistics.median(window) <= baseline * 1.5 + 5:
            recovered = time.monotonic() - crowd_left
            break
        await asyncio.sleep(0.2)
    # places still free on the opening's day: anyone told the queue closed while some were
    # left was sent away from a place (the room must close only when none is)
    conn = await asyncpg.connect(dsn)
    try:
        free_left = int(await conn.fetchval(
            """SELECT coalesce(sum(b.capacity - b.booked), 0) FROM capacity_bucket b
               JOIN vaccination_session s ON s.id = b.session_id WHERE s.date = $1""",
            setup["day"]))
    finally:
        await conn.close()
    # the room's own record: the queue and the order of admissions
    r: Any = aioredis.from_url(redis_url, decode_responses=True)
    queue = [e.split(":")[0] for part in ("drawn", "late")  # the queue: drawn, then late
             for e in await r.lrange(f"teeka:wr:{oid}:{part}", 0, -1)]
    admitted = await r.lrange(f"teeka:wr:{oid}:admitted", 0, -1)
    await r.aclose()
    for conn in [*client.pool._queue, *prober.pool._queue]:  # type: ignore[attr-defined]
        conn.close()
    out_of_order = sum(1 for a, q in zip(admitted, queue, strict=False) if a != q)
    out_of_order += max(0, len(admitted) - len(queue))
    late = sorted((p for p in crowd if p.late and p.position), key=lambda p: p.join_sent)
    late_overtaken = 0
    for i, a in enumerate(late):  # b asked after a was answered, yet got a place before a
        late_overtaken += sum(1 for b in late[i + 1:] if b.join_sent > a.join_answered
                              and b.position is not None and a.position is not None
                              and b.position < a.position)
    pre_people = [p for p in crowd if not p.late and 0 < p.join_answered < opens_mono]
    drawn = {acc: i for i, acc in enumerate(queue)}
    rho = spearman([p.join_answered for p in pre_people],
                   [float(drawn.get(str(p.account), -1)) for p in pre_people])
    booked = sorted(p.booked_at for p in crowd if p.booked_at is not None)
    window = (booked[int(len(booked) * 0.9)] - booked[int(len(booked) * 0.1)]
              if len(booked) >= 10 else float("nan"))
    goodput = (int(len(booked) * 0.9) - int(len(booked) * 0.1)) / window if window else 0.0
    # the same for the moments people learnt they were admitted (the room's pace, as seen)
    learnt = sorted(p.admitted_at for p in crowd if p.admitted_at is not None)
    learnt_window = (learnt[int(len(learnt) * 0.9)] - learnt[int(len(learnt) * 0.1)]
                     if len(learnt) >= 10 else float("nan"))
    learnt_rate = ((int(len(learnt) * 0.9) - int(len(learnt) * 0.1)) / learnt_window
                   if learnt_window else 0.0)
    to_book = [p.booked_at - p.admitted_at for p in crowd
               if p.booked_at is not None and p.admitted_at is not None]
    last = booked[-1] if booked else opens_mono
    in_release = [e for e in client.log if opens_mono <= e[2] <= last and e[0] != "probe"]
    offered = len(in_release) / max(last - opens_mono, 1e-9)
    refusals = [e for e in client.log if e[1] in (429, 503) and e[0] != "probe"]
    others = [e for e in client.log if e[1] >= 400 and e[1] not in (409, 429, 503)]
    codes: dict[str, int] = {}
    for kind, code, *_ in client.log:
        codes[f"{kind} {code}"] = codes.get(f"{kind} {code}", 0) + 1
    latency: dict[str, list[float]] = {}
    for kind, code, _, ms, _ in client.log:
        latency.setdefault(f"{kind} {code}", []).append(ms)
    # A hold is broken when its person, admitted and trying while the hold lasted, did not get a
    # place: a refusal before the hold's end. A person who learnt of the turn too late, or whose
    # hold ran out while trying (slow answers), let it expire: counted apart.
    hold_broken = [p for p in crowd if p.admitted_at is not None and p.booked_at is None
                   and p.failed_at is not None and p.failed_at < p.hold_until - 0.5]
    expired_unused = sum(1 for p in crowd if p.admitted_at is not None and p.booked_at is None
                         and p not in hold_broken)
    acked = [i for p in crowd for i in p.ids]
    result = {
        "offered_x": round(offered / rate, 1),
        # what the crowd sent in each second of the release, over the sustained rate (p10,
        # p50, p90): the offered load stays at 10x all through, not just on average
        "offered_x_p10_p50_p90": [round(pct(v, q) / rate, 1) for q in (10, 50, 90)]
        if len(v := [sent for at, sent in pace.trace if opens_mono + 1 <= at <= last]) > 1
        else None,
        "goodput_ratio": round(goodput / rate, 3),
        "http_5xx": sum(1 for e in client.log if e[1] >= 500 and e[1] != 503)
        + sum(1 for e in client.log if e[1] == 503 and not e[4]),
        "refusal_p99_ms": round(pct([e[3] for e in refusals], 99), 1) if refusals else 0.0,
        "refusals_without_retry_after": sum(1 for e in refusals if not e[4]),
        "hold_broken": len(hold_broken),
        "overtaken": out_of_order + late_overtaken,
        "recovery_s": round(recovered, 1) if recovered is not None else None,
        "sustained_rate_per_s": round(rate, 1),
        "goodput_per_s": round(goodput, 1),
        "admitted_learnt_per_s": round(learnt_rate, 1),
        "admitted_to_booked_p50_p99_s": [round(pct(to_book, 50), 2), round(pct(to_book, 99), 2)]
        if to_book else None,
        "offered_per_s": round(offered),
        # the poll that told someone their turn had come: how long its answer took (p50, p99)
        "turn_news_p50_p99_ms": [round(pct(v, 50), 1), round(pct(v, 99), 1)]
        if (v := [p.news_ms for p in crowd if p.news_ms is not None]) else None,
        "places": setup["places"],
        "sessions": setup["sessions"],
        "crowd": len(crowd),
        "pre_queued": pre,
        "late": len(crowd) - pre,
        "booked": len(booked),
        "admitted": len(admitted),
        "told_closed": sum(1 for p in crowd if p.state == "closed"),
        # places free at the end although people were told the queue had closed
        "closed_with_places_left": free_left if any(p.state == "closed" for p in crowd) else 0,
        "release_s": round(last - opens_mono, 1),
        "prequeue_shuffle_rho": round(rho, 3),
        "admissions_out_of_queue_order": out_of_order,
        "late_arrivals_overtaken": late_overtaken,
        "refusals": len(refusals),
        "other_errors": len(others),
        "connection_errors": client.errors,
        "latency_before_ms": round(baseline, 1),
        "generator_cpu_share": round(generator_cpu / max(crowd_left - t0, 1e-9), 2),
        # how late the generator's own loop woke from a 10 ms sleep during the release (p50, p99)
        "generator_loop_lag_ms": [round(pct(v, 50), 1), round(pct(v, 99), 1)]
        if (v := [ms for at, ms in lags if opens_mono <= at <= last]) else None,
        # the release: from the opening to the last booking
        "cpu_cores": meter.between(opens_mono, last)[0],
        "hold_failures": sorted({p.failure or "?" for p in hold_broken})[:5],
        # for up to ten broken holds: [the refusal, seconds of the hold left (as the person
        # counted) when the refused booking left, ms the answer "admitted" took to arrive]
        "hold_broken_detail": [[p.failure, round(p.hold_until - (p.last_sent or 0), 2),
                                round(p.news_ms or 0)] for p in hold_broken[:10]],
        "holds_seen_but_unused": expired_unused,
        "holds_never_seen": max(0, len(admitted) - sum(1 for p in crowd if p.admitted_at)),
        # every 10 s of the release: [s since the opening, admitted people who learnt it in
        # those 10 s, bookings done in them, admitted people not yet booked at their end, and
        # the p50 / p90 / max time to book of those admitted in them] — how the backlog of
        # admitted people grows and drains
        "backlog_by_10s": backlog(crowd, opens_mono, last),
        # every 10 s of the release: [s since the opening, bookings answered 201, 503, their
        # p50 / p99 ms]
        "bookings_by_10s": bookings_by_10s(client.log, opens_mono, last),
        "codes": codes,
        "latency_p50_p99_ms": {k: [round(pct(v, 50), 1), round(pct(v, 99), 1)]
                               for k, v in sorted(latency.items())},
    }
    return result, acked
