"""District administration over the JSON API: centres, sessions, slot capacities."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from teeka.booking.repository import recount_mismatches
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import CapacityBucket, CentreFee
from tests.factories import add_beneficiary, login_citizen, publish, slot_of

SLOT = "09:00AM-11:00AM"


async def capacities(maker, slot_id: int, kind: str = "first") -> dict[str, tuple[int, int]]:
    async with session_scope(maker) as db:
        rows = (await db.execute(select(CapacityBucket).where(
            CapacityBucket.slot_id == slot_id, CapacityBucket.dose_kind == kind))).scalars()
        return {b.share: (b.capacity, b.booked) for b in rows}


async def book(client: httpx.AsyncClient, maker, settings, session_id: str, people: int) -> None:
    citizen = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, citizen, name=f"Person {i}") for i in range(people)]
    r = await client.post("/api/v1/appointments",
                          headers={**citizen, "Idempotency-Key": f"k-{session_id[:8]}-{people}"},
                          json={"session_id": session_id, "slot": SLOT, "beneficiaries": refs,
                                "dose": 1})
    assert r.status_code == 201, r.text


async def set_capacity(client, world, slot_id: int, capacity: int, who: str = "raipur_admin"
                       ) -> httpx.Response:
    return await client.put(f"/api/v1/admin/slots/{slot_id}/capacity",
                            headers=world.headers(who),
                            json={"dose_kind": "first", "capacity": capacity})


async def test_capacity_cannot_be_reduced_below_what_is_booked(client, world, maker,
                                                               settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    slot_id = await slot_of(maker, sid)
    await book(client, maker, settings, sid, 2)

    r = await set_capacity(client, world, slot_id, 1)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "CapacityBelowBooked"
    assert await capacities(maker, slot_id) == {"open": (3, 2)}

    r = await set_capacity(client, world, slot_id, 2)  # exactly what is booked: allowed
    assert r.status_code == 200, r.text
    assert await capacities(maker, slot_id) == {"open": (2, 2)}

    r = await set_capacity(client, world, slot_id, 10)
    assert r.status_code == 200, r.text
    assert r.json() == {"dose_kind": "first", "capacity": 10, "move_affected": False,
                        "moved": 0, "cancelled": 0, "not_told": []}
    assert await capacities(maker, slot_id) == {"open": (10, 2)}
    async with session_scope(maker) as db:
        assert await recount_mismatches(db) == []


async def test_capacity_change_is_spread_over_the_shares(client, world, maker) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=100,
                        shares={"frontline": 20, "aay": 12, "bpl": 52, "apl": 16})
    slot_id = await slot_of(maker, sid)
    r = await set_capacity(client, world, slot_id, 50)
    assert r.status_code == 200, r.text
    assert await capacities(maker, slot_id) == {
        "frontline": (10, 0), "aay": (6, 0), "bpl": (26, 0), "apl": (8, 0)}


async def test_capacity_of_an_unknown_slot_or_dose(client, world, maker) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    slot_id = await slot_of(maker, sid)
    assert (await set_capacity(client, world, slot_id + 1000, 5)).status_code == 404
    r = await client.put(f"/api/v1/admin/slots/{slot_id}/capacity",
                         headers=world.headers("raipur_admin"),
                         json={"dose_kind": "second", "capacity": 5})
    assert r.status_code == 400, r.text
    r = await client.put(f"/api/v1/admin/slots/{slot_id}/capacity",
                         headers=world.headers("raipur_admin"),
                         json={"dose_kind": "first", "capacity": -1})
    assert r.status_code == 400, r.text
    assert await capacities(maker, slot_id) == {"open": (5, 0)}


async def test_a_centre_with_an_offset_time_or_a_fee_given_twice_is_a_clear_error(
        client, world, maker) -> None:
    """Found by fuzzing (both were 500s): a time with a UTC offset is a field error (a
    centre's times are India's, and one with an offset was compared with one without, or
    stored with it dropped); one vaccine's fee given twice in two spellings is refused."""
    body = {"district_id": 109, "block_id": await _raipur_block(maker, world),
            "name_en": "Fuzz Centre", "name_hi": "फ़ज़ केंद्र", "pincode": 492001,
            "lat": 21.2, "long": 81.6}
    for times in ({"opens_at": "09:00:00+05:30"}, {"closes_at": "17:00:00Z"}):
        r = await client.post("/api/v1/admin/centres", headers=world.headers("raipur_admin"),
                              json={**body, **times})
        assert r.status_code == 400 and r.json()["fields"] == list(times), r.text
    r = await client.post("/api/v1/admin/centres",
                          headers={**world.headers("raipur_admin"), "Accept-Language": "en"},
                          json={**body, "fee_type": "Paid",
                                "fees": {"covishield": 100, "COVISHIELD": 200}})
    assert r.status_code == 400 and "twice" in r.json()["message"], r.text
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("raipur_admin"),
                          json={"centre_id": world.centre_a,
                                "date": str(clock.today() + timedelta(days=1)),
                                "vaccine": "COVISHIELD", "slots": [{"label": "09:00AM-11:00AM",
                                                                     "dose1": 4}],
                                "share_release_time": "13:00+05:30"})
    assert r.status_code == 400 and r.json()["fields"] == ["share_release_time"], r.text


