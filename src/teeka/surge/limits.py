"""Rate limits (the `limits` library): in memory, or in Redis when configured so that every
server process counts together. A refusal is RateLimited: 429 with Retry-After and a message in
the reader's language.

| name | key | default | why |
|---|---|---|---|
| public | client IP (IPv6: its /64) | 100 per 5 minutes (fixed window, batched) | the national platform's limit |
| otp | mobile number | 5 per hour | SMS cost, OTP bombing (a daily cap is also kept in the database) |
| otp_client | client IP (IPv6: its /64) | 100 per hour | SMS pumping: one client sending OTPs to many numbers |
| search | account | 20 per 15 minutes | the national platform logged out after ~20 searches |
| booking | account | 20 per hour | booking bots |

The public limit sits on the hottest path (every availability read), so with Redis it counts in
`BatchedCounts`: in process memory first, added to Redis in one pipeline per process every
`TEEKA_LIMIT_SYNC_INTERVAL` seconds, and exact (a Redis round trip per request) only in the upper
half of the limit. Overshoot is bounded: see `BatchedCounts` and docs/surge.md. The other limits
are exact: one Redis call per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.storage import storage_from_string

from teeka import errors
from teeka.config import Settings

RateLimited = errors.RateLimited
PREFIX = "LIMITS"  # the `limits` library's key prefix in Redis: one reset clears both kinds
log = structlog.get_logger(__name__)


@dataclass
class _Count:
    synced: int  # the count of every process, as Redis last answered it
    pending: int  # this process's hits not yet added to Redis
    expires_at: float  # wall-clock end of the window (Redis's TTL once known)
    sending: int = 0  # this process's hits on their way to Redis (a flush or a hit under way)


class BatchedCounts(Storage):
    """Fixed-window counters for one limit of `amount` hits, shared through Redis in batches.

    A hit is counted in process memory and decided from `synced + pending`: the global count
    Redis last answered plus this process's hits since. Every `interval` seconds one pipeline
    adds the pending hits (INCRBY, EXPIRE NX) and reads the global counts back. While that
    estimate is at most half the limit, no Redis call is made; above half, each hit adds the
    pending hits and itself to Redis at once and is decided on the answer (exact); once the known
    count is over the limit, refusals are decided locally again (a window's count never falls).
    Hits on their way to Redis (a flush or another hit under way) count in the estimate until
    Redis's answer includes them.

    Overshoot bound, with P processes: an admitted hit is decided on a count that misses at most
    the other processes' unsent hits, and each process leaves unsent only hits of the lower half,
    so at most `(P - 1) * min(amount // 2, hits one process takes in one interval)` hits pass
    beyond `amount` in one window. Without Redis it counts in memory only (exact).
    """

    STORAGE_SCHEME = None

    def __init__(self, redis_url: str, *, amount: int, interval: float = 0.2) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(redis_url)
        self.amount = amount
        self.local_up_to = amount // 2
        self.interval = interval
        self._counts: dict[str, _Count] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        import redis

        return redis.RedisError

    def _count(self, key: str, expiry: float, now: float) -> _Count:
        count = self._counts.get(key)
        if count is None or now >= count.expires_at:
            count = self._counts[key] = _Count(0, 0, now + expiry)
        return count

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        count = self._count(key, expiry, now)
        estimate = count.synced + count.sending + count.pending + amount
        if estimate <= self.local_up_to or count.synced > self.amount:
            count.pending += amount
            self._start_flusher()
            return estimate
        adding, count.pending = count.pending + amount, 0
        count.sending += adding
        try:
            total, ttl = (await self._send({key: (adding, expiry)}))[key]
        except BaseException:
            count.pending += adding  # not sent: the next flush tries again
            raise
        finally:
            count.sending -= adding
        self._learn(count, total, ttl, now)
        return total

    async def _send(self, batch: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """One pipeline: add each key's hits, set its window if new, read count and TTL."""
        pipe = self.redis.pipeline(transaction=False)
        for key, (n, expiry) in batch.items():
            full = f"{PREFIX}:{key}"
            pipe.incrby(full, n)
            pipe.expire(full, expiry, nx=True)
            pipe.ttl(full)
        replies = await pipe.execute()
        return {key: (int(replies[3 * i]), int(replies[3 * i + 2]))
                for i, key in enumerate(batch)}

    @staticmethod
    def _learn(count: _Count, total: int, ttl: int, now: float) -> None:
        count.synced = max(count.synced, total)
        if ttl > 0:
            count.expires_at = now + ttl

    def _start_flusher(self) -> None:
        if not self._closed and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.interval)
        await self.flush()

    async def flush(self) -> None:
        """Add every pending hit to Redis in one pipeline and learn the global counts."""
        now = time.time()
        batch: dict[str, tuple[int, int]] = {}
        counts: dict[str, _Count] = {}
        for key, count in list(self._counts.items()):
            if now >= count.expires_at:
                del self._counts[key]  # window over: its unsent hits no longer matter
            elif count.pending:
                batch[key] = (count.pending, max(1, int(count.expires_at - now) + 1))
                counts[key] = count
                count.sending, count.pending = count.sending + count.pending, 0
        if not batch:
            return
        try:
            answers = await self._send(batch)
        except Exception:
            log.warning("limits.batch_failed", keys=len(batch))
            for key, (n, _) in batch.items():
                counts[key].sending -= n
                counts[key].pending += n
            if not self._closed:
                asyncio.get_running_loop().call_soon(self._start_flusher)  # try again later
            return
        for key, (total, ttl) in answers.items():
            counts[key].sending -= batch[key][0]
            self._learn(counts[key], total, ttl, now)
        # Hits counted while this batch was on its way found this flush running and started
        # none of their own: send them in the next one.
        if not self._closed and any(c.pending for c in self._counts.values()):
            asyncio.get_running_loop().call_soon(self._start_flusher)

    async def get(self, key: str) -> int:
        count = self._counts.get(key)
        if count is None or time.time() >= count.expires_at:
            return 0
        return count.synced + count.sending + count.pending

    async def get_expiry(self, key: str) -> float:
        count = self._counts.get(key)
        return count.expires_at if count else time.time()

    async def check(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False

    async def reset(self) -> int | None:
        self._counts.clear()
        deleted = 0
        async for key in self.redis.scan_iter(match=f"{PREFIX}:*"):
            deleted += int(await self.redis.delete(key))
        return deleted

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)
        await self.redis.delete(f"{PREFIX}:{key}")

    async def close(self) -> None:
        """Send what is pending (once) and let go of Redis."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        with contextlib.suppress(Exception):
            await self.flush()
        await self.redis.aclose()


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self.items: dict[str, RateLimitItem] = {
            "public": parse(settings.limit_public),
            "otp": parse(settings.limit_otp),
            "otp_client": parse(settings.limit_otp_client),
            "otp_device": parse(settings.limit_otp_device),
            "otp_device_daily": parse(settings.limit_otp_device_daily),
            "search": parse(settings.limit_search),
            "booking": parse(settings.limit_booking),
        }
        self.batched: BatchedCounts | None = None
        public: Storage
        if settings.redis_url:
            url = settings.redis_url.replace("redis://", "async+redis://", 1)
            self.storage = cast(Storage, storage_from_string(url, implementation="redispy"))
            self.batched = BatchedCounts(settings.redis_url, amount=self.items["public"].amount,
                                         interval=settings.limit_sync_interval)
            public = self.batched
        else:
            self.storage = MemoryStorage()
            public = self.storage
        self.strategy = MovingWindowRateLimiter(self.storage)
        # The public API is the hot path: a fixed window, counted in batches (BatchedCounts).
        self.fixed = FixedWindowRateLimiter(public)
        self.enabled = settings.limits_enabled

    async def hit(self, name: str, key: str) -> None:
        """Count one request of `key` against limit `name`; raise RateLimited when over."""
        if not self.enabled:
            return
        item = self.items[name]
        strategy = self.fixed if name == "public" else self.strategy
        if await strategy.hit(item, name, key):
            return
        stats = await strategy.get_window_stats(item, name, key)
        raise RateLimited(seconds=max(1, int(stats.reset_time - time.time()) + 1))

    async def reset(self) -> None:
        await self.storage.reset()
        if self.batched is not None:
            await self.batched.reset()

    async def close(self) -> None:
        if self.batched is not None:
            await self.batched.close()


def limiter(request: Request) -> Limiter:
    found: Limiter = request.app.state.limiter
    return found


def client_ip(request: Request) -> str:
    return client_key(request.client.host if request.client else "unknown")


@functools.lru_cache(maxsize=4096)
def _ipv6_key(host: str) -> str:
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address in _NAT64:  # an IPv4 client through a NAT64 gateway: that IPv4 address
        return str(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    if address.teredo is not None:  # tunnelled: the client's own (NAT's) IPv4 address
        return str(address.teredo[1])
    if address.is_link_local or address.is_loopback or address.is_site_local:
        return host  # no subscriber's block: each address (with its zone) is one client
    return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def client_key(host: str) -> str:
    """What the per-IP limit counts a client address under: an IPv4 address itself; an IPv6
    address by its /64, the block one subscriber is given (counted one by one, a single phone
    or server could rotate through 2^64 addresses and never be limited); an IPv4 address
    written as IPv6 (::ffff:a.b.c.d, NAT64's 64:ff9b::a.b.c.d, a Teredo tunnel's) as that
    IPv4 address, so that IPv4 clients behind a translator are not all one client; a
    link-local or loopback address as itself."""
    return _ipv6_key(host) if ":" in host else host


DECIDED = "teeka.public_limit"  # scope key: the snapshot fast path already counted this request


async def public_limit(request: Request) -> None:
    """Dependency for the public surface: per client IP (counted once per request)."""
    decided: Any = request.scope.get(DECIDED)
    if decided is True:
        return
    if isinstance(decided, RateLimited):
        raise decided
    await limiter(request).hit("public", client_ip(request))


async def otp_client_limit(request: Request) -> None:
    """Every OTP request, on every front end, first: per client address, whatever the number
    (one client cannot spray SMS over many numbers)."""
    await limiter(request).hit("otp_client", client_ip(request))


def otp_send_limit(request: Request, device: str | None = None
                   ) -> Callable[[str], Awaitable[None]]:
    """The limit of the number an OTP is about to be sent to (teeka.citizen.service.request_otp
    calls it with the normalised number only when it will send one: a request it refuses, too
    soon after the last one, uses up nothing). Counted under a keyed hash of the number, so the
    shared store's keys hold no mobile numbers. From a browser that signed in to this number
    before (`device`, its `teeka_device` cookie: teeka.web.session.trusted_device) the device's
    own limits count instead: others' requests for the number cannot lock its owner out."""

    async def check(number: str) -> None:
        from teeka.kit import signing

        if device is not None:
            await limiter(request).hit("otp_device", device)
            await limiter(request).hit("otp_device_daily", device)
            return
        secret = request.app.state.settings.resolved_secret()
        await limiter(request).hit("otp", signing.keyed_hash(secret, "otp-limit", number)[:32])

    return check
