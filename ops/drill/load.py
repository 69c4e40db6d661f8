"""Booking load for the drill, spoken over HTTP as a phone would: log in by OTP (development
mode shows the SMS on /dev/outbox.json), register beneficiaries, book with an Idempotency-Key.

A 503 or a dropped connection is retried with the *same* key (on either server) until the
answer is final; only a 201 is an acknowledged booking and is recorded. Every booking attempt
is logged with its send and answer times so the drill can measure recovery and check that
nothing was acknowledged while no standby was there to protect it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx

DISTRICTS = (109, 119, 116)
OTP_RE = re.compile(r"\b(\d{6})\b")
CONNECTION_LOST = 0  # status recorded for an attempt that got no HTTP answer


@dataclass(frozen=True)
class Ack:
    """An acknowledged booking: the server answered 201."""

    confirmation_no: str
    appointment_ids: tuple[str, ...]
    key: str
    sent: float  # time.time() of the first attempt with this key
    acked: float  # time.time() of the 201


@dataclass(frozen=True)
class Attempt:
    """One HTTP booking attempt (retries of one key are separate attempts)."""

    key: str
    sent: float
    done: float
    status: int
    server: int


@dataclass
class Target:
    session_id: str
    slot: str
    full: bool = False


def age_fits(birth_year: int, day: date, min_age: int, max_age: int | None) -> bool:
    age = day.year - birth_year  # the age rule counts years on the session date
    return age >= min_age and (max_age is None or age <= max_age)


def retry_delay(response: httpx.Response | None, attempt: int) -> float:
    """How long to wait before retrying a refused or lost request (bounded backoff)."""
    if response is not None:
        try:
            return min(float(response.headers.get("retry-after", "1")), 3.0)
        except ValueError:
            pass
    return min(0.25 * 2.0 ** min(attempt, 3), 2.0)


@dataclass
class Load:
    servers: list[str]
    users: int = 6
    birth_year: int = 1990
    request_timeout: float = 20.0
    acks: list[Ack] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    refused_final: int = 0  # keys given up on without a final answer (in doubt, never acked)
    errors: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.stopping = False
        self.in_flight = 0
        self.idle = asyncio.Event()  # no booking request in flight
        self.idle.set()
        self.busy = asyncio.Event()  # at least one booking request in flight
        self._rr = itertools.count()
        seed = random.SystemRandom().randrange(10**7)
        self._mobiles = itertools.count(9_100_000_000 + seed * 50)
        self._ids = itertools.count(300_000_000_000 + seed * 1000)
        self.down: set[int] = set()  # servers known to be killed (skipped)

    # ------------------------------------------------------------------ plumbing

    def _server(self) -> int:
        live = [i for i in range(len(self.servers)) if i not in self.down] or [0]
        return live[next(self._rr) % len(live)]

    async def _send(self, client: httpx.AsyncClient, method: str, path: str, **kw: object
                    ) -> tuple[int, httpx.Response | None]:
        server = self._server()
        try:
            r = await client.request(method, self.servers[server] + path,
                                     timeout=self.request_timeout, **kw)  # type: ignore[arg-type]
            return server, r
        except (httpx.TransportError, httpx.TimeoutException):
            return server, None

    async def _call(self, client: httpx.AsyncClient, method: str, path: str,
                    deadline: float = 120.0, **kw: object) -> httpx.Response | None:
        """A non-booking call, retried through 503s and lost connections."""
        start = time.monotonic()
        for n in itertools.count():
            _, r = await self._send(client, method, path, **kw)
            if r is not None and r.status_code != 503:
                return r
            if self.stopping or time.monotonic() - start > deadline:
                return None
            await asyncio.sleep(retry_delay(r, n))
        return None

    # ------------------------------------------------------------------ journeys

    async def load_targets(self) -> None:
        tomorrow = date.today() + timedelta(days=1)
        async with httpx.AsyncClient() as client:
            for district in DISTRICTS:
                r = await self._call(client, "GET", "/api/v1/sessions", params={
                    "district_id": district, "date": tomorrow.isoformat(), "days": 7})
                if r is None or r.status_code != 200:
                    raise RuntimeError(f"cannot list sessions: {r and r.text}")
                for s in r.json():
                    day = date.fromisoformat(s["date"])
                    if s["available_dose1"] > 0 and age_fits(self.birth_year, day,
                                                             s["min_age"], s["max_age"]):
                        self.targets += [Target(s["session_id"], slot) for slot in s["slots"]]
        if not self.targets:
            raise RuntimeError("no bookable sessions in the demo data")

    async def _login(self, client: httpx.AsyncClient) -> dict[str, str] | None:
        mobile = str(next(self._mobiles))
        r = await self._call(client, "POST", "/api/v1/auth/otp", json={"mobile": mobile})
        if r is None or r.status_code != 200:
            return None
        txn = r.json()["txn_id"]
        code = None
        for _ in range(100):
            r = await self._call(client, "GET", "/dev/outbox.json")
            if r is not None and r.status_code == 200:
                for m in r.json():
                    found = OTP_RE.search(m["text"])
                    if m["to"] == mobile and found:
                        code = found[1]
                        break
            if code or self.stopping:
                break
            await asyncio.sleep(0.3)
        if code is None:
            return None
        r = await self._call(client, "POST", "/api/v1/auth/otp/confirm",
                             json={"txn_id": txn, "otp": code})
        if r is None or r.status_code != 200:
            return None
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def _register(self, client: httpx.AsyncClient, auth: dict[str, str], n: int
                        ) -> str | None:
        r = await self._call(client, "POST", "/api/v1/beneficiaries", headers=auth, json={
            "name": f"Drill Person {n}", "birth_year": self.birth_year, "gender": "female",
            "id_type": "aadhaar", "id_number": str(next(self._ids))})
        if r is None or r.status_code != 201:
            return None  # a lost 201 of a beneficiary is harmless: register another
        return str(r.json()["reference_id"])

    def _next_target(self) -> Target | None:
        return next((t for t in self.targets if not t.full), None)

    async def _book(self, client: httpx.AsyncClient, auth: dict[str, str], ref: str) -> None:
        """Book one person: one key per target; a 503 or lost answer is retried with that key."""
        while not self.stopping:
            target = self._next_target()
            if target is None:
                return
            key = uuid.uuid4().hex
            body = {"session_id": target.session_id, "slot": target.slot,
                    "beneficiaries": [ref], "dose": 1}
            first = time.time()
            for n in itertools.count():
                await self.running.wait()
                sent = time.time()
                self._flight(+1)
                try:
                    server, r = await self._send(client, "POST", "/api/v1/appointments",
                                                 headers={**auth, "Idempotency-Key": key},
                                                 json=body)
                finally:
                    self._flight(-1)
                status = CONNECTION_LOST if r is None else r.status_code
                self.attempts.append(Attempt(key, sent, time.time(), status, server))
                if r is not None and r.status_code == 201:
                    data = r.json()
                    self.acks.append(Ack(data["confirmation_no"],
                                         tuple(data["appointment_ids"]), key, first,
                                         time.time()))
                    return
                if r is not None and r.status_code == 409 and "SlotFull" in r.text:
                    target.full = True
                    break  # a final refusal: the next target gets a new key
                if r is not None and r.status_code not in (503, 502, 504):
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                if self.stopping:
                    self.refused_final += 1
                    return
                await asyncio.sleep(retry_delay(r, n))

    async def _user(self, i: int) -> None:
        async with httpx.AsyncClient() as client:
            while not self.stopping:
                await self.running.wait()
                auth = await self._login(client)
                if auth is None:
                    continue
                for n in range(4):
                    if self.stopping:
                        return
                    ref = await self._register(client, auth, i * 1000 + n)
                    if ref is not None:
                        await self._book(client, auth, ref)

    async def probe_person(self) -> tuple[dict[str, str], str]:
        """A logged-in citizen with one beneficiary, for the drill's own probe bookings."""
        async with httpx.AsyncClient() as client:
            for _ in range(5):
                auth = await self._login(client)
                ref = auth and await self._register(client, auth, 99_999)
                if auth and ref:
                    return auth, ref
        raise RuntimeError("could not prepare the probe citizen")

    async def probe_book(self, auth: dict[str, str], ref: str, key: str, target: Target
                         ) -> tuple[int, dict[str, object]]:
        """One booking attempt (no retry): (status, JSON body or {})."""
        async with httpx.AsyncClient() as client:
            _, r = await self._send(client, "POST", "/api/v1/appointments",
                                    headers={**auth, "Idempotency-Key": key},
                                    json={"session_id": target.session_id, "slot": target.slot,
                                          "beneficiaries": [ref], "dose": 1})
        if r is None:
            return CONNECTION_LOST, {}
        try:
            body = r.json()
        except ValueError:
            body = {}
        return r.status_code, body if isinstance(body, dict) else {}

    async def run(self) -> None:
        await asyncio.gather(*(self._user(i) for i in range(self.users)))

    async def pause(self) -> None:
        """Stop sending new booking attempts and wait for those in flight to be answered."""
        self.running.clear()
        await self.idle.wait()

    def _flight(self, change: int) -> None:
        self.in_flight += change
        (self.busy.set if self.in_flight else self.busy.clear)()
        (self.idle.clear if self.in_flight else self.idle.set)()

    def resume(self) -> None:
        self.running.set()

    # ------------------------------------------------------------------ figures

    def acked_ids(self, before: float | None = None) -> set[str]:
        return {a for ack in self.acks if before is None or ack.acked <= before
                for a in ack.appointment_ids}

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first 201 of a booking attempt sent after it."""
        done = [a.done for a in self.attempts if a.sent >= moment and a.status == 201]
        return min(done) - moment if done else None

    def window(self, start: float, end: float) -> list[Attempt]:
        return [a for a in self.attempts if start <= a.sent and a.done <= end]
