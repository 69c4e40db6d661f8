"""Rate limits: 429 with Retry-After and a translated message; shared across processes through
Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from teeka.app import create_app
from teeka.config import Settings
from tests.factories import bulk_citizens, next_mobile

STRICT = {"limit_public": "3/minute", "limit_otp": "2/hour", "limit_search": "2/15minutes",
          "limit_booking": "2/hour"}


async def strict_client(settings: Settings, **extra: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={**STRICT, **extra}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://teeka.test") as c:
        yield c
    if app.state.settings.redis_url:
        await app.state.limiter.reset()
    await app.state.engine.dispose()


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in strict_client(settings):
        yield c


async def test_public_api_per_ip(strict, world) -> None:
    for _ in range(3):
        assert (await strict.get("/api/v2/admin/location/states")).status_code == 200
    r = await strict.get("/api/v2/admin/location/states", headers={"Accept-Language": "hi_IN"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert any("\u0900" <= ch <= "\u097f" for ch in r.json()["error"])
    r = await strict.get("/api/v1/sessions", params={"district_id": 109})
    assert r.status_code == 429 and r.json()["code"] == "RateLimited"


async def test_otp_sends_per_number(strict, world) -> None:
    mobile = next_mobile()
    for _ in range(2):
        assert (await strict.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
    r = await strict.post("/api/v2/auth/public/generateOTP", json={"mobile": mobile})
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert (await strict.post("/api/v1/auth/otp", json={"mobile": next_mobile()})).status_code == 200


async def test_searches_and_booking_attempts_per_account(strict, world, maker, settings) -> None:
    (h, ref), (h2, _) = await bulk_citizens(maker, settings, 2)
    params = {"district_id": "109", "date": "01-06-2021"}
    for _ in range(2):
        r = await strict.get("/api/v2/appointment/sessions/findByDistrict", headers=h,
                             params=params)
        assert r.status_code == 200
    r = await strict.get("/api/v2/appointment/sessions/findByDistrict", headers=h, params=params)
    assert r.status_code == 429
    r = await strict.get("/api/v2/appointment/sessions/findByDistrict", headers=h2, params=params)
    assert r.status_code == 200  # another account is not affected
    body = {"session_id": str(uuid.uuid4()), "slot": "09:00AM-11:00AM", "beneficiaries": [ref]}
    for i in range(2):
        r = await strict.post("/api/v1/appointments", headers={**h, "Idempotency-Key": f"lim-{i:05d}"},
                              json=body)
        assert r.status_code == 404  # counted, then refused for what it is
    r = await strict.post("/api/v1/appointments", headers={**h, "Idempotency-Key": "lim-00009"},
                          json=body)
    assert r.status_code == 429 and r.json()["code"] == "RateLimited"


async def test_limits_are_shared_by_processes_through_redis(settings, world) -> None:
    shared = {"redis_url": "redis://127.0.0.1:6379/14"}
    one = strict_client(settings, **shared)
    two = strict_client(settings, **shared)
    a = await one.__anext__()
    b = await two.__anext__()
    await a._transport.app.state.limiter.reset()  # type: ignore[attr-defined]
    try:
        codes = [(await c.get("/api/v2/admin/location/states")).status_code for c in (a, b, a, b)]
        assert codes == [200, 200, 200, 429]
    finally:
        for gen in (one, two):
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()
