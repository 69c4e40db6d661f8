"""When a district cuts a slot's capacity below what is booked and asks for the people affected
to be moved: those who booked last leave, each to the best place they can book nearby (this
centre's other slots first, then the district's other centres, then later days), and are
told; anyone no place is found for is cancelled and told. Counters stay equal to a recount;
no one is moved into a place they could not have booked."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from teeka.booking.repository import recount_mismatches
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import (
    Appointment,
    CapacityBucket,
    Centre,
    CentreFee,
    SessionSlot,
    VaccinationSession,
)
from tests.factories import add_beneficiary, latest_sms, login_citizen, next_mobile, publish

SLOT, SLOT2 = "09:00AM-11:00AM", "11:00AM-01:00PM"


async def book_one(client: httpx.AsyncClient, maker, settings, sid: str, *, slot: str = SLOT,
                   birth_year: int = 1980) -> tuple[str, str, str]:
    """A new citizen books one person; their mobile, reference id and appointment id."""
    mobile = next_mobile()
    headers = await login_citizen(client, maker, settings, mobile)
    ref = await add_beneficiary(client, headers, birth_year=birth_year)
    r = await client.post("/api/v1/appointments",
                          headers={**headers, "Idempotency-Key": f"shrink-{mobile}"},
                          json={"session_id": sid, "slot": slot, "beneficiaries": [ref]})
    assert r.status_code == 201, r.text
    return mobile, ref, r.json()["appointment_ids"][0]


async def slot_id(maker, sid: str, label: str = SLOT) -> int:
    async with session_scope(maker) as db:
        return int((await db.execute(select(SessionSlot.id).where(
            SessionSlot.session_id == sid, SessionSlot.label == label))).scalar_one())


async def where(maker, appointment_id: str) -> tuple[str, str, str]:
    """An appointment's status, session and slot label."""
    async with session_scope(maker) as db:
        row = (await db.execute(
            select(Appointment.status, Appointment.session_id, SessionSlot.label)
            .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
            .where(Appointment.id == appointment_id))).one()
        return row.status, row.session_id, row.label


async def counts(maker, slot: int) -> tuple[int, int]:
    async with session_scope(maker) as db:
        b = (await db.execute(select(CapacityBucket).where(
            CapacityBucket.slot_id == slot, CapacityBucket.dose_kind == "first"))).scalar_one()
        return b.capacity, b.booked


async def cut(client: httpx.AsyncClient, world, slot: int, capacity: int, *, move: bool = True
              ) -> httpx.Response:
    return await client.put(f"/api/v1/admin/slots/{slot}/capacity",
                            headers=world.headers("raipur_admin"),
                            json={"dose_kind": "first", "capacity": capacity,
                                  "move_affected": move})


async def test_the_people_booked_last_move_to_another_slot_and_are_told(client, world, maker,
                                                                        settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3, slots=(SLOT, SLOT2))
    first, second, third = [await book_one(client, maker, settings, sid) for _ in range(3)]
    slot = await slot_id(maker, sid)

    r = await cut(client, world, slot, 1, move=False)  # not asked to move anyone: refused
    assert r.status_code == 409 and r.json()["code"] == "CapacityBelowBooked", r.text
    assert await counts(maker, slot) == (3, 3)

    r = await cut(client, world, slot, 1)
    assert r.status_code == 200, r.text
    assert r.json() == {"dose_kind": "first", "capacity": 1, "move_affected": True,
                        "moved": 2, "cancelled": 0, "not_told": []}
    assert await counts(maker, slot) == (1, 1)
    assert await counts(maker, await slot_id(maker, sid, SLOT2)) == (3, 2)
    assert await where(maker, first[2]) == ("booked", sid, SLOT)  # booked first: stays
    for mobile, _ref, appointment in (second, third):
        assert await where(maker, appointment) == ("booked", sid, SLOT2)
        text = await latest_sms(client, maker, settings, mobile)
        # in the reader's language (a new account's is Hindi)
        assert "कम लोगों को टीका लग सकेगा" in text and SLOT2 in text, text
    assert "कम लोगों" not in await latest_sms(client, maker, settings, first[0])
    async with session_scope(maker) as db:
        assert await recount_mismatches(db) == []


