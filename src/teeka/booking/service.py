"""Book, cancel, reschedule. Every front end (API v1, v2, pages, CLI) calls these.

The capacity recipe is in docs/booking-and-capacity.md; the guarded statements are in
teeka.booking.repository.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import entry, log_action
from teeka.auth.access import access_beneficiary, access_booking_district, reaches_beneficiary
from teeka.auth.actor import Actor
from teeka.booking import repository as repo
from teeka.booking import rules
from teeka.db import WROTE
from teeka.kit import clock, ids
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    Beneficiary,
    Booking,
    VaccinationSession,
)
from teeka.notification.service import (
    BOOKED_SMS,
    CANCELLED_SMS,
    OUTBOX_TABLE,
    RESCHEDULED_SMS,
    queue_sms,
    sms,
)
from teeka.surge.rules import pool_key

MAX_PER_BOOKING = 4


@dataclass(frozen=True)
class BookingResult:
    confirmation_no: str
    appointment_ids: list[str]
    replayed: bool = False
    # the kind of each place taken (teeka.surge.rules.pool_key), for the waiting room's count
    pools: tuple[str, ...] = ()


def _request_hash(session_id: str, slot: str, dose: int | None, refs: list[str]) -> str:
    canonical = json.dumps([session_id, slot, dose, sorted(refs)])
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(key: str) -> None:
    if not 8 <= len(key) <= 80:
        raise errors.Invalid(detail="Idempotency-Key must have 8 to 80 characters")


async def _replay(session: AsyncSession, actor: Actor, key: str, request_hash: str
                  ) -> BookingResult:
    """The earlier answer for a key already taken."""
    earlier = await repo.earlier_booking(session, actor.label, key)
    if earlier is None:
        raise errors.Busy()
    if earlier.request_hash != request_hash:
        raise errors.IdempotencyKeyReused()
    return BookingResult(confirmation_no=earlier.confirmation_no,
                         appointment_ids=earlier.appointment_ids, replayed=True)


async def _claim_and_read(session: AsyncSession, actor: Actor, key: str, request_hash: str,
                          session_id: str, slot: str, refs: list[str]
                          ) -> tuple[int, str, repo.PlaceView, dict[str, repo.PersonView]
                                     ] | BookingResult:
    """Insert the booking row that owns the idempotency key (its id and confirmation number)
    and read the place and the people, or replay the earlier answer.

    One INSERT ... ON CONFLICT DO NOTHING: a concurrent twin waits on the unique index until
    the first ends; if the first committed, nothing is inserted and the twin replays it; if
    the first rolled back, the twin's insert simply goes through. On PostgreSQL the read is
    part of the same statement (repository.claim_and_read)."""
    _check_key(key)
    confirmation_no = ids.confirmation_no()
    try:
        booking_id, place, found = await repo.claim_and_read(
            session, actor=actor.label, key=key, request_hash=request_hash,
            confirmation_no=confirmation_no, now=clock.now(), session_id=session_id,
            slot_label=slot, reference_ids=refs)
    except IntegrityError:  # the random confirmation number was taken: let the client retry
        raise errors.Busy() from None
    if booking_id is None:
        return await _replay(session, actor, key, request_hash)
    return booking_id, confirmation_no, _bookable(place), found


class _Allowed:
    """The places a booking may take while a waiting room keeps places for others (`may_take`
    of the booking gate, teeka.surge.api.gate: by pool key without its release mark, how many;
    None: any place its people may book), counted down as places are taken."""

    def __init__(self, may_take: Mapping[str, int] | None, place: repo.PlaceView) -> None:
        self.left = None if may_take is None else dict(may_take)
        self.place = place
        self.kept_for_others = False  # a usable bucket with places was passed over
        self.taken: dict[int, int] = {}  # places this booking took, by bucket

    def usable(self, buckets: list[rules.BucketView], kind: str, group: str
               ) -> list[rules.BucketView]:
        found = rules.usable_buckets(buckets, group, clock.now())
        if self.left is None:
            return found
        out = [b for b in found if self.left.get(self._key(kind, b), 0) > 0]
        self.kept_for_others = any(b.free - self.taken.get(b.id, 0) > 0
                                   for b in found if b not in out)
        return out

    def took(self, kind: str, bucket: rules.BucketView) -> None:
        self.taken[bucket.id] = self.taken.get(bucket.id, 0) + 1
        if self.left is not None:
            self.left[self._key(kind, bucket)] -= 1

    def refusal(self) -> errors.DomainError:
        return errors.PlacesKept() if self.kept_for_others else errors.SlotFull()

    def _key(self, kind: str, bucket: rules.BucketView) -> str:
        p = self.place
        return pool_key(kind, bucket.share, p.vaccine_id, p.min_age, p.max_age, False)


async def _take_for(session: AsyncSession, buckets: list[rules.BucketView], kind: str,
                    group: str, allowed: _Allowed) -> rules.BucketView:
    """Take a place for a person of priority `group`; return its bucket or raise SlotFull
    (PlacesKept when the places left are kept for others). Every usable bucket is tried: the
    guard, not the snapshot, decides."""
    for bucket in allowed.usable(buckets, kind, group):
        if await repo.take_place(session, bucket.id):
            allowed.took(kind, bucket)
            return bucket
    raise allowed.refusal()


async def _book_for(session: AsyncSession, buckets: list[rules.BucketView], kind: str,
                    group: str, allowed: _Allowed, appointment: dict[str, Any],
                    audit: dict[str, Any], message: dict[str, Any] | None) -> rules.BucketView:
    """Take a place for a person of priority `group` and write `appointment` (with its `audit`
    entry, and `message` if given) in the bucket the place came from; return the bucket, or
    raise SlotFull (PlacesKept when the places left are kept for others). Every usable bucket
    is tried: the guard, not the snapshot, decides."""
    for bucket in allowed.usable(buckets, kind, group):
        try:
            taken = await repo.book_place(
                session, {**appointment, "bucket_id": bucket.id},
                {**audit, "detail": {**audit["detail"], "bucket": bucket.id}}, message)
        except IntegrityError as exc:  # a concurrent booking for the same person won
            raise errors.AlreadyBooked() from exc
        if taken:
            allowed.took(kind, bucket)
            return bucket
    raise allowed.refusal()


def _pool(kind: str, bucket: rules.BucketView, place: repo.PlaceView, now: datetime) -> str:
    return pool_key(kind, bucket.share, place.vaccine_id, place.min_age, place.max_age,
                    rules.is_released(bucket.release_at, now))


def _check_eligible(person: repo.PersonView, place: repo.PlaceView, dose: int | None,
                    schedule_of: dict[int, rules.Schedule],
                    rescheduling: str | None = None) -> int:
    """The dose `person` may book at `place` (pure: what it needs was loaded before)."""
    rules.check_age(person.birth_year, place.date, place.min_age, place.max_age)
    history = [rules.GivenDose(dose_number=n, vaccine_id=v, vaccine_code=schedule_of[v].code,
                               day=day) for n, v, day in person.doses]
    due = rules.check_dose(history=history, asked_dose=dose,
                           schedule=schedule_of[place.vaccine_id],
                           schedule_of=schedule_of, day=place.date)
    if (person.active_appointment_id is not None
            and person.active_appointment_id != rescheduling):
        raise errors.AlreadyBooked()
    return due


def _check_date(day: date) -> None:
    if day < clock.today():
        raise errors.SessionPast()


def _bookable(place: repo.PlaceView | None) -> repo.PlaceView:
    """The place read, or NotFound; SessionPast for a past date."""
    if place is None:
        raise errors.NotFound()
    _check_date(place.date)
    return place


async def _place_and_people(session: AsyncSession, session_id: str, slot: str,
                            refs: list[str]) -> tuple[repo.PlaceView, dict[str, repo.PersonView]]:
    place, found = await repo.place_and_people(session, session_id, slot, refs)
    return _bookable(place), found


async def _schedules_for(session: AsyncSession, place: repo.PlaceView,
                         people: list[repo.PersonView]) -> dict[int, rules.Schedule]:
    need = {place.vaccine_id, *(v for p in people for _n, v, _d in p.doses)}
    return await repo.cached_schedules(session, need)


async def book_appointment(session: AsyncSession, *, actor: Actor, session_id: str, slot: str,
                           beneficiary_refs: list[str], dose: int | None,
                           idempotency_key: str, may_take: Mapping[str, int] | None = None
                           ) -> BookingResult:
    """Book one slot for one or more beneficiaries of the actor: all of them, or none; under
    a waiting room, only in places `may_take` allows (the booking gate's pass).

    Round trips: claim the key; the place with its buckets and the people with their
    accounts, doses and active appointments (one query); one guarded UPDATE per person (more
    only when a share is full); the appointments; their audit entries; the SMS."""
    refs = list(dict.fromkeys(beneficiary_refs))
    if not 1 <= len(refs) <= MAX_PER_BOOKING or len(refs) != len(beneficiary_refs):
        raise errors.Invalid(detail="give 1 to {most} different beneficiaries",
                             most=MAX_PER_BOOKING)
    claimed = await _claim_and_read(session, actor, idempotency_key,
                                    _request_hash(session_id, slot, dose, refs), session_id,
                                    slot, refs)
    if isinstance(claimed, BookingResult):
        return claimed
    booking_id, confirmation_no, place, found = claimed
    session.info[WROTE] = True  # the booking row: this commit waits for the standby anyway
    access_booking_district(actor, place.district_id)
    people = []
    for ref in refs:
        person = found.get(ref)
        if person is None or not reaches_beneficiary(actor, person.account_id):
            raise errors.NotFound()
        people.append(person)
    schedule_of = await _schedules_for(session, place, people)
    doses = schedule_of[place.vaccine_id].doses
    due = [_check_eligible(p, place, dose, schedule_of) for p in people]
    now = clock.now()
    accounts = {p.account_id: p for p in people if p.account_id is not None}
    names = ", ".join(p.name for p in people)
    messages = [sms(to=p.mobile, lang=p.language or "hi", template=BOOKED_SMS,
                    confirmation=confirmation_no, names=names, centre=place.centre_name_en,
                    date=place.date.strftime("%d-%m-%Y"), slot=place.slot_label)
                for p in accounts.values() if p.mobile is not None]
    appointments: list[str] = []
    pools: list[str] = []
    allowed = _Allowed(may_take, place)
    for i, (person, number) in enumerate(zip(people, due, strict=True)):
        kind = rules.dose_kind(number, doses)
        appointment_id = ids.new_uuid()
        # the confirmation SMS goes with the last person's place (written only with it)
        message = messages[0] if messages and i == len(people) - 1 else None
        bucket = await _book_for(session, place.buckets.get(kind, []), kind,
                                 person.priority_group, allowed, {
            "id": appointment_id, "booking_id": booking_id, "beneficiary_id": person.id,
            "session_id": place.session_id, "slot_id": place.slot_id, "dose_number": number,
            "status": AppointmentStatus.BOOKED.value, "created_at": now, "updated_at": now,
        }, entry(actor=actor.label, action="booking.appointment.booked",
                 object_type="appointment", object_id=appointment_id, at=now,
                 confirmation=confirmation_no), message)
        appointments.append(appointment_id)
        pools.append(_pool(kind, bucket, place, now))
    if len(messages) > 1:  # people of several accounts (a help desk's booking)
        await repo.insert_rows(session, [(OUTBOX_TABLE, messages[1:])])
    return BookingResult(confirmation_no=confirmation_no,
                         appointment_ids=appointments, pools=tuple(pools))


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
    bucket_id = await repo.cancel_booked(session, appt.id)
    if bucket_id is None:
        raise errors.NotReschedulable()
    await session.refresh(appt)
    await log_action(session, actor=actor.label, action="booking.appointment.cancelled",
                     object_type="appointment", object_id=appt.id, bucket=bucket_id)
    vs = await session.get(VaccinationSession, appt.session_id)
    booking = await session.get(Booking, appt.booking_id)
    assert vs is not None and booking is not None
    await _notify(session, [person], CANCELLED_SMS, confirmation=booking.confirmation_no,
                  name=person.name, date=vs.date.strftime("%d-%m-%Y"))


async def reschedule_appointment(session: AsyncSession, *, actor: Actor, appointment_id: str,
                                 session_id: str, slot: str,
                                 may_take: Mapping[str, int] | None = None) -> Appointment:
    """Move a booked appointment to another slot: the new place is held and the old one given
    back in one transaction, or nothing changes; under a waiting room, only into a place
    `may_take` allows (the booking gate's pass)."""
    return (await reschedule_appointments(session, actor=actor, appointment_ids=[appointment_id],
                                          session_id=session_id, slot=slot,
                                          may_take=may_take))[0]


async def reschedule_appointments(session: AsyncSession, *, actor: Actor,
                                  appointment_ids: list[str], session_id: str, slot: str,
                                  may_take: Mapping[str, int] | None = None
                                  ) -> list[Appointment]:
    """Move booked appointments to one slot, each as reschedule_appointment does, in the
    request's transaction; `may_take` counts for all of them together."""
    allowed: _Allowed | None = None
    moved = []
    for appointment_id in appointment_ids:
        appt, person = await access_appointment(session, actor, appointment_id)
        if appt.status != AppointmentStatus.BOOKED:
            raise errors.NotReschedulable()
        place, found = await _place_and_people(session, session_id, slot,
                                               [person.reference_id])
        if allowed is None:
            allowed = _Allowed(may_take, place)
        moved.append(await _move(session, actor, appt, person, place, found, allowed))
    return moved


async def _move(session: AsyncSession, actor: Actor, appt: Appointment, person: Beneficiary,
                place: repo.PlaceView, found: dict[str, repo.PersonView], allowed: _Allowed
                ) -> Appointment:
    """One appointment moved to `place` (reschedule_appointment). The appointment's row is
    locked first, as a cancel locks it first: a move or a cancel of it committed meanwhile is
    seen here, and the place it held then is the one given back (giving back the one read
    before failed its guard when that move had emptied the bucket: a 500)."""
    row = (await session.execute(
        select(Appointment.status, Appointment.slot_id, Appointment.bucket_id)
        .where(Appointment.id == appt.id).with_for_update())).one()
    if row.status != AppointmentStatus.BOOKED:
        raise errors.NotReschedulable()
    if place.slot_id == row.slot_id:
        return appt
    access_booking_district(actor, place.district_id)
    me = found.get(person.reference_id)
    if me is None:  # deactivated since access_appointment read it
        raise errors.NotFound()
    schedule_of = await _schedules_for(session, place, [me])
    due = _check_eligible(me, place, appt.dose_number, schedule_of, rescheduling=appt.id)
    kind = rules.dose_kind(due, schedule_of[place.vaccine_id].doses)
    buckets = place.buckets.get(kind, [])
    old_bucket = row.bucket_id
    # Both rows are locked in id order (no deadlock between opposite moves). Giving the old
    # place back first is invisible to others: if the new one cannot be taken, the whole
    # transaction rolls back and the old place was never released.
    first_old = all(old_bucket < b.id for b in buckets)
    if first_old:
        await repo.return_place(session, old_bucket)
    new_bucket = (await _take_for(session, buckets, kind, person.priority_group, allowed)).id
    if not first_old:
        await repo.return_place(session, old_bucket)
    moved = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.BOOKED,
               Appointment.bucket_id == old_bucket)
        .values(session_id=place.session_id, slot_id=place.slot_id, bucket_id=new_bucket,
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
                  centre=place.centre_name_en, date=place.date.strftime("%d-%m-%Y"),
                  slot=place.slot_label, confirmation=booking.confirmation_no)
    return appt

