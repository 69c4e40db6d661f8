"""Book, cancel, reschedule. Every front end (API v1, v2, pages, CLI) calls these.

The capacity recipe is in docs/booking-and-capacity.md; the guarded statements are in
teeka.booking.repository.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_beneficiary
from teeka.auth.actor import Actor
from teeka.booking import repository as repo
from teeka.booking import rules
from teeka.kit import clock, ids
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    Beneficiary,
    Booking,
    Centre,
    SessionSlot,
    VaccinationSession,
)
from teeka.notification.service import BOOKED_SMS, CANCELLED_SMS, RESCHEDULED_SMS, queue_sms

MAX_PER_BOOKING = 4


@dataclass(frozen=True)
class Place:
    session: VaccinationSession
    slot: SessionSlot
    centre: Centre


@dataclass(frozen=True)
class BookingResult:
    confirmation_no: str
    appointment_ids: list[str]
    replayed: bool = False


async def get_place(session: AsyncSession, session_id: str, slot_label: str) -> Place:
    row = (await session.execute(
        select(VaccinationSession, SessionSlot, Centre)
        .join(SessionSlot, SessionSlot.session_id == VaccinationSession.id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .where(VaccinationSession.id == session_id, SessionSlot.label == slot_label))).first()
    if row is None:
        raise errors.NotFound()
    if not row[2].active:
        raise errors.NotFound()
    return Place(session=row[0], slot=row[1], centre=row[2])


def _request_hash(session_id: str, slot: str, dose: int | None, refs: list[str]) -> str:
    canonical = json.dumps([session_id, slot, dose, sorted(refs)])
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _replay(session: AsyncSession, booking: Booking, request_hash: str) -> BookingResult:
    if booking.request_hash != request_hash:
        raise errors.IdempotencyKeyReused()
    appointment_ids = (await session.execute(
        select(Appointment.id).where(Appointment.booking_id == booking.id)
        .order_by(Appointment.created_at, Appointment.id))).scalars().all()
    return BookingResult(confirmation_no=booking.confirmation_no,
                         appointment_ids=list(appointment_ids), replayed=True)


async def _claim_key(session: AsyncSession, actor: Actor, key: str, request_hash: str
                     ) -> Booking | BookingResult:
    """Insert the booking row that owns the idempotency key, or replay the earlier answer.

    A concurrent twin blocks on the unique index until the first commits, then fails here and
    replays; if the first rolled back, the twin's insert simply goes through."""
    if not 8 <= len(key) <= 80:
        raise errors.Invalid(detail="Idempotency-Key must have 8 to 80 characters")
    query = select(Booking).where(Booking.actor == actor.label, Booking.idempotency_key == key)
    earlier = (await session.execute(query)).scalar_one_or_none()
    if earlier is not None:
        return await _replay(session, earlier, request_hash)
    booking = Booking(confirmation_no=ids.confirmation_no(), actor=actor.label,
                      idempotency_key=key, request_hash=request_hash, created_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(booking)
            await session.flush()
    except IntegrityError:
        earlier = (await session.execute(query)).scalar_one_or_none()
        if earlier is None:
            raise errors.Busy() from None
        return await _replay(session, earlier, request_hash)
    return booking


async def _take_for(session: AsyncSession, buckets: list[rules.BucketView], group: str) -> int:
    """Take a place for a person of priority `group`; return the bucket id or raise SlotFull.
    Every usable bucket is tried: the guard, not the snapshot, decides."""
    for bucket in rules.usable_buckets(buckets, group, clock.now()):
        if await repo.take_place(session, bucket.id):
            return bucket.id
    raise errors.SlotFull()


async def _check_eligible(session: AsyncSession, person: Beneficiary, place: Place,
                          dose: int | None, schedule_of: dict[int, rules.Schedule],
                          rescheduling: Appointment | None = None) -> int:
    day = place.session.date
    rules.check_age(person.birth_year, day, place.session.min_age, place.session.max_age)
    history = await repo.dose_history(session, person.id, schedule_of)
    due = rules.check_dose(history=history, asked_dose=dose,
                           schedule=schedule_of[place.session.vaccine_id],
                           schedule_of=schedule_of, day=day)
    active = await repo.active_appointment(session, person.id)
    if active is not None and (rescheduling is None or active.id != rescheduling.id):
        raise errors.AlreadyBooked()
    return due


def _check_date(day: date) -> None:
    if day < clock.today():
        raise errors.SessionPast()


async def book_appointment(session: AsyncSession, *, actor: Actor, session_id: str, slot: str,
                           beneficiary_refs: list[str], dose: int | None,
                           idempotency_key: str) -> BookingResult:
    """Book one slot for one or more beneficiaries of the actor: all of them, or none."""
    refs = list(dict.fromkeys(beneficiary_refs))
    if not 1 <= len(refs) <= MAX_PER_BOOKING or len(refs) != len(beneficiary_refs):
        raise errors.Invalid(detail=f"give 1 to {MAX_PER_BOOKING} different beneficiaries")
    claimed = await _claim_key(session, actor, idempotency_key,
                               _request_hash(session_id, slot, dose, refs))
    if isinstance(claimed, BookingResult):
        return claimed
    booking = claimed
    place = await get_place(session, session_id, slot)
    _check_date(place.session.date)
    schedule_of = await repo.schedules(session)
    people = [await access_beneficiary(session, actor, ref) for ref in refs]
    due = {p.id: await _check_eligible(session, p, place, dose, schedule_of) for p in people}
    kinds = {p.id: rules.dose_kind(due[p.id], schedule_of[place.session.vaccine_id].doses)
             for p in people}
    cache: dict[str, list[rules.BucketView]] = {}
    now = clock.now()
    appointments = []
    for person in people:
        kind = kinds[person.id]
        if kind not in cache:
            cache[kind] = await repo.buckets_for(session, place.slot.id, kind)
        bucket_id = await _take_for(session, cache[kind], person.priority_group)
        appointments.append(Appointment(
            id=ids.new_uuid(), booking_id=booking.id, beneficiary_id=person.id,
            session_id=place.session.id, slot_id=place.slot.id, bucket_id=bucket_id,
            dose_number=due[person.id], status=AppointmentStatus.BOOKED, created_at=now,
            updated_at=now))
    try:
        async with session.begin_nested():
            session.add_all(appointments)
            await session.flush()
    except IntegrityError as exc:  # a concurrent booking for the same person won
        raise errors.AlreadyBooked() from exc
    for appt in appointments:
        await log_action(session, actor=actor.label, action="booking.appointment.booked",
                         object_type="appointment", object_id=appt.id,
                         confirmation=booking.confirmation_no, bucket=appt.bucket_id)
    await _notify(session, people, BOOKED_SMS, confirmation=booking.confirmation_no,
                  names=", ".join(p.name for p in people), centre=place.centre.name_en,
                  date=place.session.date.strftime("%d-%m-%Y"), slot=place.slot.label)
    return BookingResult(confirmation_no=booking.confirmation_no,
                         appointment_ids=[a.id for a in appointments])


async def _notify(session: AsyncSession, people: list[Beneficiary], template: str,
                  **params: Any) -> None:
    account_ids = {p.account_id for p in people if p.account_id is not None}
    for account_id in account_ids:
        account = await session.get(Account, account_id)
        if account is not None:
            await queue_sms(session, to=account.mobile, lang=account.language, template=template,
                            **params)


async def access_appointment(session: AsyncSession, actor: Actor, appointment_id: str
                             ) -> tuple[Appointment, Beneficiary]:
    appt = await session.get(Appointment, appointment_id)
    if appt is None:
        raise errors.NotFound()
    person = await session.get(Beneficiary, appt.beneficiary_id)
    assert person is not None
    await access_beneficiary(session, actor, person.reference_id)
    return appt, person


async def cancel_appointment(session: AsyncSession, *, actor: Actor, appointment_id: str) -> None:
    """Cancel a booked appointment; its place is bookable again as soon as this commits."""
    appt, person = await access_appointment(session, actor, appointment_id)
    done = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.BOOKED)
        .values(status=AppointmentStatus.CANCELLED, updated_at=clock.now())
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.NotReschedulable()
    await repo.return_place(session, appt.bucket_id)
    await session.refresh(appt)
    await log_action(session, actor=actor.label, action="booking.appointment.cancelled",
                     object_type="appointment", object_id=appt.id, bucket=appt.bucket_id)
    vs = await session.get(VaccinationSession, appt.session_id)
    booking = await session.get(Booking, appt.booking_id)
    assert vs is not None and booking is not None
    await _notify(session, [person], CANCELLED_SMS, confirmation=booking.confirmation_no,
                  name=person.name, date=vs.date.strftime("%d-%m-%Y"))


