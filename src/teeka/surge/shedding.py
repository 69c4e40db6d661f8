"""Load shedding: each worker process bounds the requests it works on at once. Beyond the bound
it answers 503 with Retry-After at once, instead of queueing until everyone times out. Health
and metrics are never shed; /livez (liveness) is answered here, before the application. The
crowd's requests (queue polls and joins, public availability) are shed first, beyond half of
the bound, so that bookings keep the rest — except a poll by someone whose turn has come (or
whose room has closed), who must hear it; only refused bookings and the like (not refused
crowd requests) slow the waiting room's admissions. The queue's status polls also yield while
`queue_yields_at` other requests (bookings and the like) are in flight in the worker: admitted
people booking come before the crowd asking how far it has got. (Under `teeka serve` the polls
that memory answers with no I/O never reach the shedder: the server's protocol answers them
first, teeka.surge.fastpath.) Joins never yield: during a
release bookings are nearly always in flight, and a late arrival refused a place in the line
until the end would lose it to everyone who came after.
(Database connections are bounded by the pool; waiting for one is bounded by
TEEKA_DB_POOL_TIMEOUT and also ends in a 503.)"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from teeka.auth.service import bearer_token
from teeka.db import CROWD_REQUEST, Door
from teeka.i18n import request_language, translate
from teeka.surge.fastpath import PATH as QUEUE_PATH
from teeka.surge.service import room_of

IN_FLIGHT = Gauge("teeka_requests_in_flight", "Requests being worked on by this process")
SHED = Counter("teeka_requests_shed_total", "Requests refused at once with 503 (overload)")
SHED_CROWD = Counter("teeka_requests_shed_crowd_total",
                     "Of those, the crowd's (queue polls and joins, public availability)")
# Requests worked on (not shed), by whether they are the crowd's; and those that ended in an
# unexpected error (a 500). The operators' view adds these up over every process
# (teeka.watch.beat).
WORKED = Counter("teeka_requests_total", "Requests this process worked on (not shed)", ["kind"])
WORKED_WORK, WORKED_CROWD = WORKED.labels("work"), WORKED.labels("crowd")
FAILED = Counter("teeka_requests_failed_total", "Requests that ended in an unexpected error")
SHED_EARLY = Counter("teeka_requests_shed_early_total",
                     "Of those, refused by the server's protocol before becoming a task")
# How late this process's event loop runs a timer: near 0 while the worker has room; tens of
# milliseconds once every ready socket waits behind the others, and every answer (a refusal
# too) waits as long. During an opening on two cores it was over 50 ms on 3.5 % of wake-ups
# (docs/BENCHMARKS.md, 27 Nov): the operators' sign that the workers are saturated
# (docs/operations.md, alarms). Measured every LAG_PERIOD_S by watch_loop_lag (app lifespan).
LOOP_LAG = Histogram("teeka_event_loop_lag_seconds",
                     "How late this process's event loop ran a timer",
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
LAG_PERIOD_S = 0.25
STATE_KEY = "teeka.load_shedder"  # in the lifespan state uvicorn shares with its connections
EXEMPT = ("/healthz", "/livez", "/metrics")
LIVE = b'{"status":"ok"}'

MESSAGE = "The system is busy. Please try again in a few seconds."
# The crowd's requests (queue polls and joins, public availability) are shed first: beyond half
# of the bound, so that bookings and everything else keep the rest.
CROWD = re.compile(r"/api/v1/openings/[0-9]+/(status|join)|/api/v2/appointment/sessions/public/"
                   r"|/\Z")  # ... and the portal's home page, its availability search


class LoadShedder:
    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after: int = 2,
                 queue_yields_at: int | None = None, door: Door | None = None,
                 extra_headers: dict[str, str] | None = None) -> None:
        self.app = app
        # the security headers every answer carries (teeka.web.security.HEADERS)
        self.extra = [(k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()]
        self.door = door  # the database's door (teeka.db.Door): full, work is refused here
        self.max_in_flight = max_in_flight
        self.crowd_bound = max(1, max_in_flight // 2)
        self.queue_yields_at = queue_yields_at or max_in_flight
        self.retry_after = retry_after
        self.in_flight = 0
        self.work_in_flight = 0  # requests in flight that are not the crowd's
        self.application: Any = None  # the application (its waiting room), from the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # uvicorn shares the lifespan's state with its connections: teeka.web.server asks
            # `refuse_early` there, before a request becomes a task.
            state = scope.get("state")
            if isinstance(state, dict):
                state[STATE_KEY] = self
            self.application = scope.get("app")
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/livez":
            # Liveness: this process answers, whatever the application behind it is doing. The
            # cheapest answer the server can give (the benchmark's raw trivial endpoint).
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", b"15"),
                (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": LIVE})
            return
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        crowd, shed = self._judge(scope)
        if shed:
            self._count(scope, crowd)
            headers, data = self._refusal(scope)
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        self.in_flight += 1
        self.work_in_flight += not crowd
        IN_FLIGHT.inc()
        (WORKED_CROWD if crowd else WORKED_WORK).inc()
        marked = CROWD_REQUEST.set(crowd)  # its Busy answers are counted as the crowd's
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:  # the client left mid-body: no error of ours
            raise
        except Exception:  # the framework answers 500; the operators see it counted
            FAILED.inc()
            raise
        finally:
            CROWD_REQUEST.reset(marked)
            self.in_flight -= 1
            self.work_in_flight -= not crowd
            IN_FLIGHT.dec()

    def refuse_early(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        """For the server's protocol (teeka.web.server), as soon as a request's head has
        arrived: the 503's headers and body when this request is shed now, else None (it goes
        on to the application, where `__call__` judges it again with the in-flight counts of
        that moment). Answered there, a refusal costs no task and no pass through the
        framework's layers, and is sent at once instead of after the loop's next turn."""
        if scope["path"] in EXEMPT or scope["path"] == "/livez":
            return None
        crowd, shed = self._judge(scope)
        if not shed:
            return None
        self._count(scope, crowd)
        SHED_EARLY.inc()
        return self._refusal(scope)

    def _judge(self, scope: Scope) -> tuple[bool, bool]:
        """(whether the request is the crowd's, whether it is shed now)."""
        crowd = CROWD.match(scope["path"]) is not None
        shed = self.in_flight >= (self.crowd_bound if crowd else self.max_in_flight)
        if not crowd and not shed and not scope["path"].startswith("/static/"):
            # Its unit of work would be refused at the database's door (teeka.db.Door): refused
            # now, not after waiting behind the rest for the limit, the account and the token.
            shed = self.door is not None and self.door.full
        if crowd and (shed or self.work_in_flight >= self.queue_yields_at):
            queue = QUEUE_PATH.fullmatch(scope["path"])
            polling = queue if queue is not None and queue[2] == "status" else None
            shed = shed or polling is not None  # status polls yield to work in flight; not joins
            if shed and polling is not None and self.in_flight < self.max_in_flight \
                    and self._news(scope, int(polling[1])):
                crowd, shed = False, False  # someone whose turn has come: not shed
        return crowd, shed

    def _count(self, scope: Scope, crowd: bool) -> None:
        SHED.inc()
        if crowd:
            SHED_CROWD.inc()
        room = self._room(scope)
        if room is not None and not crowd:  # bookings and the like are being refused:
            room.note_busy()  # the waiting room admits more slowly

    def _room(self, scope: Scope) -> Any:
        return room_of(scope if "app" in scope else {"app": self.application})

    def _news(self, scope: Scope, opening_id: int) -> bool:
        """Whether this status poll is by someone whose turn has come (or whose room closed)."""
        room = self._room(scope)
        if room is None:
            return False
        headers = scope["headers"]
        ticket = next((v for k, v in headers if k == b"x-queue-token"), b"")
        bearer = bearer_token(next((v for k, v in headers if k == b"authorization"),
                                   b"").decode("latin-1"))
        if bearer is None:
            return False
        return bool(room.has_news(opening_id, ticket.decode("latin-1")[:2000], bearer[:4096]))

    def _refusal(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The 503's headers and body, in the language the request asks for (chosen as the
        routes choose it: teeka.web.security, and the national API's own rule for /api/v2)."""
        path: str = scope["path"]
        lang = request_language(scope, national=path.startswith("/api/v2/"))
        text = translate(lang, MESSAGE)
        if path.startswith("/api/v2/"):
            body = json.dumps({"errorCode": "APPOIN0503", "error": text}, ensure_ascii=False)
            kind = b"application/json"
        elif path.startswith("/api/"):
            body = json.dumps({"code": "Busy", "message": text}, ensure_ascii=False)
            kind = b"application/json"
        else:
            body = (f'<!doctype html><html lang="{lang}"><meta charset="utf-8"><title>{text}'
                    f"</title><p>{translate('hi', MESSAGE)}</p><p>{MESSAGE}</p></html>")
            kind = b"text/html; charset=utf-8"
        data = body.encode()
        return [(b"content-type", kind), (b"retry-after", str(self.retry_after).encode()),
                (b"content-length", str(len(data)).encode()), (b"cache-control", b"no-store"),
                *self.extra], data


async def watch_loop_lag(period: float = LAG_PERIOD_S) -> None:
    """Until cancelled: sleep `period`, and record how much later than due the loop woke."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        LOOP_LAG.observe(max(0.0, loop.time() - due))
