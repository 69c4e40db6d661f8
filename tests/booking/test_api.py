from __future__ import annotations

import httpx

from tests.factories import add_beneficiary, login_citizen, publish


async def test_book_cancel_rebook_moves_the_figures(client: httpx.AsyncClient, world, maker,
                                                    settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)

    async def free() -> int:
        r = await client.get("/api/v1/sessions", params={"centre_id": world.centre_a, "days": 7})
        assert r.status_code == 200, r.text
        return next(s["available_dose1"] for s in r.json() if s["session_id"] == sid)

    assert await free() == 2
    r = await client.post("/api/v1/appointments", headers={**citizen, "Idempotency-Key": "k-000001"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": [ref], "dose": 1})
    assert r.status_code == 201, r.text
    appt = r.json()["appointment_ids"][0]
    assert await free() == 1
    r = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=citizen)
    assert r.status_code == 204, r.text
    assert await free() == 2


async def test_values_beyond_what_the_database_or_calendar_holds_are_refused_clearly(
        client: httpx.AsyncClient, world) -> None:
    """A date at the calendar's end, a number beyond the column, a NUL in a text: 400 in the
    user's language (or the route's own refusal), never a 500."""
    for params in ({"district_id": 109, "date": "9999-12-31", "days": 2},
                   {"district_id": 99999999999999999999},
                   {"centre_id": -99999999999999999999}):
        r = await client.get("/api/v1/sessions", params=params,
                             headers={"Accept-Language": "en"})
        assert r.status_code == 400, (params, r.text)
        assert r.json()["code"] == "Invalid" and "out of range" in r.json()["message"]
    r = await client.get("/api/v1/sessions", params={"district_id": 99999999999999999999},
                         headers={"Accept-Language": "hi"})
    assert "सीमा से बाहर" in r.json()["message"]
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": "\u0000", "otp": "1"})
    assert r.status_code in (400, 401), r.text
    # the home page's search, at the calendar's end
    r = await client.get("/", params={"date": "31-12-9999", "district_id": "109"})
    assert r.status_code < 500, r.text[:300]


async def test_a_body_that_is_not_json_is_refused_in_the_users_language(
        client: httpx.AsyncClient, world) -> None:
    for lang, words, body in (("en", "could not be read", b"{not json"),
                              ("hi", "पढ़ा नहीं जा सका", b"{not json"),
                              ("en", "could not be read", b"[" * 100_000)):  # too deep to parse
        r = await client.post("/api/v1/appointments", content=body,
                              headers={"Content-Type": "application/json",
                                       "Accept-Language": lang, "Idempotency-Key": "bad-0001"})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "Invalid" and words in r.json()["message"]