async def reschedule_appointment(session: AsyncSession, *, actor: Actor, appointment_id: str,
                                 session_id: str, slot: str) -> Appointment:
    """Move a booked appointment to another slot: the new place is held and the old one given
    back in one transaction, or nothing changes."""
    appt, person = await access_appointment(session, actor, appointment_id)
    if appt.status != AppointmentStatus.BOOKED:
        raise errors.NotReschedulable()
    place = await get_place(session, session_id, slot)
    _check_date(place.session.date)
    if place.slot.id == appt.slot_id:
        return appt
    schedule_of = await repo.schedules(session)
    due = await _check_eligible(session, person, place, appt.dose_number, schedule_of,
                                rescheduling=appt)
    kind = rules.dose_kind(due, schedule_of[place.session.vaccine_id].doses)
    buckets = await repo.buckets_for(session, place.slot.id, kind)
    old_bucket = appt.bucket_id
    # Both rows are locked in id order (no deadlock between opposite moves). Giving the old
    # place back first is invisible to others: if the new one cannot be taken, the whole
    # transaction rolls back and the old place was never released.
    first_old = all(old_bucket < b.id for b in buckets)
    if first_old:
        await repo.return_place(session, old_bucket)
    new_bucket = await _take_for(session, buckets, person.priority_group)
    if not first_old:
        await repo.return_place(session, old_bucket)
    moved = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.BOOKED,
               Appointment.bucket_id == old_bucket)
        .values(session_id=place.session.id, slot_id=place.slot.id, bucket_id=new_bucket,
                updated_at=clock.now())
        .execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.NotReschedulable()
    await session.refresh(appt)
    await log_action(session, actor=actor.label, action="booking.appointment.rescheduled",
                     object_type="appointment", object_id=appt.id, from_bucket=old_bucket,
                     to_bucket=new_bucket)
    booking = await session.get(Booking, appt.booking_id)
    assert booking is not None
    await _notify(session, [person], RESCHEDULED_SMS, name=person.name,
                  centre=place.centre.name_en, date=place.session.date.strftime("%d-%m-%Y"),
                  slot=place.slot.label, confirmation=booking.confirmation_no)
    return appt

