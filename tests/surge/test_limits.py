"""Rate limits: 429 with Retry-After and a translated message; shared across processes through
Redis."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from limits import parse

from teeka.config import Settings
from teeka.surge.limits import PREFIX
from tests.factories import app_with, bulk_citizens, next_mobile, running_server

STRICT = {"limit_public": "3/minute", "limit_otp": "2/hour", "limit_search": "2/15minutes",
          "limit_booking": "2/hour"}


async def strict_client(settings: Settings, **extra: object) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(settings, **{**STRICT, **extra}) as (app, c):
        yield c
        if app.state.settings.redis_url:
            await app.state.limiter.reset()


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
    assert r.json()["errorCode"] == "APPOIN0429"  # the national shape has a code for it
    assert (await strict.post("/api/v1/auth/otp", json={"mobile": next_mobile()})).status_code == 200


async def test_a_refused_otp_request_uses_up_none_of_the_number_s_sends(settings: Settings,
                                                                       world) -> None:
    """The number's limit counts OTPs sent, not requests: requests refused as too soon after
    the last OTP do not bring its owner nearer to being locked out."""
    from datetime import timedelta

    from teeka.kit import clock

    async with app_with(settings, **STRICT, otp_resend_interval_seconds=30, redis_url="") as (
            _, c):
        mobile = next_mobile()
        assert (await c.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
        for _ in range(3):
            r = await c.post("/api/v1/auth/otp", json={"mobile": mobile})
            assert r.status_code == 429 and r.json()["code"] == "OtpResendTooSoon"
        clock.shift(timedelta(seconds=31))
        assert (await c.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
        clock.shift(timedelta(seconds=31))
        r = await c.post("/api/v1/auth/otp", json={"mobile": mobile})
        assert r.status_code == 429 and r.json()["code"] == "RateLimited"  # the third OTP


async def test_others_cannot_lock_a_person_out_of_their_account(settings: Settings, world,
                                                                maker) -> None:
    """Someone who knows a person's number uses up its OTP sends (hourly and daily): a browser
    that never signed in to the number is refused, but the person's own browser, which signed
    in to it before (its `teeka_device` cookie), still gets an OTP and signs in, within limits
    of its own. The cookie is good only for its number."""
    from tests.citizen.test_pages import page_login

    async with app_with(settings, **STRICT, otp_daily_limit=2, limit_otp_device="2/hour",
                        redis_url="") as (app, _):
        def browser(host: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4000)),
                                     base_url="http://teeka.test")

        mobile = next_mobile()
        async with browser("203.0.113.7") as own, browser("198.51.100.9") as stranger, \
                browser("203.0.113.7") as borrowed:
            assert await page_login(own, maker, settings, mobile) == "/me"  # OTP 1 of 2
            assert own.cookies.get("teeka_device")
            own.cookies.delete("teeka_citizen")  # the session ended; the device is remembered
            r = await stranger.post("/api/v1/auth/otp", json={"mobile": mobile})
            assert r.status_code == 200  # OTP 2 of 2: the number's hour and day are used up
            r = await stranger.post("/api/v1/auth/otp", json={"mobile": mobile})
            assert r.status_code == 429
            form = await borrowed.get("/login")
            r = await borrowed.post("/login", data={
                "csrf": re.search(r'name="csrf" value="([^"]+)"', form.text)[1],  # type: ignore[index]
                "mobile": mobile})
            assert r.status_code == 429 and 'id="mobile-error"' in r.text
            # the owner's browser: its own limit (2/hour), not the number's
            assert await page_login(own, maker, settings, mobile) == "/me"
            own.cookies.delete("teeka_citizen")
            assert await page_login(own, maker, settings, mobile) == "/me"
            own.cookies.delete("teeka_citizen")
            form = await own.get("/login")
            r = await own.post("/login", data={
                "csrf": re.search(r'name="csrf" value="([^"]+)"', form.text)[1],  # type: ignore[index]
                "mobile": mobile})
            assert r.status_code == 429  # the device's third in the hour
            # the cookie does not lift another number's limits
            other = next_mobile()
            for _ in range(2):
                assert (await stranger.post("/api/v1/auth/otp",
                                            json={"mobile": other})).status_code == 200
            form = await own.get("/login")
            r = await own.post("/login", data={
                "csrf": re.search(r'name="csrf" value="([^"]+)"', form.text)[1],  # type: ignore[index]
                "mobile": other})
            assert r.status_code == 429


async def test_otp_sends_per_client_address_whatever_the_numbers(settings: Settings,
                                                                   world) -> None:
    """SMS pumping: one client sending OTPs to ever new numbers is stopped after
    `limit_otp_client` sends, on the citizen API, the national API and the sign-in page (in the
    page's language); another client address is not."""
    import re

    async with app_with(settings, **STRICT, limit_otp_client="3/hour", redis_url="") as (app, _):
        async def client_at(host: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(host, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://teeka.test")

        one = await client_at("203.0.113.7")
        other = await client_at("198.51.100.9")
        async with one, other:
            for _ in range(3):
                r = await one.post("/api/v1/auth/otp", json={"mobile": next_mobile()})
                assert r.status_code == 200
            r = await one.post("/api/v1/auth/otp", json={"mobile": next_mobile()})
            assert r.status_code == 429 and r.json()["code"] == "RateLimited"
            assert 1 <= int(r.headers["Retry-After"]) <= 3601
            r = await one.post("/api/v2/auth/public/generateOTP", json={"mobile": next_mobile()})
            assert r.status_code == 429 and "Retry-After" in r.headers
            form = await one.get("/login", params={"lang": "hi"})
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            r = await one.post("/login", params={"lang": "hi"},
                               data={"csrf": csrf.group(1), "mobile": next_mobile()})
            assert r.status_code == 429 and 'id="mobile-error"' in r.text
            error = r.text.split('id="mobile-error">', 1)[1].split("<", 1)[0]
            assert any("\u0900" <= ch <= "\u097f" for ch in error), error
            r = await other.post("/api/v1/auth/otp", json={"mobile": next_mobile()})
            assert r.status_code == 200


async def test_the_public_otp_pair_counts_in_the_public_limit(strict, world) -> None:
    """`/api/v2/auth/public/*` is part of the public API: its calls count in the per-IP limit
    with the reads (the partner pair `/api/v2/auth/*` does not)."""
    body = {"txnId": str(uuid.uuid4()), "otp": "0" * 64}
    for _ in range(3):
        r = await strict.post("/api/v2/auth/public/confirmOTP", json=body)
        assert r.status_code in (400, 401), r.text
    r = await strict.post("/api/v2/auth/public/confirmOTP", json=body)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert (await strict.get("/api/v2/admin/location/states")).status_code == 429
    r = await strict.post("/api/v2/auth/confirmOTP", json=body)
    assert r.status_code in (400, 401), r.text


async def test_the_otp_limit_keeps_no_mobile_number(settings: Settings, world) -> None:
    """Counted under a keyed hash: the store's keys (Redis's, shared and inspectable, named the
    same way) hold no mobile number."""
    async with app_with(settings, **STRICT, redis_url="") as (app, c):
        mobile = next_mobile()
        assert (await c.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
        storage = app.state.limiter.storage
        keys = [*storage.events, *storage.storage]
        assert keys and not any(mobile in k for k in keys)


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


# ---------------------------------------------------------------- batched public limit, 2 processes


@pytest.fixture
def two_servers(settings: Settings, world: object, tmp_path: Path) -> Iterator[list[str]]:
    """Two `teeka serve` processes on the test database, sharing one Redis database, with a
    public limit of 40 a minute (batched: BatchedCounts)."""
    env = {**os.environ, "TEEKA_DATABASE_URL": settings.database_url,
           "TEEKA_SECRET_KEY": settings.resolved_secret(), "TEEKA_DATA_DIR": str(tmp_path),
           "TEEKA_REDIS_URL": REDIS, "TEEKA_EMBEDDED_WORKER": "false",
           "TEEKA_LOG_LEVEL": "WARNING", "TEEKA_LIMIT_PUBLIC": f"{LIMIT}/minute",
           "TEEKA_LIMIT_SYNC_INTERVAL": "0.2"}
    with running_server(env) as one, running_server(env) as two:
        yield [one, two]


REDIS = "redis://127.0.0.1:6379/14"
LIMIT = 40


async def test_two_processes_share_the_batched_public_limit(two_servers: list[str],
                                                            world: object) -> None:
    from datetime import timedelta

    from teeka.kit import clock

    # A client address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1), so that no
    # other run sharing this Redis counts against it.
    who = {"X-Forwarded-For": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}."
                              f"{secrets.randbelow(250) + 1}"}
    key = f"{PREFIX}:" + parse(f"{LIMIT}/minute").key_for("public", who["X-Forwarded-For"])
    day = (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")
    paths = ["/api/v2/appointment/sessions/public/calendarByDistrict"  # the snapshot fast path
             f"?district_id=109&date={day}", "/api/v2/admin/location/states"]  # a plain route
    redis = aioredis.from_url(REDIS)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            # Far below the limit, a hit costs no Redis call: counted in the process, added in
            # one batch within the sync interval. Looked at after every answer, Redis lags
            # behind at least once (a flush may fall between one answer and our look, but not
            # between all five of them; answered only after Redis counted it, it never would).
            lagged = False
            for i in range(5):
                r = await client.get(two_servers[0] + paths[0], headers=who)
                assert r.status_code == 200
                lagged |= int(await redis.get(key) or 0) < i + 1
            assert lagged
            await asyncio.sleep(0.5)
            assert int(await redis.get(key) or 0) == 5
            # Then both processes together, alternating, both endpoints: together they refuse
            # after the limit, within the documented overshoot ((P-1) * LIMIT // 2 for P = 2).
            answers = []
            for i in range(100):
                answers.append(await client.get(two_servers[i % 2] + paths[i // 2 % 2],
                                                headers={**who, "Accept-Language": "hi_IN"}))
            admitted = 5 + sum(r.status_code == 200 for r in answers)
            assert LIMIT <= admitted <= LIMIT + LIMIT // 2, admitted
            assert {r.status_code for r in answers} == {200, 429}
            refused = [r for r in answers if r.status_code == 429]
            assert all(1 <= int(r.headers["Retry-After"]) <= 61 for r in refused)
            assert all(any("\u0900" <= ch <= "\u097f" for ch in r.json()["error"])
                       for r in refused)
            # Once refused, refused by both: the last ten answers are all 429.
            assert all(r.status_code == 429 for r in answers[-10:])
            await asyncio.sleep(0.5)
            assert int(await redis.get(key) or 0) >= 105  # every hit reached Redis
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_below_half_the_limit_reads_do_not_wait_for_redis(settings: Settings) -> None:
    """The lower half of the public limit is decided in the process: with Redis unreachable, it
    still answers at once, keeps the hits and tries the batch again later."""
    from teeka.surge.limits import Limiter

    limiter = Limiter(settings.model_copy(update={
        "redis_url": "redis://127.0.0.1:1/0", "limit_public": "10/minute",
        "limit_sync_interval": 0.05}))
    assert limiter.batched is not None
    for _ in range(5):
        await limiter.hit("public", "10.0.0.1")
    await asyncio.sleep(0.2)  # a few batches failed meanwhile
    key = parse("10/minute").key_for("public", "10.0.0.1")
    assert await limiter.batched.get(key) == 5  # kept, not lost nor doubled
    with pytest.raises(redis_errors.ConnectionError):  # the upper half asks Redis at once
        await limiter.hit("public", "10.0.0.1")
    await limiter.close()


async def test_hits_on_their_way_to_redis_still_count() -> None:
    """A hit counted while the process's last hits are on their way to Redis (a flush under
    way) counts them too: with 3 a minute (the lower half, 1, decided in the process), the
    second hit is past that half and goes to Redis at once. CI once saw a fourth hit admitted
    across two processes when it fell in that moment and was decided in the process on a count
    that had left out the first one."""
    from teeka.surge.limits import BatchedCounts

    counts = BatchedCounts(REDIS, amount=3, interval=60)
    key = f"on-the-way-{uuid.uuid4().hex}"
    try:
        assert await counts.incr(key, 60) == 1  # decided here, sent later
        flushing = asyncio.create_task(counts.flush())
        await asyncio.sleep(0)  # the flush has taken the pending hit and is on its way
        assert await counts.get(key) == 1
        await counts.incr(key, 60)  # counts the hit on its way: past the half, to Redis now
        await flushing
        assert int(await counts.redis.get(f"{PREFIX}:{key}") or 0) == 2
        assert await counts.get(key) == 2
    finally:
        await counts.redis.delete(f"{PREFIX}:{key}")
        await counts.close()


def test_ipv6_clients_are_counted_by_their_64_block() -> None:
    from teeka.surge.limits import client_key

    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2::a") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1" == client_key("10.0.0.1")
    assert client_key("10.0.0.2") != client_key("10.0.0.1")
    assert client_key("unknown") == "unknown" and client_key("zz:zz") == "zz:zz"
    # IPv4 clients behind a translator are each their own client, not one /64 for them all
    assert client_key("64:ff9b::a00:1") == "10.0.0.1" != client_key("64:ff9b::a00:2")
    assert client_key("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.45"  # Teredo
    # no subscriber's block: each address is one client
    assert client_key("fe80::1%eth0") == "fe80::1%eth0" != client_key("fe80::2%eth0")
    assert client_key("::1") == "::1"


async def test_the_public_limit_holds_against_an_ipv6_client_rotating_addresses(
        settings: Settings, world) -> None:
    """One subscriber's /64 is one client: a new address for every request (a phone or a server
    can take 2^64 of them) does not escape the public limit, on the snapshot fast path or on a
    plain route; another /64 is counted apart."""
    from datetime import timedelta

    from teeka.kit import clock

    day = (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")
    paths = [f"/api/v2/appointment/sessions/public/calendarByDistrict?district_id=109&date={day}",
             "/api/v2/admin/location/states"]
    async with app_with(settings, **STRICT, redis_url="") as (app, _):
        async def get(path: str, host: str) -> int:
            transport = httpx.ASGITransport(app=app, client=(host, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test") as c:
                return (await c.get(path)).status_code

        codes = [await get(paths[i % 2], f"2001:db8:77:1::{i + 1:x}") for i in range(4)]
        assert codes == [200, 200, 200, 429]
        assert await get(paths[0], "2001:db8:77:1:ffff::9") == 429
        assert await get(paths[1], "2001:db8:77:2::1") == 200


async def test_a_shared_phone_is_trusted_for_each_number_signed_in_on_it(settings: Settings,
                                                                        world, maker) -> None:
    """A family's phone: signed in to two numbers, it is trusted for both (each number's own
    limits used up by someone else do not stop it)."""
    from tests.citizen.test_pages import page_login

    async with app_with(settings, **STRICT, redis_url="") as (app, _):
        def browser(host: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4000)),
                                     base_url="http://teeka.test")

        first, second = next_mobile(), next_mobile()
        async with browser("203.0.113.8") as phone, browser("198.51.100.10") as stranger:
            for mobile in (first, second):
                assert await page_login(phone, maker, settings, mobile) == "/me"
                phone.cookies.delete("teeka_citizen")
                assert (await stranger.post("/api/v1/auth/otp",
                                            json={"mobile": mobile})).status_code == 200
                assert (await stranger.post("/api/v1/auth/otp",
                                            json={"mobile": mobile})).status_code == 429
            for mobile in (first, second):
                assert await page_login(phone, maker, settings, mobile) == "/me"
                phone.cookies.delete("teeka_citizen")


async def test_an_app_keeps_its_device_token_and_is_not_locked_out(settings: Settings, world,
                                                                  maker) -> None:
    """The citizen API: signing in returns a `device_token`; sent with later OTP requests for
    that number, they count under the device's own limits, so others using up the number's
    sends do not lock the app out. Without it, or for another number, the number's limits."""
    from tests.factories import latest_sms

    async with app_with(settings, **STRICT, redis_url="") as (app, _):
        def client_at(host: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 4000)),
                                     base_url="http://teeka.test")

        mobile = next_mobile()
        async with client_at("203.0.113.9") as phone, client_at("198.51.100.11") as stranger:
            r = await phone.post("/api/v1/auth/otp", json={"mobile": mobile})
            assert r.status_code == 200
            code = re.search(r"\b(\d{6})\b", await latest_sms(phone, maker, settings, mobile))
            assert code
            r = await phone.post("/api/v1/auth/otp/confirm",
                                 json={"txn_id": r.json()["txn_id"], "otp": code[1]})
            assert r.status_code == 200, r.text
            device = r.json()["device_token"]
            assert device and mobile not in device
            assert (await stranger.post("/api/v1/auth/otp",
                                        json={"mobile": mobile})).status_code == 200
            assert (await stranger.post("/api/v1/auth/otp",
                                        json={"mobile": mobile})).status_code == 429
            r = await phone.post("/api/v1/auth/otp", json={"mobile": mobile})
            assert r.status_code == 429  # without the token: the number's limit
            r = await phone.post("/api/v1/auth/otp",
                                 json={"mobile": mobile, "device_token": device})
            assert r.status_code == 200, r.text
            r = await phone.post("/api/v1/auth/otp",
                                 json={"mobile": mobile, "device_token": "junk"})
            assert r.status_code == 429