async def test_another_centre_of_the_district_then_cancelled_when_nothing_is_free(
        client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    elsewhere = await publish(maker, world, centre_id=world.centre_b, dose1=1)
    other_district = await publish(maker, world, centre_id=world.centre_c, dose1=5)
    earlier, later = [await book_one(client, maker, settings, sid) for _ in range(2)]
    slot = await slot_id(maker, sid)

    r = await cut(client, world, slot, 0)
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["cancelled"]) == (1, 1)
    # who booked first among those leaving has the one place left in the district
    assert await where(maker, earlier[2]) == ("booked", elsewhere, SLOT)
    assert (await where(maker, later[2]))[0] == "cancelled"
    assert "Centre B" in await latest_sms(client, maker, settings, earlier[0])
    text = await latest_sms(client, maker, settings, later[0])
    assert "रद्द कर दिया गया" in text and "फिर से बुक करें" in text, text
    assert await counts(maker, slot) == (0, 0)
    assert await counts(maker, await slot_id(maker, elsewhere)) == (1, 1)
    assert await counts(maker, await slot_id(maker, other_district)) == (5, 0)
    async with session_scope(maker) as db:
        assert await recount_mismatches(db) == []

    # the person cancelled can book again at once
    headers = await login_citizen(client, maker, settings, later[0])
    r = await client.post("/api/v1/appointments",
                          headers={**headers, "Idempotency-Key": "after-the-cut"},
                          json={"session_id": other_district, "slot": SLOT,
                                "beneficiaries": [later[1]]})
    assert r.status_code == 201, r.text


async def test_a_move_only_goes_where_the_person_could_book(client, world, maker,
                                                            settings) -> None:
    """The first place by day and distance is for 45 and over: a 26-year-old goes to the later
    day. Then a paid centre's place would cost a person booked at a free centre money: with
    only such a place left they are cancelled and told, not moved there."""
    day = clock.today() + timedelta(days=1)
    sid = await publish(maker, world, centre_id=world.centre_a, day=day, dose1=2)
    await publish(maker, world, centre_id=world.centre_b, day=day, dose1=5, min_age=45)
    later = await publish(maker, world, centre_id=world.centre_b, day=day + timedelta(days=3),
                          dose1=5)
    young = clock.today().year - 26
    first = await book_one(client, maker, settings, sid, birth_year=young)
    second = await book_one(client, maker, settings, sid, birth_year=young)
    slot = await slot_id(maker, sid)

    r = await cut(client, world, slot, 1)
    assert r.status_code == 200, r.text
    assert r.json()["moved"] == 1
    assert await where(maker, second[2]) == ("booked", later, SLOT)

    async with session_scope(maker) as db:
        (await db.get(Centre, world.centre_b)).fee_type = "Paid"
        db.add(CentreFee(centre_id=world.centre_b, vaccine_id=world.covishield, fee=780))
    r = await cut(client, world, slot, 0)
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["cancelled"]) == (0, 1)
    assert (await where(maker, first[2]))[0] == "cancelled"


