"""Where the waiting room keeps its state: Redis when configured (shared by every process and
host), or this process's memory (the embedded default). Every change happens under the
opening's lock, so the two behave the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol


class Store(Protocol):
    def lock(self, opening: int) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def meta(self, opening: int) -> dict[str, str]: ...
    async def set_meta(self, opening: int, values: dict[str, str]) -> None: ...
    async def member(self, opening: int, account: str) -> str | None: ...
    async def set_member(self, opening: int, account: str, value: str) -> None: ...
    async def add_pre(self, opening: int, account: str) -> None: ...
    async def take_pre(self, opening: int) -> list[str]: ...
    async def push(self, opening: int, accounts: list[str]) -> int: ...
    async def length(self, opening: int) -> int: ...
    async def at(self, opening: int, start: int, stop: int) -> list[str]: ...
    async def hold(self, opening: int, account: str) -> str | None: ...
    async def set_hold(self, opening: int, account: str, value: str, expires: float | None
                       ) -> None: ...
    async def expired_holds(self, opening: int, now: float) -> list[str]: ...
    async def live_holds(self, opening: int) -> int: ...
    async def log_admitted(self, opening: int, accounts: list[str]) -> None: ...
    async def admitted(self, opening: int) -> list[str]: ...
    async def reset(self, opening: int) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._meta: dict[int, dict[str, str]] = {}
        self._members: dict[int, dict[str, str]] = {}
        self._pre: dict[int, list[str]] = {}
        self._queue: dict[int, list[str]] = {}
        self._holds: dict[int, dict[str, str]] = {}
        self._expiry: dict[int, dict[str, float]] = {}
        self._admitted: dict[int, list[str]] = {}

    @contextlib.asynccontextmanager
    async def lock(self, opening: int) -> AsyncIterator[None]:
        async with self._locks.setdefault(opening, asyncio.Lock()):
            yield

    async def meta(self, opening: int) -> dict[str, str]:
        return dict(self._meta.get(opening, {}))

    async def set_meta(self, opening: int, values: dict[str, str]) -> None:
        self._meta.setdefault(opening, {}).update(values)

    async def member(self, opening: int, account: str) -> str | None:
        return self._members.get(opening, {}).get(account)

    async def set_member(self, opening: int, account: str, value: str) -> None:
        self._members.setdefault(opening, {})[account] = value

    async def add_pre(self, opening: int, account: str) -> None:
        self._pre.setdefault(opening, []).append(account)

    async def take_pre(self, opening: int) -> list[str]:
        return self._pre.pop(opening, [])

    async def push(self, opening: int, accounts: list[str]) -> int:
        queue = self._queue.setdefault(opening, [])
        queue.extend(accounts)
        return len(queue)

    async def length(self, opening: int) -> int:
        return len(self._queue.get(opening, []))

    async def at(self, opening: int, start: int, stop: int) -> list[str]:
        return self._queue.get(opening, [])[start:stop]

    async def hold(self, opening: int, account: str) -> str | None:
        return self._holds.get(opening, {}).get(account)

    async def set_hold(self, opening: int, account: str, value: str, expires: float | None
                       ) -> None:
        self._holds.setdefault(opening, {})[account] = value
        expiry = self._expiry.setdefault(opening, {})
        if expires is None:
            expiry.pop(account, None)
        else:
            expiry[account] = expires

    async def expired_holds(self, opening: int, now: float) -> list[str]:
        return [a for a, t in self._expiry.get(opening, {}).items() if t <= now]

    async def live_holds(self, opening: int) -> int:
        return len(self._expiry.get(opening, {}))

    async def log_admitted(self, opening: int, accounts: list[str]) -> None:
        self._admitted.setdefault(opening, []).extend(accounts)

    async def admitted(self, opening: int) -> list[str]:
        return list(self._admitted.get(opening, []))

    async def reset(self, opening: int) -> None:
        for part in (self._meta, self._members, self._pre, self._queue, self._holds,
                     self._expiry, self._admitted):
            part.pop(opening, None)


class RedisStore:
    """Keys `teeka:wr:{opening}:{part}`; the lock is a Redis lock (redis-py), so several
    processes and hosts share one queue."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.r: Any = aioredis.from_url(url, decode_responses=True)

    def _k(self, opening: int, part: str) -> str:
        return f"teeka:wr:{opening}:{part}"

    @contextlib.asynccontextmanager
    async def lock(self, opening: int) -> AsyncIterator[None]:
        # Held for a few round trips: poll for it often rather than redis-py's default 0.1 s.
        async with self.r.lock(self._k(opening, "lock"), timeout=10, blocking_timeout=10,
                               sleep=0.005):
            yield

    async def meta(self, opening: int) -> dict[str, str]:
        found: dict[str, str] = await self.r.hgetall(self._k(opening, "meta"))
        return found

    async def set_meta(self, opening: int, values: dict[str, str]) -> None:
        await self.r.hset(self._k(opening, "meta"), mapping=values)

    async def member(self, opening: int, account: str) -> str | None:
        found: str | None = await self.r.hget(self._k(opening, "members"), account)
        return found

    async def set_member(self, opening: int, account: str, value: str) -> None:
        await self.r.hset(self._k(opening, "members"), account, value)

    async def add_pre(self, opening: int, account: str) -> None:
        await self.r.rpush(self._k(opening, "pre"), account)

    async def take_pre(self, opening: int) -> list[str]:
        key = self._k(opening, "pre")
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            found, _ = await pipe.execute()
        return list(found)

    async def push(self, opening: int, accounts: list[str]) -> int:
        if not accounts:
            return await self.length(opening)
        n: int = await self.r.rpush(self._k(opening, "queue"), *accounts)
        return n

    async def length(self, opening: int) -> int:
        n: int = await self.r.llen(self._k(opening, "queue"))
        return n

    async def at(self, opening: int, start: int, stop: int) -> list[str]:
        if stop <= start:
            return []
        found: list[str] = await self.r.lrange(self._k(opening, "queue"), start, stop - 1)
        return found

    async def hold(self, opening: int, account: str) -> str | None:
        found: str | None = await self.r.hget(self._k(opening, "holds"), account)
        return found

    async def set_hold(self, opening: int, account: str, value: str, expires: float | None
                       ) -> None:
        await self.r.hset(self._k(opening, "holds"), account, value)
        if expires is None:
            await self.r.zrem(self._k(opening, "expiry"), account)
        else:
            await self.r.zadd(self._k(opening, "expiry"), {account: expires})

    async def expired_holds(self, opening: int, now: float) -> list[str]:
        found: list[str] = await self.r.zrangebyscore(self._k(opening, "expiry"), "-inf", now)
        return found

    async def live_holds(self, opening: int) -> int:
        n: int = await self.r.zcard(self._k(opening, "expiry"))
        return n

    async def log_admitted(self, opening: int, accounts: list[str]) -> None:
        if accounts:
            await self.r.rpush(self._k(opening, "admitted"), *accounts)

    async def admitted(self, opening: int) -> list[str]:
        found: list[str] = await self.r.lrange(self._k(opening, "admitted"), 0, -1)
        return found

    async def reset(self, opening: int) -> None:
        await self.r.delete(*[self._k(opening, p) for p in
                              ("meta", "members", "pre", "queue", "holds", "expiry",
                               "admitted")])
