"""Availability at the speed of a static file: precomputed answers, bounded staleness.

An answer (the JSON bytes of one public availability query) is built once and served to
everyone asking the same question until it is older than `max_age` (2 s), or older than
`after_change` (0.25 s) once a capacity change was seen — in this process, or in another one
through Redis pub/sub when configured. Building is single-flight per key: a thousand concurrent
readers of a stale answer cause one query. Booking never reads these (docs/booking-and-capacity.md).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CHANNEL = "teeka:capacity-changed"


@dataclass(frozen=True)
class Entry:
    body: bytes
    gzipped: bytes  # compressed once, served to every client that accepts gzip
    etag: str
    built_at: float  # monotonic


class SnapshotCache:
    def __init__(self, *, max_age: float = 2.0, after_change: float = 0.25,
                 max_entries: int = 50_000) -> None:
        self.max_age = max_age
        self.after_change = after_change
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.changed_at = 0.0  # monotonic time of the last capacity change seen
        self.builds = 0

    def clear(self) -> None:
        self._entries.clear()

    def capacity_changed(self) -> None:
        self.changed_at = time.monotonic()

    def _fresh(self, entry: Entry | None, now: float) -> bool:
        if entry is None:
            return False
        age = now - entry.built_at
        if age >= self.max_age:
            return False
        return not (entry.built_at < self.changed_at and age >= self.after_change)

    async def get(self, key: str, build: Callable[[], Awaitable[bytes]]) -> Entry:
        entry = self._entries.get(key)
        if self._fresh(entry, time.monotonic()):
            assert entry is not None
            return entry
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if self._fresh(entry, time.monotonic()):
                assert entry is not None
                return entry
            started = time.monotonic()
            body = await build()
            entry = Entry(body=body, gzipped=gzip.compress(body, compresslevel=6, mtime=0),
                          etag='"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
                          built_at=started)
            self.builds += 1
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._locks.pop(old, None)
            return entry


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