async def test_publish_session_and_paid_centre(client, world, maker) -> None:
    r = await client.post("/api/v1/admin/centres", headers=world.headers("raipur_admin"), json={
        "district_id": 109, "block_id": await _raipur_block(maker, world),
        "name_en": "Aarogya Hospital", "name_hi": "आरोग्य अस्पताल", "pincode": 492007,
        "lat": 21.25, "long": 81.66, "fee_type": "Paid", "fees": {"COVISHIELD": 780}})
    assert r.status_code == 201, r.text
    centre_id = r.json()["id"]
    async with session_scope(maker) as db:
        fees = (await db.execute(select(CentreFee.fee).where(CentreFee.centre_id == centre_id))
                ).scalars().all()
        assert list(fees) == [780]
    day = clock.today() + timedelta(days=3)
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("raipur_admin"), json={
        "centre_id": centre_id, "date": str(day), "vaccine": "covishield", "min_age": 45,
        "slots": [{"label": "09:00am-11:00am", "dose1": 4}, {"label": "02:00PM-04:00PM",
                                                            "dose2": 6}]})
    assert r.status_code == 201, r.text
    assert r.json()["vaccine"] == "COVISHIELD"
    assert r.json()["slots"] == ["09:00AM-11:00AM", "02:00PM-04:00PM"]  # as stored
    r = await client.get("/api/v1/sessions", params={"centre_id": centre_id, "date": str(day)})
    assert r.status_code == 200, r.text
    [listed] = r.json()
    assert (listed["available_dose1"], listed["available_dose2"]) == (4, 6)
    assert listed["slots"] == ["09:00AM-11:00AM", "02:00PM-04:00PM"]


async def _raipur_block(maker, world) -> int:
    from teeka.models import Centre

    async with session_scope(maker) as db:
        centre = await db.get(Centre, world.centre_a)
        assert centre is not None
        return centre.block_id


async def test_a_session_in_the_past_is_refused(client, world) -> None:
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("raipur_admin"), json={
        "centre_id": world.centre_a, "date": str(clock.today() - timedelta(days=1)),
        "vaccine": "COVISHIELD", "slots": [{"label": SLOT, "dose1": 4}]})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "SessionPast"


async def test_a_session_too_far_ahead_is_refused(client, world) -> None:
    body = {"centre_id": world.centre_a, "vaccine": "COVISHIELD",
            "slots": [{"label": SLOT, "dose1": 4}]}
    far = str(clock.today() + timedelta(days=91))
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("raipur_admin"),
                          json={**body, "date": far})
    assert r.status_code == 400 and r.json()["code"] == "Invalid", r.text
    near = str(clock.today() + timedelta(days=90))
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("raipur_admin"),
                          json={**body, "date": near})
    assert r.status_code == 201, r.text


async def test_a_slot_closed_at_zero_opens_again_with_its_shares(client, world, maker) -> None:
    """Set to 0 and back (places that did not come, then did): the shares come back as the
    session split them. Until 27 Nov the second change failed (500), and the slot stayed shut."""
    shares = {"frontline": 20, "aay": 12, "bpl": 52, "apl": 16}
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=10, shares=shares,
                        slots=(SLOT, "11:00AM-01:00PM"))
    async with session_scope(maker) as db:
        first, second = sorted(set((await db.execute(select(CapacityBucket.slot_id).where(
            CapacityBucket.session_id == sid))).scalars()))
    assert (await set_capacity(client, world, first, 0)).status_code == 200
    assert set((await capacities(maker, first)).values()) == {(0, 0)}
    r = await set_capacity(client, world, first, 50)
    assert r.status_code == 200, r.text
    # split as the session's other slot is (its 10 places: 2 / 1 / 5 / 2)
    assert await capacities(maker, first) == {
        "frontline": (10, 0), "aay": (5, 0), "bpl": (25, 0), "apl": (10, 0)}
    # the whole session at 0: nothing left to learn the split from, equal parts
    assert (await set_capacity(client, world, first, 0)).status_code == 200
    assert (await set_capacity(client, world, second, 0)).status_code == 200
    r = await set_capacity(client, world, second, 8)
    assert r.status_code == 200, r.text
    assert sorted(c for c, _ in (await capacities(maker, second)).values()) == [2, 2, 2, 2]
