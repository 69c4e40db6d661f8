"""Rate limits (the `limits` library): in memory, or in Redis when configured so that every
server process counts together. A refusal is RateLimited: 429 with Retry-After and a message in
the reader's language.

| name | key | default | why |
|---|---|---|---|
| public | client IP | 100 per 5 minutes (fixed window) | the national platform's published limit |
| otp | mobile number | 5 per hour | SMS cost, OTP bombing (a daily cap is also kept in the database) |
| search | account | 20 per 15 minutes | the national platform logged out after ~20 searches |
| booking | account | 20 per hour | booking bots |
"""

from __future__ import annotations

import time
from typing import cast

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.storage import storage_from_string

from teeka import errors
from teeka.config import Settings

RateLimited = errors.RateLimited


class Limiter:
    def __init__(self, settings: Settings) -> None:
        if settings.redis_url:
            url = settings.redis_url.replace("redis://", "async+redis://", 1)
            self.storage = cast(Storage, storage_from_string(url, implementation="redispy"))
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)
        # The public API is the hot path: a fixed window is one INCR (moving windows keep a list).
        self.fixed = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {
            "public": parse(settings.limit_public),
            "otp": parse(settings.limit_otp),
            "search": parse(settings.limit_search),
            "booking": parse(settings.limit_booking),
        }
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


def limiter(request: Request) -> Limiter:
    found: Limiter = request.app.state.limiter
    return found


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def public_limit(request: Request) -> None:
    """Dependency for the public surface: per client IP."""
    await limiter(request).hit("public", client_ip(request))


async def otp_limit(request: Request, mobile: str) -> None:
    """Per mobile number (normalised; an invalid number is refused by the service itself)."""
    from teeka.kit.phone import normalise_mobile

    number = normalise_mobile(mobile)
    if number is not None:
        await limiter(request).hit("otp", number)
