"""The public availability reads answered before the framework (national.api.SnapshotReads):
the same bytes and headers as their routes, the same validation and the same per-IP limit,
counted once whichever way a request goes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from teeka.config import Settings
from teeka.kit import clock
from teeka.national.api import PUBLIC_READS
from teeka.web.security import HEADERS
from tests.factories import app_with, publish

URL = "/api/v2/appointment/sessions/public/calendarByDistrict"
VOLATILE = {"x-data-age", "date"}


def _day() -> str:
    return (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")


async def test_fast_answers_equal_the_routes_answers(client, world, maker) -> None:
    await publish(maker, world, centre_id=world.centre_a, dose1=3)
    values = {"pincode": "492001", "district_id": "109", "center_id": str(world.centre_a)}
    for path, read in PUBLIC_READS.items():
        for headers in ({"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity",
                                                      "Accept-Language": "hi_IN"}):
            params = {read.param: values[read.param], "date": _day()}
            fast = await client.get(path, params=params, headers=headers)
            # An extra parameter is not the fast path's business: the route answers it.
            routed = await client.get(path, params={**params, "extra": "1"}, headers=headers)
            assert fast.status_code == routed.status_code == 200, (path, fast.text)
            assert fast.content == routed.content
            assert fast.json()  # a real answer, decoded by httpx when gzipped
            assert ({k: v for k, v in fast.headers.items() if k not in VOLATILE}
                    == {k: v for k, v in routed.headers.items() if k not in VOLATILE})
            for name, value in HEADERS.items():
                assert fast.headers[name] == value
            assert 0 <= float(fast.headers["X-Data-Age"]) < 2.0
    # The fast path also answers If-None-Match with 304, as the route does.
    params = {"district_id": "109", "date": _day()}
    r = await client.get(URL, params=params)
    again = await client.get(URL, params=params, headers={"If-None-Match": r.headers["ETag"]})
    routed = await client.get(URL, params={**params, "extra": "1"},
                              headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == routed.status_code == 304 and again.content == b""
    assert ({k: v for k, v in again.headers.items() if k not in VOLATILE}
            == {k: v for k, v in routed.headers.items() if k not in VOLATILE})
    assert again.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("params, detail", [
    ({"district_id": "109", "date": "2021-05-31"}, "date"),
    ({"district_id": "109", "date": "31-02-2021"}, "date"),
    ({"district_id": "10x9", "date": "31-05-2021"}, "district_id"),
    ({"district_id": "99999", "date": "31-05-2021"}, "district_id"),  # valid shape, unknown
    ({"date": "31-05-2021"}, "district_id"),
    ({"district_id": "109"}, "date"),
])
async def test_bad_questions_get_400_in_the_national_shape(client, world, params, detail
                                                           ) -> None:
    r = await client.get(URL, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"].startswith("APPOIN") and r.json()["error"]
    assert "ETag" not in r.headers
    r = await client.get("/api/v2/appointment/sessions/public/findByPin",
                         params={"pincode": "4920011", "date": "31-05-2021"})
    assert r.status_code == 400


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(settings, limit_public="3/minute") as (_, c):
        yield c


async def test_the_public_limit_is_counted_once_whichever_way_a_request_goes(limited, world
                                                                             ) -> None:
    day = _day()
    # 1: answered by the fast path; 2: counted by the fast path, then answered (400) by the
    # route, which must not count it again; 3: a plain route (states).
    assert (await limited.get(URL, params={"district_id": "109", "date": day})).status_code == 200
    assert (await limited.get(URL, params={"district_id": "99999", "date": day})
            ).status_code == 400
    assert (await limited.get("/api/v2/admin/location/states")).status_code == 200
    r = await limited.get(URL, params={"district_id": "109", "date": day},
                          headers={"Accept-Language": "hi_IN"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert any("\u0900" <= ch <= "\u097f" for ch in r.json()["error"])
    assert r.headers["X-Frame-Options"] == "DENY"


async def test_a_failed_build_is_answered_once_not_built_again(settings, world) -> None:
    import time

    from sqlalchemy import text

    async with app_with(settings, db_pool_size=1, db_pool_timeout=1.5) as (app, c):
        async with app.state.sessionmaker() as hog:
            await hog.execute(text("SELECT 1"))  # holds the only connection
            started = time.monotonic()
            r = await c.get(URL, params={"district_id": "109", "date": _day()})
            waited = time.monotonic() - started
            assert r.status_code == 503 and r.json()["errorCode"] == "APPOIN0503"
            assert r.headers["Retry-After"]
            # one wait for a connection (1.5 s), not two (3 s); the margin is for a busy machine
            # (a first request through a new application took 0.4 s more under a full suite)
            assert 1.5 <= waited < 2.7, waited
        assert (await c.get(URL, params={"district_id": "109", "date": _day()})
                ).status_code == 200
