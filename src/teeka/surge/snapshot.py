"""Availability at the speed of a static file: precomputed answers, bounded staleness.

An answer (the JSON bytes of one public availability query, and its gzip) is built once and
served to everyone asking the same question. Its age (shown in X-Data-Age) never reaches
`max_age` (2 s): a reader finding it that old waits for a new build. Readers do not wait
otherwise: once the answer is `refresh_ahead` seconds from `max_age`, or `after_change`
(0.25 s) old after a capacity change was seen — in this process, or in another one through Redis
pub/sub when configured — one background task rebuilds it while everyone keeps getting the
current answer. Building is single-flight per key: a thousand readers cause one query. The
compression runs in a thread, off the event loop. Booking never reads these
(docs/booking-and-capacity.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

CHANNEL = "teeka:capacity-changed"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Entry:
    body: bytes
    gzipped: bytes  # compressed once, served to every client that accepts gzip
    etag: str
    built_at: float  # monotonic: when the build started (its data is at least this recent)


def _entry(body: bytes, started: float) -> Entry:
    return Entry(body=body, gzipped=gzip.compress(body, compresslevel=6, mtime=0),
                 etag='"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
                 built_at=started)


class SnapshotCache:
    def __init__(self, *, max_age: float = 2.0, after_change: float = 0.25,
                 refresh_ahead: float = 0.5, max_entries: int = 50_000) -> None:
        self.max_age = max_age
        self.after_change = after_change
        # Rebuild in the background from this age on (at most one build per half max_age).
        self.refresh_at = max(max_age - refresh_ahead, max_age / 2)
        self.cache_control = f"public, max-age={int(max_age)}".encode()
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._building: dict[str, asyncio.Task[Entry]] = {}
        self.changed_at = 0.0  # monotonic time of the last capacity change seen
        self.builds = 0

    def clear(self) -> None:
        self._entries.clear()
        for task in self._building.values():
            task.cancel()
        self._building.clear()

    def capacity_changed(self) -> None:
        self.changed_at = time.monotonic()

    def _due(self, entry: Entry, age: float) -> bool:
        """Time to build a newer answer (still serving this one meanwhile)."""
        return age >= self.refresh_at or (entry.built_at < self.changed_at
                                          and age >= self.after_change)

    def peek(self, key: str, build: Callable[[], Awaitable[bytes]]) -> Entry | None:
        """The answer to serve now without waiting, or None when the reader must wait (none
        yet, or as old as max_age). Starts a background rebuild when one is due."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = time.monotonic() - entry.built_at
        if age >= self.max_age:
            return None
        if self._due(entry, age) and key not in self._building:
            self._start(key, build)
        return entry

    async def get(self, key: str, build: Callable[[], Awaitable[bytes]]) -> Entry:
        entry = self.peek(key, build)
        if entry is not None:
            return entry
        task = self._building.get(key) or self._start(key, build)
        return await asyncio.shield(task)

    def _start(self, key: str, build: Callable[[], Awaitable[bytes]]) -> asyncio.Task[Entry]:
        task = asyncio.get_running_loop().create_task(self._build(key, build))
        self._building[key] = task
        task.add_done_callback(lambda t: self._built(key, t))
        return task

    async def _build(self, key: str, build: Callable[[], Awaitable[bytes]]) -> Entry:
        started = time.monotonic()
        body = await build()
        entry = await asyncio.to_thread(_entry, body, started)  # gzip releases the GIL
        self.builds += 1
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def _built(self, key: str, task: asyncio.Task[Entry]) -> None:
        if self._building.get(key) is task:
            del self._building[key]
        if not task.cancelled() and task.exception() is not None:
            # A waiting reader gets the error itself; a background rebuild only leaves a trace
            # (the current answer is served until it is max_age old, then readers wait again).
            log.warning("snapshot.build_failed", key=key, error=repr(task.exception()))

    async def close(self) -> None:
        tasks = list(self._building.values())
        self.clear()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def listen_for_changes(cache: SnapshotCache, redis_url: str) -> None:
    """Mark the cache stale whenever any process announces a capacity change."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                cache.capacity_changed()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