async def test_only_the_district_may_cut(client, world, maker,
                                                                      settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    await book_one(client, maker, settings, sid)
    slot = await slot_id(maker, sid)
    r = await client.put(f"/api/v1/admin/slots/{slot}/capacity",
                         headers=world.headers("balod_admin"),
                         json={"dose_kind": "first", "capacity": 0, "move_affected": True})
    assert r.status_code == 403, r.text
    assert await counts(maker, slot) == (2, 1)


async def test_a_session_that_cannot_go_ahead_is_closed(client, world, maker, settings) -> None:
    """Everyone booked in any slot of the closed session moves to another session (never to
    another slot of the one closed) or is cancelled; its places and walk-ins end at what is
    used; closing it again changes nothing."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2, slots=(SLOT, SLOT2),
                        walkins=5)
    elsewhere = await publish(maker, world, centre_id=world.centre_b, dose1=2)
    people = [await book_one(client, maker, settings, sid, slot=s) for s in (SLOT, SLOT2, SLOT)]
    url = f"/api/v1/admin/sessions/{sid}/close"
    r = await client.post(url, headers=world.headers("balod_admin"))
    assert r.status_code == 403, r.text

    r = await client.post(url, headers=world.headers("raipur_admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"session_id": sid, "moved": 2, "cancelled": 1, "not_told": []}
    states = [await where(maker, p[2]) for p in people]
    assert sorted(s[0] for s in states) == ["booked", "booked", "cancelled"]
    assert all(s[1] == elsewhere for s in states if s[0] == "booked")
    async with session_scope(maker) as db:
        left = (await db.execute(select(CapacityBucket.capacity, CapacityBucket.booked).where(
            CapacityBucket.session_id == sid))).all()
        assert {tuple(row) for row in left} == {(0, 0)}
        assert (await db.get(VaccinationSession, sid)).walkin_allowance == 0
        assert await recount_mismatches(db) == []
    r = await client.post(url, headers=world.headers("raipur_admin"))
    assert r.json() == {"session_id": sid, "moved": 0, "cancelled": 0, "not_told": []}
    r = await client.post("/api/v1/admin/sessions/no-such-session/close",
                          headers=world.headers("raipur_admin"))
    assert r.status_code == 404


async def test_a_dose_given_keeps_its_place_and_a_move_today_never_goes_earlier(
        client, world, maker, settings) -> None:
    """A session today: the person vaccinated keeps their place (a cut below them is refused,
    closing the session leaves it used), the others move to a later slot of this session today
    and never to an earlier one, nor to another centre today (its times are not this
    centre's): else to a later day. A closed session's SMS says the session cannot be held."""
    today, tomorrow = clock.today(), clock.today() + timedelta(days=1)
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=3,
                        slots=(SLOT, SLOT2), walkins=2)
    await publish(maker, world, centre_id=world.centre_b, day=today, dose1=5)
    later = await publish(maker, world, centre_id=world.centre_b, day=tomorrow, dose1=5)
    vaccinated, second, third = [await book_one(client, maker, settings, sid) for _ in range(3)]
    headers = await login_citizen(client, maker, settings, vaccinated[0])
    r = await client.get("/api/v1/beneficiaries", headers=headers)
    code = next(b["secret_code"] for b in r.json() if b["reference_id"] == vaccinated[1])
    r = await client.post("/api/v1/centre/doses", headers=world.headers("vaccinator_a"),
                          json={"appointment_id": vaccinated[2], "secret_code": code,
                                "batch": "4121Z025"})
    assert r.status_code in (200, 201), r.text
    first_slot, second_slot = await slot_id(maker, sid), await slot_id(maker, sid, SLOT2)

    r = await cut(client, world, first_slot, 0)  # below the dose given: refused
    assert r.status_code == 409 and r.json()["code"] == "CapacityBelowBooked", r.text
    assert await counts(maker, first_slot) == (3, 3)

    r = await cut(client, world, first_slot, 1)
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["cancelled"]) == (2, 0)
    for person in (second, third):  # the later slot here, today
        assert await where(maker, person[2]) == ("booked", sid, SLOT2)

    r = await client.post(f"/api/v1/admin/sessions/{sid}/close",
                          headers=world.headers("raipur_admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["cancelled"]) == (2, 0)
    for person in (second, third):  # not the earlier slot, not centre B today: tomorrow
        assert await where(maker, person[2]) == ("booked", later, SLOT)
        text = await latest_sms(client, maker, settings, person[0])
        assert "सत्र नहीं हो सकेगा" in text and "Centre B" in text, text
    assert await where(maker, vaccinated[2]) == ("completed", sid, SLOT)
    assert await counts(maker, first_slot) == (1, 1)  # what is used: the dose given
    assert await counts(maker, second_slot) == (0, 0)
    async with session_scope(maker) as db:
        assert (await db.get(VaccinationSession, sid)).walkin_allowance == 0
        assert await recount_mismatches(db) == []
