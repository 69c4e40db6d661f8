"""Booking through the API against a real database: shares, idempotency, reschedule, scoping."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from teeka.auth.service import citizen_actor
from teeka.booking import service
from teeka.booking.repository import recount_mismatches
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import (
    Account,
    Appointment,
    AuditEntry,
    Beneficiary,
    Booking,
    CapacityBucket,
    OutboxMessage,
)
from tests.factories import add_beneficiary, login_citizen, next_mobile, publish

SLOT = "09:00AM-11:00AM"
SLOT2 = "11:00AM-01:00PM"


def book_body(sid: str, refs: list[str], slot: str = SLOT, dose: int | None = 1) -> dict[str, object]:
    return {"session_id": sid, "slot": slot, "beneficiaries": refs, "dose": dose}


async def book(client: httpx.AsyncClient, headers: dict[str, str], sid: str, refs: list[str],
               key: str, slot: str = SLOT) -> httpx.Response:
    return await client.post("/api/v1/appointments", headers={**headers, "Idempotency-Key": key},
                             json=book_body(sid, refs, slot))


async def counters_match(maker) -> None:
    async with session_scope(maker) as db:
        assert await recount_mismatches(db) == []


async def test_last_place_goes_to_one_caller_and_the_next_gets_slot_full(client, world, maker,
                                                                          settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1)
    a = await login_citizen(client, maker, settings)
    b = await login_citizen(client, maker, settings)
    ra, rb = await add_beneficiary(client, a), await add_beneficiary(client, b)
    assert (await book(client, a, sid, [ra], "key-a-0001")).status_code == 201
    r = await book(client, b, sid, [rb], "key-b-0001")
    assert r.status_code == 409
    assert r.json()["code"] == "SlotFull"
    await counters_match(maker)


async def test_group_booking_is_all_or_nothing(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    h = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, h, name=f"Person {i}") for i in range(3)]
    r = await book(client, h, sid, refs, "group-0001")
    assert r.status_code == 409 and r.json()["code"] == "SlotFull"
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.sum(CapacityBucket.booked)))).scalar() == 0
        assert (await db.execute(select(func.count()).select_from(Appointment))).scalar() == 0
    r = await book(client, h, sid, refs[:2], "group-0002")
    assert r.status_code == 201 and len(r.json()["appointment_ids"]) == 2
    await counters_match(maker)


async def test_a_booking_writes_each_appointments_audit_entry_and_one_sms(client, world, maker,
                                                                        settings) -> None:
    """With each appointment its audit entry (its object the appointment, with the
    confirmation number and the bucket the place came from) and, once per account, the
    confirmation SMS to its mobile; a booking refused part way writes none of them. (On
    PostgreSQL these rows come from the guarded statement itself: docs/booking-and-capacity.md.)"""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    h = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, h, name=f"Person {i}") for i in range(4)]

    async def messages() -> int:
        async with session_scope(maker) as db:
            return int((await db.execute(select(func.count()).select_from(OutboxMessage)))
                       .scalar_one())

    before = await messages()  # the OTPs of signing in
    r = await book(client, h, sid, refs, "rows-0001")  # three places for four people
    assert r.status_code == 409 and r.json()["code"] == "SlotFull"
    assert await messages() == before
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "booking.appointment.booked"))).scalar() == 0
    r = await book(client, h, sid, refs[:2], "rows-0002")
    assert r.status_code == 201, r.text
    confirmation, ids = r.json()["confirmation_no"], r.json()["appointment_ids"]
    async with session_scope(maker) as db:
        appointments = {a.id: a for a in (await db.execute(
            select(Appointment).where(Appointment.id.in_(ids)))).scalars()}
        audit = (await db.execute(select(AuditEntry).where(
            AuditEntry.action == "booking.appointment.booked"))).scalars().all()
        sms = (await db.execute(select(OutboxMessage).where(
            OutboxMessage.body.contains(confirmation)))).scalars().all()
        mobile = (await db.execute(select(Account.mobile).join(
            Beneficiary, Beneficiary.account_id == Account.id).where(
            Beneficiary.reference_id == refs[0]))).scalar_one()
    assert sorted(e.object_id for e in audit) == sorted(ids)
    for e in audit:
        assert e.object_type == "appointment" and e.actor.startswith("account:")
        assert e.detail == {"confirmation": confirmation,
                            "bucket": appointments[e.object_id].bucket_id}
    assert len(sms) == 1 and sms[0].recipient == mobile and sms[0].status == "pending"
    assert "Person 0" in sms[0].body and "Person 1" in sms[0].body
    await counters_match(maker)


async def test_priority_share_full_refuses_others_until_release(client, world, maker,
                                                                settings) -> None:
    day = clock.today() + timedelta(days=1)
    sid = await publish(maker, world, centre_id=world.centre_a, day=day, dose1=10,
                        shares={"aay": 30, "bpl": 70}, share_release_time=time(15, 0))
    h_mobile = next_mobile()
    h = await login_citizen(client, maker, settings, mobile=h_mobile)
    aay = [await add_beneficiary(client, h, name=f"AAY {i}", priority_group="aay")
           for i in range(4)]
    # the AAY share (3 places) fills
    for i, ref in enumerate(aay[:3]):
        assert (await book(client, h, sid, [ref], f"aay-key-{i:04d}")).status_code == 201
    # a 4th AAY person finds the share full: the unused BPL places are not theirs before 15:00
    r = await book(client, h, sid, [aay[3]], "aay-key-0003")
    assert r.status_code == 409 and r.json()["code"] == "SlotFull"
    # after the release time the unused BPL places are open to everyone
    clock.shift(clock.local_datetime(day, 15, 0) - clock.now() + timedelta(seconds=1))
    r = await book(client, h, sid, [aay[3]], "aay-key-0004")
    assert r.status_code == 401  # the short-lived token has expired meanwhile
    h = await login_citizen(client, maker, settings, mobile=h_mobile)
    r = await book(client, h, sid, [aay[3]], "aay-key-0004")
    assert r.status_code == 201, r.text
    async with session_scope(maker) as db:
        shares = dict((await db.execute(select(CapacityBucket.share, CapacityBucket.booked))).all())
    assert shares == {"aay": 3, "bpl": 1}
    await counters_match(maker)


async def test_same_request_twice_yields_one_appointment(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    h = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h)
    first = await book(client, h, sid, [ref], "retry-key-1")
    again = await book(client, h, sid, [ref], "retry-key-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    # the same key for a different request is refused, not silently replayed
    ref2 = await add_beneficiary(client, h, name="Other Person")
    other = await book(client, h, sid, [ref2], "retry-key-1")
    assert other.status_code == 422 and other.json()["code"] == "IdempotencyKeyReused"
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(Appointment))).scalar() == 1
        assert (await db.execute(select(func.count()).select_from(Booking))).scalar() == 1


async def test_same_request_sent_concurrently_yields_one_appointment(client, world, maker,
                                                                     settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    h = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h)
    results = await asyncio.gather(*[book(client, h, sid, [ref], "twin-key-01") for _ in range(6)])
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["confirmation_no"] for r in results}) == 1
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(Appointment))).scalar() == 1
    await counters_match(maker)


async def test_one_active_appointment_per_person(client, world, maker, settings) -> None:
    s1 = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    s2 = await publish(maker, world, centre_id=world.centre_b, dose1=5)
    h = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h)
    assert (await book(client, h, s1, [ref], "one-active-1")).status_code == 201
    r = await book(client, h, s2, [ref], "one-active-2")
    assert r.status_code == 409 and r.json()["code"] == "AlreadyBooked"


async def test_reschedule_moves_the_place_atomically(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1, slots=(SLOT, SLOT2))
    full = await publish(maker, world, centre_id=world.centre_b, dose1=1)
    h = await login_citizen(client, maker, settings)
    other = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h)
    blocker = await add_beneficiary(client, other, name="Blocker")
    assert (await book(client, other, full, [blocker], "blocker-01")).status_code == 201
    appt = (await book(client, h, sid, [ref], "resched-01")).json()["appointment_ids"][0]

    # to a full slot: refused and nothing changes
    r = await client.post(f"/api/v1/appointments/{appt}/reschedule", headers=h,
                          json={"session_id": full, "slot": SLOT})
    assert r.status_code == 409 and r.json()["code"] == "SlotFull"
    r = await client.get(f"/api/v1/appointments/{appt}", headers=h)
    assert r.json()["slot"] == SLOT and r.json()["session_id"] == sid

    # to a free slot: the new place is taken, the old one is free again at once
    r = await client.post(f"/api/v1/appointments/{appt}/reschedule", headers=h,
                          json={"session_id": sid, "slot": SLOT2})
    assert r.status_code == 200, r.text
    assert r.json()["slot"] == SLOT2 and r.json()["status"] == "booked"
    newcomer = await add_beneficiary(client, other, name="Newcomer")
    assert (await book(client, other, sid, [newcomer], "newcomer-01")).status_code == 201
    await counters_match(maker)
    async with session_scope(maker) as db:
        actions = (await db.execute(select(AuditEntry.action))).scalars().all()
    assert "booking.appointment.rescheduled" in actions
    assert "booking.appointment.booked" in actions


async def test_cancelled_place_is_bookable_again_at_once(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1)
    a = await login_citizen(client, maker, settings)
    b = await login_citizen(client, maker, settings)
    ra, rb = await add_beneficiary(client, a), await add_beneficiary(client, b)
    appt = (await book(client, a, sid, [ra], "cancel-0001")).json()["appointment_ids"][0]
    assert (await book(client, b, sid, [rb], "cancel-0002")).status_code == 409
    assert (await client.post(f"/api/v1/appointments/{appt}/cancel", headers=a)).status_code == 204
    # a second cancel does not give the place back twice
    again = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=a)
    assert again.status_code == 409
    assert (await book(client, b, sid, [rb], "cancel-0003")).status_code == 201
    await counters_match(maker)


async def test_a_cancel_after_a_move_gives_back_the_place_the_move_took(client, world, maker,
                                                                        settings) -> None:
    """A cancel that read the appointment before a move committed gives back the place the
    appointment holds when it is cancelled: the moved-to one, not the one the move already
    gave back (which would let one booking too many into it and keep a place for nobody)."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    other = await publish(maker, world, centre_id=world.centre_b, dose1=2)
    h = await login_citizen(client, maker, settings)
    ref, ref2 = await add_beneficiary(client, h), await add_beneficiary(client, h, name="Two")
    appt = (await book(client, h, sid, [ref], "race-00001")).json()["appointment_ids"][0]
    assert (await book(client, h, sid, [ref2], "race-00002")).status_code == 201
    actor = citizen_actor(settings.resolved_secret(), h["Authorization"].split(" ", 1)[1])
    assert actor is not None
    # The cancel's unit of work has read the appointment (at the first centre) ...
    stale = async_sessionmaker(maker.kw["bind"], expire_on_commit=False)
    async with stale() as db:
        read = await db.get(Appointment, appt)  # kept: the session's identity map holds it
        assert read.session_id == sid
        await db.commit()
        # ... when a move to the second centre commits ...
        r = await client.post(f"/api/v1/appointments/{appt}/reschedule", headers=h,
                              json={"session_id": other, "slot": SLOT})
        assert r.status_code == 200, r.text
        # ... and then it cancels
        await service.cancel_appointment(db, actor=actor, appointment_id=appt)
        await db.commit()
    await counters_match(maker)
    async with session_scope(maker) as db:
        booked = dict((await db.execute(
            select(CapacityBucket.session_id, func.sum(CapacityBucket.booked))
            .where(CapacityBucket.session_id.in_([sid, other]))
            .group_by(CapacityBucket.session_id))).all())
    assert booked == {sid: 1, other: 0}


