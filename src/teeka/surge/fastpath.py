"""The waiting room's status poll and join, answered before the framework when this process's
memory is enough (WaitingRoom.quick_status, quick_join): a poll before the time the ticket named
gets 429 with Retry-After, and a person still waiting behind the admission point gets their
position — two signature checks, no database, no Redis; a join is one atomic Redis step. Anything
else goes on to the full routes (surge.api), which answer the same way. A crowd that polls
impatiently therefore costs the server little, and bookings keep their share of it
(docs/surge.md).

The polls that need no I/O at all are answered earlier still, by the server's protocol as soon
as the request's head has arrived (`answer_early`, called by teeka.web.server): no task, no pass
through the ASGI layers, no wait for the event loop's next turn. The middleware answers the
rest of what memory and one Redis step can answer (joins; a ticket from before the draw) and
every request that did not come through that protocol (tests through ASGI, other servers)."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from teeka import errors
from teeka.auth.service import bearer_token
from teeka.i18n import request_language
from teeka.surge.service import room_of

PATH = re.compile(r"/api/v1/openings/([0-9]{1,9})/(status|join)")
STATE_KEY = "teeka.queue_fast_path"  # in the lifespan state uvicorn shares with its connections
WANTED = (b"authorization", b"x-queue-token", b"content-length", b"transfer-encoding")
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
ANSWERED_EARLY = Counter("teeka_queue_polls_answered_early_total",
                         "Waiting-room status polls answered from memory by the server's "
                         "protocol, before becoming a task")


class _Poll:
    """What a status poll or a join carries, when the fast path may answer it."""

    __slots__ = ("bearer", "kind", "opening", "scope", "ticket")

    def __init__(self, opening: int, kind: str, bearer: str, ticket: str, scope: Scope) -> None:
        self.opening, self.kind, self.bearer, self.ticket = opening, kind, bearer, ticket
        self.scope = scope


def _poll(scope: Scope) -> _Poll | None:
    """The request as the fast path reads it; None: for the full routes to judge."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
        return None
    match = PATH.fullmatch(scope["path"])
    if match is None or (match[2] == "status") != (scope["method"] == "GET"):
        return None
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in WANTED:  # the first of repeated headers, as the routes read them
            headers.setdefault(name, value)
    bearer = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if bearer is None:
        return None
    ticket = ""
    if match[2] == "join":
        # A join has no body; anything else is for the full route to judge.
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            return None
    else:
        ticket = headers.get(b"x-queue-token", b"").decode("latin-1")
        if not ticket or len(ticket) > 2000:
            return None
    return _Poll(int(match[1]), match[2], bearer, ticket, scope)


class QueueStatusFastPath:
    def __init__(self, app: ASGIApp, extra_headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()]
        self.application: Any = None  # the application (its waiting room), from the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            state = scope.get("state")
            if isinstance(state, dict):  # teeka.web.server asks `answer_early` there
                state[STATE_KEY] = self
            self.application = scope.get("app")
            await self.app(scope, receive, send)
            return
        poll = _poll(scope)
        room = room_of(scope) if poll is not None else None
        if poll is None or room is None:
            await self.app(scope, receive, send)
            return
        answer: Any
        try:
            if poll.kind == "join":
                answer = await room.quick_join(poll.opening, poll.bearer)
            else:
                answer = await room.quick_status(poll.opening, poll.bearer, poll.ticket)
        except Exception:  # the full route answers it (503, ...) and logs it
            answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, headers, data = self._render(answer, poll)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def answer_early(self, scope: Scope) -> Answer | None:
        """For the server's protocol, as soon as a request's head has arrived: the whole answer
        to a status poll that this process's memory answers with no I/O at all
        (WaitingRoom.quick_status_now); None: the request goes on to the application."""
        poll = _poll(scope)
        if poll is None or poll.kind != "status":
            return None
        room = room_of({"app": self.application})
        if room is None:
            return None
        try:
            answer = room.quick_status_now(poll.opening, poll.bearer, poll.ticket)
        except Exception:  # the full route answers it (503, ...) and logs it
            return None
        if answer is None:
            return None
        ANSWERED_EARLY.inc()
        return self._render(answer, poll)

    def _render(self, answer: Any, poll: _Poll) -> Answer:
        extra: list[tuple[bytes, bytes]] = []
        if isinstance(answer, errors.DomainError):
            lang = request_language(poll.scope)  # as the full routes choose it
            status = answer.status
            body = {"code": answer.code, "message": answer.text(lang)}
            extra.append((b"retry-after", str(answer.params.get("seconds", 1)).encode()))
        else:
            status = 200
            body = dict(answer.__dict__)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return status, [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"), *extra, *self.extra], data
