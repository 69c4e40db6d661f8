"""The HTTP connection as `teeka serve` runs it: uvicorn's httptools protocol with the bounds a
flood of slow or idle clients needs (docs/surge.md, "Load shedding").

Uvicorn alone times out only an idle keep-alive connection between two requests. A connection
that sends nothing, or its request head a byte at a time, or a body that never ends, is kept
for ever; connections are accepted without limit (`limit_concurrency` only answers 503 to a
request once its head has arrived). A few thousand such sockets from one machine would use up
the worker's file descriptors and every place for real requests, health checks included.
Here, per worker process:

* a connection beyond `limit_concurrency` - 1 open ones is answered 503 with `Retry-After` and
  closed as soon as it is accepted (a file descriptor for a moment, not for ever), so the
  requests on the connections already open go on being answered;
* a request's head must arrive within `http_head_timeout_s` of the connection or of the
  request's first byte, and its body within `http_body_timeout_s` of the head; otherwise the
  connection is closed (408 when nothing else is being answered on it);
* a waiting-room status poll that this process's memory answers with no I/O
  (teeka.surge.fastpath), and then a request the load shedder refuses (teeka.surge.shedding),
  are answered here, as soon as the head has arrived: no task, no pass through the framework's
  layers, and no wait for the event loop's next turn, which under load is what such an answer
  waits for most;
* a request's head may be at most `MAX_HEAD_BYTES`; beyond, 400 and the connection is
  closed (uvicorn's own bound on head size applies only to h11, and
  `teeka serve` runs httptools);
* a request declaring a body larger than `MAX_BODY_BYTES` (`Content-Length`) is answered 413
  and the connection closed before any of it is read, and a chunked body is cut off (413 when
  nothing has been answered yet) as soon as more than that has arrived: the framework would
  read a JSON body whole into memory, so a few such requests could use up a worker's memory
  (the largest legitimate body, a CSV upload, is refused by its own route above 1 MiB);
* a request with a small body (a `Content-Length` up to `BUFFERED_BODY_BYTES`, without
  `Expect: 100-continue`) becomes a task only once its whole body has arrived, as a buffering
  reverse proxy would pass it on: a client sending its body slowly holds a connection until the
  body's deadline (then 408), not one of the places the load shedder counts in flight, so a
  flood of slow bookings cannot keep everyone else refused. Larger or chunked bodies go to the
  application at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from teeka.config import get_settings
from teeka.surge.fastpath import STATE_KEY as FAST_PATH_KEY
from teeka.surge.fastpath import Answer
from teeka.surge.shedding import STATE_KEY as SHEDDER_KEY


def _plain(head: bytes, text: str) -> bytes:
    """A whole answer with a plain-text body (in Hindi and English: whoever reads it)."""
    body = text.encode()
    return (head + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n" % len(body) + body)


BUSY = _plain(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2",
              "Server busy, please try again shortly / सर्वर व्यस्त है, कृपया थोड़ी देर बाद फिर "
              "कोशिश करें")
MAX_HEAD_BYTES = 16 * 1024
# Bodies up to this size are buffered before the request becomes a task (at most uvicorn's high
# water mark, beyond which it stops reading until the application takes the body).
BUFFERED_BODY_BYTES = min(64 * 1024, HIGH_WATER_LIMIT)
# Above the largest body any route takes (a CSV upload: 1 MiB and its multipart envelope).
MAX_BODY_BYTES = 2 * 1024 * 1024
TOO_LARGE = _plain(b"HTTP/1.1 413 Content Too Large", "Request too large / अनुरोध बहुत बड़ा है")
TOO_SLOW = _plain(b"HTTP/1.1 408 Request Timeout",
                  "Request timeout / अनुरोध का समय समाप्त हो गया")


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a bound on open connections and deadlines for a request's head and
    body (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.head_timeout_s = settings.http_head_timeout_s
        self.body_timeout_s = settings.http_body_timeout_s
        self.deadline: asyncio.TimerHandle | None = None
        self.head_bytes = 0  # bytes received while the head of a request was awaited
        self.body_bytes = 0  # bytes of the current request's body received so far
        self.awaiting_head = True
        # a request whose small body is still arriving: it becomes a task when the body is whole
        self.awaiting_body: tuple[RequestResponseCycle, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # At most limit_concurrency - 1 open: uvicorn refuses every request (503) once as many
        # connections as the limit are open, and the ones already open should go on working.
        if (self.limit_concurrency is not None
                and len(self.connections) >= self.limit_concurrency - 1):
            self.transport = transport  # connection_lost closes it (nothing else is set up)
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._expect(self.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._expect(None)
        self.awaiting_body = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.body_bytes = 0
        if self.deadline is None:  # the next request on a kept-alive connection has begun
            self._expect(self.head_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self.awaiting_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if (self.awaiting_head and self.head_bytes > MAX_HEAD_BYTES
                and not self.transport.is_closing()):
            # Still no end of the head after this many bytes (the parser keeps a header line
            # in memory until it ends): refused, the connection closed.
            if self.cycle is None or self.cycle.response_complete:
                self.send_400_response("Request head too large")
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes <= MAX_BODY_BYTES:
            super().on_body(body)
            return
        if not self.transport.is_closing():  # a chunked body beyond the bound: cut off
            self._too_large(answer=self.cycle is not None and not self.cycle.response_started)

    def _too_large(self, answer: bool) -> None:
        """Refuse a body beyond MAX_BODY_BYTES: 413 (when nothing was answered yet), closed."""
        if answer:
            self.transport.write(TOO_LARGE)
        self.transport.close()

    def on_headers_complete(self) -> None:
        self.awaiting_head = False
        self._expect(self.body_timeout_s)  # before the application may start answering
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._expect(None)
        self.awaiting_head, self.head_bytes = True, 0  # the next request's head may follow
        super().on_message_complete()
        if self.awaiting_body is not None:  # its body is whole: now the application's
            cycle, app = self.awaiting_body
            self.awaiting_body = None
            super()._start_asgi_task(cycle, app)

    def _expect(self, within: float | None) -> None:
        """(Re)arm the deadline for what the client must send next; None: nothing due."""
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = (None if within is None
                         else self.loop.call_later(within, self._too_slow))

    def _too_slow(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or self.awaiting_body is not None:
            self.transport.write(TOO_SLOW)  # nothing else is being answered on this connection
        self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is self.app and cycle.more_body and _declares_too_much(cycle.scope["headers"]):
            self._too_large(answer=True)
            return
        answer = self._answer_early(cycle.scope) if app is self.app else None
        if answer is None:
            if (app is self.app and cycle.more_body and not cycle.waiting_for_100_continue
                    and _small_body(cycle.scope["headers"])):
                self.awaiting_body = (cycle, app)  # on_message_complete starts it
            else:
                super()._start_asgi_task(cycle, app)
            return
        # What the cycle's send does for a whole response, at once (the answer is small).
        status, headers, body = answer
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
        for name, value in [*self.server_state.default_headers, *headers]:
            lines += [name, b": ", value, b"\r\n"]
        if not cycle.keep_alive:
            lines.append(b"connection: close\r\n")
        lines += [b"\r\n", body]
        cycle.response_started = True
        self.transport.write(b"".join(lines))
        cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _answer_early(self, scope: Any) -> Answer | None:
        """A whole answer given here, or None: the request becomes a task as usual. First a
        queue poll this process's memory answers with no I/O (teeka.surge.fastpath: it needs
        no place among the requests in flight), then the load shedder's refusal."""
        fast = self.app_state.get(FAST_PATH_KEY)
        answer: Answer | None = fast.answer_early(scope) if fast is not None else None
        if answer is not None:
            return answer
        shedder = self.app_state.get(SHEDDER_KEY)
        refusal = shedder.refuse_early(scope) if shedder is not None else None
        return None if refusal is None else (503, *refusal)


def _declares_too_much(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request declares a body larger than MAX_BODY_BYTES."""
    for name, value in headers:
        if name == b"content-length":
            return value.isdigit() and int(value) > MAX_BODY_BYTES
    return False


def _small_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's body is one the protocol buffers before the application sees it: a
    Content-Length from 1 to BUFFERED_BODY_BYTES, not chunked. (A request that expects
    `100-continue` is never buffered: its client waits for the application's go-ahead before
    it sends the body; uvicorn's cycle knows it.)"""
    length = None
    for name, value in headers:
        if name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            return False
    try:
        return length is not None and 0 < int(length) <= BUFFERED_BODY_BYTES
    except ValueError:
        return False
