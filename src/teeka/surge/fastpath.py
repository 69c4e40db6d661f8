"""The waiting room's status poll and join, answered before the framework when this process's
memory is enough (WaitingRoom.quick_status, quick_join): a poll before the time the ticket named
gets 429 with Retry-After, and a person still waiting behind the admission point gets their
position — two signature checks, no database, no Redis; a join is one atomic Redis step. Anything
else goes on to the full routes (surge.api), which answer the same way. A crowd that polls
impatiently therefore costs the server little, and bookings keep their share of it
(docs/surge.md)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from teeka import errors
from teeka.i18n import pick_language
from teeka.surge.service import room_of

PATH = re.compile(r"/api/v1/openings/(\d{1,9})/(status|join)")


class QueueStatusFastPath:
    def __init__(self, app: ASGIApp, extra_headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        match = PATH.fullmatch(scope["path"])
        room = room_of(scope)
        if (match is None or room is None
                or (match[2] == "status") != (scope["method"] == "GET")):
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"]
                   if k in (b"authorization", b"x-queue-token", b"accept-language", b"cookie",
                            b"content-length", b"transfer-encoding")}
        scheme, _, bearer = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            await self.app(scope, receive, send)
            return
        answer: Any
        if match[2] == "join":
            # A join has no body; anything else is for the full route to judge.
            if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
                await self.app(scope, receive, send)
                return
            try:
                answer = await room.quick_join(int(match[1]), bearer.strip())
            except Exception:  # the full route answers it (503, ...) and logs it
                answer = None
        else:
            ticket = headers.get(b"x-queue-token", b"").decode("latin-1")
            if not ticket or len(ticket) > 2000:
                await self.app(scope, receive, send)
                return
            try:
                answer = await room.quick_status(int(match[1]), bearer.strip(), ticket)
            except Exception:  # the full route answers it (503, ...) and logs it
                answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = []
        if isinstance(answer, errors.DomainError):
            cookie = headers.get(b"cookie", b"").decode("latin-1")
            lang = pick_language(cookie_parser(cookie).get("lang"),
                                 headers.get(b"accept-language", b"").decode("latin-1"))
            status = answer.status
            body = {"code": answer.code, "message": answer.text(lang)}
            extra.append((b"retry-after", str(answer.params.get("seconds", 1)).encode()))
        else:
            status = 200
            body = dict(answer.__dict__)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"), *extra, *self.extra]})
        await send({"type": "http.response.body", "body": data})