async def test_a_citizen_cannot_see_or_book_for_another_account(client, world, maker,
                                                                settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    owner = await login_citizen(client, maker, settings)
    intruder = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, owner)
    r = await book(client, intruder, sid, [ref], "intrude-01")
    assert r.status_code == 404
    listed = (await client.get("/api/v1/beneficiaries", headers=intruder)).json()
    assert listed == []
    appt = (await book(client, owner, sid, [ref], "owner-0001")).json()["appointment_ids"][0]
    assert (await client.get(f"/api/v1/appointments/{appt}", headers=intruder)).status_code == 404
    r = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=intruder)
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/beneficiaries/{ref}", headers=intruder)
    assert r.status_code == 404


async def test_eligibility_refusals_are_domain_errors(client, world, maker, settings) -> None:
    young = await publish(maker, world, centre_id=world.centre_a, dose1=5, min_age=45)
    h = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h, birth_year=clock.today().year - 30)
    r = await book(client, h, young, [ref], "elig-00001")
    assert r.status_code == 422 and r.json()["code"] == "AgeNotEligible"
    anyone = await publish(maker, world, centre_id=world.centre_b, dose1=5)
    r = await client.post("/api/v1/appointments", headers={**h, "Idempotency-Key": "elig-00002",
                                                           "Accept-Language": "hi"},
                          json=book_body(anyone, [ref], dose=2))
    assert r.status_code == 422 and r.json()["code"] == "WrongDose"
    assert any("\u0900" <= ch <= "\u097f" for ch in r.json()["message"])  # Hindi text
    r = await client.post("/api/v1/appointments", headers={"Idempotency-Key": "elig-00003"},
                          json=book_body(young, [ref]))
    assert r.status_code == 401
