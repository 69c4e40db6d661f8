"""The vaccination services called directly, in units of work like the request's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka import errors
from teeka.auth.actor import Actor
from teeka.booking import repository as booking_repo
from teeka.db import session_scope
from teeka.kit import clock, ids
from teeka.models import (
    Appointment,
    AppointmentStatus,
    AuditEntry,
    Booking,
    CapacityBucket,
    DoseRecord,
    SessionSlot,
)
from teeka.vaccination import service
from tests.factories import add_beneficiary, login_citizen, next_mobile, publish
from tests.vaccination.test_api import (
    book,
    booked_places,
    booked_today,
    dose_rows,
    post_dose,
    secret_code_of,
    walkins_used,
    wrong,
)

Maker = async_sessionmaker[AsyncSession]


async def forge_appointment(maker: Maker, session_id: str, ref_id: int, dose: int) -> str:
    """An appointment that did not come through book_appointment (as one made before a dose
    was entered elsewhere would look): the centre must still refuse a dose it does not allow."""
    async with session_scope(maker) as s:
        slot = (await s.execute(select(SessionSlot).where(SessionSlot.session_id == session_id))
                ).scalar_one()
        bucket = (await s.execute(select(CapacityBucket).where(
            CapacityBucket.slot_id == slot.id, CapacityBucket.dose_kind == "second"))
        ).scalar_one()
        assert await booking_repo.take_place(s, bucket.id)
        now = clock.now()
        booking = Booking(confirmation_no=ids.confirmation_no(), actor="system",
                          idempotency_key=ids.new_uuid(), request_hash="-", created_at=now)
        s.add(booking)
        await s.flush()
        appt = Appointment(id=ids.new_uuid(), booking_id=booking.id, beneficiary_id=ref_id,
                           session_id=session_id, slot_id=slot.id, bucket_id=bucket.id,
                           dose_number=dose, status=AppointmentStatus.BOOKED, created_at=now,
                           updated_at=now)
        s.add(appt)
        return str(appt.id)


async def person_id(maker: Maker, appointment_id: str) -> int:
    async with maker() as s:
        appt = await s.get(Appointment, appointment_id)
        assert appt is not None
        return int(appt.beneficiary_id)


async def test_a_dose_the_rules_refuse_is_not_recorded_even_with_an_appointment(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings, dose2=5)
    assert (await post_dose(client, world, b.appt, b.code)).status_code == 201
    forged = await forge_appointment(maker, b.session_id, await person_id(maker, b.appt), 2)

    with pytest.raises(errors.DoseTooEarly):
        async with session_scope(maker) as s:
            await service.record_dose(s, actor=world.actor("vaccinator_a"),
                                      appointment_id=forged, secret_code=b.code, batch="B-2")
    async with maker() as s:
        assert (await s.get(Appointment, forged)).status == "booked"  # type: ignore[union-attr]
    assert await dose_rows(maker) == 1


async def test_second_dose_inside_the_window_is_recorded(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    mobile = next_mobile()
    clock.shift(-timedelta(days=90))
    first = await publish(maker, world, centre_id=world.centre_a, day=clock.today())
    citizen = await login_citizen(client, maker, settings, mobile)
    ref = await add_beneficiary(client, citizen)
    appt = (await book(client, citizen, first, [ref]))["appointment_ids"][0]
    code = await secret_code_of(client, citizen, ref)
    assert (await post_dose(client, world, appt, code)).status_code == 201
    clock.reset()

    second = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=0,
                           dose2=5)
    citizen = await login_citizen(client, maker, settings, mobile)
    appt2 = (await book(client, citizen, second, [ref], dose=2))["appointment_ids"][0]
    async with session_scope(maker) as s:
        outcome = await service.record_dose(s, actor=world.actor("vaccinator_a"),
                                            appointment_id=appt2, secret_code=code, batch="b2")
        assert (outcome.record.dose_number, outcome.already_recorded) == (2, False)
    r = await client.get("/api/v1/beneficiaries", headers=citizen)
    assert next(p for p in r.json() if p["reference_id"] == ref)["doses"] == 2
    assert await booked_places(maker, second) == 1


async def test_rejected_code_is_audited_although_the_request_fails(
        world: Any, maker: Maker, client: httpx.AsyncClient, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    with pytest.raises(errors.SecretCodeWrong):
        async with session_scope(maker) as s:
            await service.record_dose(s, actor=world.actor("vaccinator_a"),
                                      appointment_id=b.appt, secret_code=wrong(b.code),
                                      batch="B-1")
    async with maker() as s:
        entry = (await s.execute(select(AuditEntry).where(
            AuditEntry.action == "vaccination.secret_code.rejected"))).scalar_one()
    assert entry.detail == {"centre": world.centre_a, "appointment_id": b.appt}
    assert await dose_rows(maker) == 0


async def test_cancelled_appointment_cannot_be_vaccinated(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    r = await client.post(f"/api/v1/appointments/{b.appt}/cancel", headers=b.citizen)
    assert r.status_code == 204
    with pytest.raises(errors.AppointmentNotBooked):
        async with session_scope(maker) as s:
            await service.record_dose(s, actor=world.actor("vaccinator_a"),
                                      appointment_id=b.appt, secret_code=b.code, batch="B-1")
    assert await dose_rows(maker) == 0
    assert await booked_places(maker, b.session_id) == 0


@pytest.mark.parametrize("who", ["state", "raipur_admin", "helpdesk", "citizen"])
async def test_only_a_vaccinator_works_at_the_centre(
        who: str, client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings, walkins=2)
    actor = Actor(kind="citizen", id=1) if who == "citizen" else world.actor(who)
    async with session_scope(maker) as s:
        with pytest.raises(errors.Forbidden):
            await service.find_appointments_today(s, actor=actor, reference_id=b.ref)
        with pytest.raises(errors.Forbidden):
            await service.record_dose(s, actor=actor, appointment_id=b.appt,
                                      secret_code=b.code, batch="B-1")
        with pytest.raises(errors.Forbidden):
            await service.record_walkin(s, actor=actor, session_id=b.session_id,
                                        reference_id=b.ref, secret_code=b.code, batch="B-1")
    assert await dose_rows(maker) == 0


async def test_walkin_outside_the_age_band_is_refused(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=3)
    citizen = await login_citizen(client, maker, settings)
    teen = await add_beneficiary(client, citizen, birth_year=clock.today().year - 16)
    code = await secret_code_of(client, citizen, teen)
    with pytest.raises(errors.AgeNotEligible):
        async with session_scope(maker) as s:
            await service.record_walkin(s, actor=world.actor("vaccinator_a"), session_id=sid,
                                        reference_id=teen, secret_code=code, batch="B-1")
    assert await walkins_used(maker, sid) == 0
    assert await dose_rows(maker) == 0


async def test_walkin_for_a_person_booked_here_today_is_sent_to_the_appointment(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings, walkins=3)
    with pytest.raises(errors.AlreadyBooked):
        async with session_scope(maker) as s:
            await service.record_walkin(s, actor=world.actor("vaccinator_a"),
                                        session_id=b.session_id, reference_id=b.ref,
                                        secret_code=b.code, batch="B-1")
    assert await walkins_used(maker, b.session_id) == 0
    async with session_scope(maker) as s:
        outcome = await service.record_dose(s, actor=world.actor("vaccinator_a"),
                                            appointment_id=b.appt, secret_code=b.code,
                                            batch="B-1")
    assert outcome.record.walk_in is False
    assert await walkins_used(maker, b.session_id) == 0


async def test_deleted_person_cannot_walk_in(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=3)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    code = await secret_code_of(client, citizen, ref)
    assert (await client.delete(f"/api/v1/beneficiaries/{ref}", headers=citizen)
            ).status_code == 204
    with pytest.raises(errors.NotFound):
        async with session_scope(maker) as s:
            await service.record_walkin(s, actor=world.actor("vaccinator_a"), session_id=sid,
                                        reference_id=ref, secret_code=code, batch="B-1")
    async with maker() as s:
        assert (await s.execute(select(DoseRecord))).first() is None
