"""Public availability from snapshots: single-flight builds, bounded staleness, ETags, and
invalidation across processes through Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from teeka.surge.snapshot import CHANNEL, SnapshotCache, listen_for_changes
from tests.factories import bulk_citizens, publish

SLOT = "09:00AM-11:00AM"


async def test_many_readers_of_a_stale_answer_cause_one_build() -> None:
    cache = SnapshotCache(max_age=2.0)
    builds = 0

    async def build() -> bytes:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return b'{"n":1}'

    entries = await asyncio.gather(*[cache.get("k", build) for _ in range(200)])
    assert builds == 1 and len({e.etag for e in entries}) == 1


async def _next(cache: SnapshotCache, build: Callable[[], Awaitable[bytes]], old: bytes
                ) -> bytes:
    """Read until the background rebuild has replaced `old` (at most a second)."""
    for _ in range(100):
        body = (await cache.get("k", build)).body
        if body != old:
            return body
        await asyncio.sleep(0.01)
    return body


async def test_answers_are_rebuilt_after_max_age_and_soon_after_a_change() -> None:
    cache = SnapshotCache(max_age=0.4, after_change=0.05, refresh_ahead=0.1)
    n = 0

    async def build() -> bytes:
        nonlocal n
        n += 1
        return str(n).encode()

    assert (await cache.get("k", build)).body == b"1"
    assert (await cache.get("k", build)).body == b"1"  # fresh
    await asyncio.sleep(0.41)
    assert (await cache.get("k", build)).body == b"2"  # as old as max_age: the reader waits
    cache.capacity_changed()
    assert (await cache.get("k", build)).body == b"2"  # debounced: within after_change
    await asyncio.sleep(0.06)
    # A change was seen: the reader still gets the current answer (younger than max_age) while
    # one background build makes the next.
    entry = await cache.get("k", build)
    assert entry.body == b"2" and time.monotonic() - entry.built_at < cache.max_age
    assert await _next(cache, build, b"2") == b"3"
    # Rebuilt ahead: from max_age - refresh_ahead on, in the background, nobody waits.
    await asyncio.sleep(0.31)
    entry = await cache.get("k", build)
    assert entry.body == b"3" and time.monotonic() - entry.built_at < cache.max_age
    assert await _next(cache, build, b"3") == b"4"
    assert n == 4


async def test_a_failed_background_build_keeps_the_answer_until_max_age() -> None:
    cache = SnapshotCache(max_age=0.3, refresh_ahead=0.2)
    fail = False

    async def build() -> bytes:
        if fail:
            raise RuntimeError("database down")
        return b"ok"

    await cache.get("k", build)
    fail = True
    await asyncio.sleep(0.16)
    assert (await cache.get("k", build)).body == b"ok"  # rebuild due, fails in the background
    await asyncio.sleep(0.15)
    with pytest.raises(RuntimeError):  # max_age reached: the reader waits, and gets the error
        await cache.get("k", build)


async def test_etag_304_and_data_age_and_a_booking_shows_within_two_seconds(client, world,
                                                                             maker, settings
                                                                             ) -> None:
    from datetime import timedelta

    from teeka.kit import clock

    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    day = (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")
    params = {"pincode": "492001", "date": day}
    url = "/api/v2/appointment/sessions/public/findByPin"
    r = await client.get(url, params=params)
    assert r.status_code == 200 and float(r.headers["X-Data-Age"]) <= 2.0
    assert "max-age=2" in r.headers["Cache-Control"]
    etag = r.headers["ETag"]
    again = await client.get(url, params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    (h, ref), = await bulk_citizens(maker, settings, 1)
    booked = await client.post("/api/v1/appointments", headers={**h, "Idempotency-Key": "snap-0001"},
                               json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
    assert booked.status_code == 201
    started = time.monotonic()
    while True:
        r = await client.get(url, params=params)
        if r.json()["sessions"][0]["available_capacity"] == 2:
            break
        assert time.monotonic() - started < 2.0, "booking not visible within 2 seconds"
        await asyncio.sleep(0.05)
    assert r.headers["ETag"] != etag


async def test_a_change_in_one_process_reaches_another_through_redis(settings) -> None:
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:6379/15"
    other = SnapshotCache()
    listener = asyncio.create_task(listen_for_changes(other, url))
    await asyncio.sleep(0.2)
    client = aioredis.from_url(url)
    try:
        before = other.changed_at
        await client.publish(CHANNEL, uuid.uuid4().hex.encode())
        for _ in range(50):
            if other.changed_at > before:
                break
            await asyncio.sleep(0.02)
        assert other.changed_at > before
    finally:
        listener.cancel()
        await client.aclose()


async def test_answers_are_compressed_once_and_served_to_gzip_clients(client, world, maker
                                                                      ) -> None:
    import gzip
    from datetime import timedelta

    from teeka.kit import clock

    await publish(maker, world, centre_id=world.centre_a, dose1=3)
    day = (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")
    url = "/api/v2/appointment/sessions/public/calendarByDistrict"
    params = {"district_id": "109", "date": day}
    plain = await client.get(url, params=params, headers={"Accept-Encoding": "identity"})
    zipped = await client.get(url, params=params, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json()  # httpx decodes it
    assert len(gzip.compress(plain.content)) >= int(zipped.headers["content-length"]) - 20


async def test_a_centre_made_active_while_an_answer_is_built_waits_for_the_next_build(
        maker, world) -> None:
    """The build reads in several queries; on PostgreSQL each sees the database as it is when
    it runs. A centre made active between the first query and the next ones is left out of
    that answer (it was not in the first), not a failed build."""
    from sqlalchemy import update
    from sqlalchemy.ext.asyncio import AsyncSession

    from teeka.db import session_scope
    from teeka.kit import clock
    from teeka.models import Centre
    from teeka.national.repository import centres_with_sessions

    await publish(maker, world, centre_id=world.centre_a)
    await publish(maker, world, centre_id=world.centre_b)
    async with session_scope(maker) as db:
        await db.execute(update(Centre).where(Centre.id == world.centre_b).values(active=False))

    class Racing(AsyncSession):
        """A session whose later queries see the centre active and its first did not, as when
        another connection commits in between (done here in the session itself, so that it
        reads the same on SQLite's single connection)."""
        raced = False

        async def execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = await super().execute(*args, **kwargs)
            if not Racing.raced:
                Racing.raced = True
                await super().execute(update(Centre).where(Centre.id == world.centre_b)
                                      .values(active=True))
            return result

    async with Racing(bind=maker.kw["bind"]) as racing:
        found = await centres_with_sessions(racing, day=clock.today(), days=7,
                                            district_id=world.raipur)
        ids = {c.centre.id for c in found}
        await racing.commit()
    assert Racing.raced
    assert world.centre_a in ids
    async with session_scope(maker) as db:
        found = await centres_with_sessions(db, day=clock.today(), days=7,
                                            district_id=world.raipur)
    assert {world.centre_a, world.centre_b} <= {c.centre.id for c in found}
