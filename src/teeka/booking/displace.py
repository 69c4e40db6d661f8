"""When a slot can vaccinate fewer people than are booked in it: the people affected are moved
to the nearest place they can have, and told; anyone no place can be found for is cancelled,
told, and can book again. A confirmed person learns of the change by SMS days or hours before,
instead of being turned away at the centre.

Called by teeka.centre.service.change_slot_capacity (a district's capacity change asked to
move the people affected). The recipe and its locks are in docs/booking-and-capacity.md,
"When capacity shrinks".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.actor import Actor
from teeka.booking import repository as repo
from teeka.booking import rules
from teeka.booking.service import _Allowed, _check_eligible, _notify, _schedules_for, _take_for
from teeka.kit import clock
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    Booking,
    CapacityBucket,
    Centre,
    SessionSlot,
    VaccinationSession,
)
from teeka.models.centre import FeeType
from teeka.notification.service import (
    CLOSED_CANCELLED_SMS,
    CLOSED_MOVED_SMS,
    DISPLACED_CANCELLED_SMS,
    DISPLACED_MOVED_SMS,
)

# A move goes to the same day or at most this many days later (never earlier: the person
# planned for their day), in the centre's district.
MOVE_DAYS = 7
# Candidate places looked at per person before giving up (each costs a query or two).
MAX_TRIES = 40

# The booking gate for staff under a waiting room (teeka.surge.api.gate): for a session id
# and the reference id of the person moved there, the places the move may take (None: any);
# raises a DomainError (PlacesHeld) when the room keeps that session's places for others.
MoveGate = Callable[[str, str], Awaitable[Mapping[str, int] | None]]


@dataclass
class Displaced:
    """What a capacity cut did to the people booked: moved elsewhere, or cancelled."""

    moved: int = 0
    cancelled: int = 0
    # reference ids of the people moved or cancelled who have no mobile number (registered at
    # a help desk): no SMS reaches them, so the district tells them another way
    not_told: list[str] = field(default_factory=list)

    def add(self, other: Displaced) -> None:
        self.moved += other.moved
        self.cancelled += other.cancelled
        self.not_told.extend(other.not_told)


@dataclass
class _Candidate:
    session_id: str
    label: str
    day: date
    centre_id: int
    order: tuple[float, ...]
    free: int


async def lock_buckets(session: AsyncSession, bucket_ids: Sequence[int]
                       ) -> list[CapacityBucket]:
    """The buckets, locked in id order (PostgreSQL; SQLite has one writer) and read afresh:
    no booking, cancellation or move touches them until this transaction ends."""
    return list((await session.execute(
        select(CapacityBucket).where(CapacityBucket.id.in_(bucket_ids))
        .order_by(CapacityBucket.id).with_for_update()
        .execution_options(populate_existing=True))).scalars())


async def doses_given(session: AsyncSession, bucket_ids: Sequence[int]) -> dict[int, int]:
    """Per bucket, the places whose dose is given (COMPLETED appointments keep their place):
    they stay used whatever the capacity becomes, and nobody moves out of them."""
    if not bucket_ids:
        return {}
    return {bid: int(n) for bid, n in (await session.execute(
        select(Appointment.bucket_id, func.count())
        .where(Appointment.bucket_id.in_(bucket_ids),
               Appointment.status == AppointmentStatus.COMPLETED)
        .group_by(Appointment.bucket_id))).all()}


async def _who_leaves(session: AsyncSession, bucket_id: int, count: int) -> list[Appointment]:
    """The `count` appointments that leave a bucket: those booked last (a family booked
    together stays together, but at the edge), locked. Rows another transaction is changing
    right now (a cancel or a move, which waits for the bucket's lock held here) are skipped:
    they are leaving anyway, and waiting for them would be a deadlock."""
    return list((await session.execute(
        select(Appointment)
        .join(Booking, Booking.id == Appointment.booking_id)
        .where(Appointment.bucket_id == bucket_id,
               Appointment.status == AppointmentStatus.BOOKED)
        .order_by(Booking.created_at.desc(), Booking.id.desc(), Appointment.id)
        .limit(count)
        .with_for_update(skip_locked=True, of=Appointment))).scalars())


async def _candidates(session: AsyncSession, slot: SessionSlot, vs: VaccinationSession,
                      centre: Centre, kind: str, whole_session: bool) -> list[_Candidate]:
    """The slots a person of this slot may be moved to, best first: same vaccine and dose
    kind, places free now, at an active centre of the district that costs no more (free, or
    of the same fee type), on the same day or up to MOVE_DAYS later (today: only a later
    slot of this session); the same day before a later one, this centre before others, a
    nearer centre before a farther one, a nearer time before a farther one. Not this slot, nor
    (`whole_session`, a session closed) any slot of its session."""
    today = clock.today()
    first = max(vs.date, today)
    elsewhere = (VaccinationSession.id != vs.id) if whole_session else (SessionSlot.id != slot.id)
    # Today, an earlier slot may be over, and only the slots of one session are in known
    # order (`ordinal`): a move today only goes to a later slot of this session (none when
    # the whole session is closed), else to a later day.
    not_over = or_(VaccinationSession.date > today,
                   and_(VaccinationSession.id == vs.id, SessionSlot.ordinal > slot.ordinal))
    bucket = CapacityBucket
    free = func.sum(bucket.capacity - bucket.booked)
    rows = (await session.execute(
        select(VaccinationSession.id, VaccinationSession.date, SessionSlot.label,
               SessionSlot.ordinal, Centre.id, Centre.lat, Centre.long, free.label("free"))
        .join(SessionSlot, SessionSlot.session_id == VaccinationSession.id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .join(bucket, bucket.slot_id == SessionSlot.id)
        .where(Centre.active.is_(True), Centre.district_id == centre.district_id,
               or_(Centre.id == centre.id, Centre.fee_type == FeeType.FREE.value,
                   Centre.fee_type == centre.fee_type),
               VaccinationSession.vaccine_id == vs.vaccine_id,
               VaccinationSession.date >= first,
               VaccinationSession.date <= vs.date + timedelta(days=MOVE_DAYS),
               elsewhere, not_over, bucket.dose_kind == kind,
               bucket.booked < bucket.capacity)
        .group_by(VaccinationSession.id, VaccinationSession.date, SessionSlot.label,
                  SessionSlot.ordinal, Centre.id, Centre.lat, Centre.long))).all()
    here = math.cos(math.radians(centre.lat))
    out = []
    for sid, day, label, ordinal, centre_id, lat, long, places in rows:
        away = 0.0 if centre_id == centre.id else math.hypot(
            (lat or 0.0) - centre.lat, ((long or 0.0) - centre.long) * here) + 1.0
        out.append(_Candidate(sid, label, day, centre_id,
                              ((day - vs.date).days, away, abs(ordinal - slot.ordinal)),
                              int(places)))
    out.sort(key=lambda c: c.order)
    return out


async def make_room(session: AsyncSession, *, actor: Actor, slot: SessionSlot,
                    vs: VaccinationSession, kind: str, leaving: Mapping[int, int],
                    gate: MoveGate | None = None, whole_session: bool = False) -> Displaced:
    """Move `leaving[bucket_id]` booked people out of each of the slot's buckets of dose
    `kind` (locked by the caller with lock_buckets), each to the best place they can book
    (eligibility as a booking checks it, through the booking gate under a waiting room), and
    tell them; cancel and tell those no place is found for. Each leaves the bucket (its
    counter goes down by one) in this transaction. Busy (503, try again) when fewer people
    can be taken out than asked (their rows are being changed right now). `whole_session`:
    the session is being closed, so nobody is moved within it."""
    centre = await session.get(Centre, vs.centre_id)
    assert centre is not None
    people: list[Appointment] = []
    for bucket_id, count in sorted(leaving.items()):
        if count <= 0:
            continue
        found = await _who_leaves(session, bucket_id, count)
        if len(found) < count:
            raise errors.Busy()
        people.extend(reversed(found))  # who booked first among them chooses first
    if not people:
        return Displaced()
    candidates = await _candidates(session, slot, vs, centre, kind, whole_session)
    done = Displaced()
    old_date = vs.date.strftime("%d-%m-%Y")
    moved_sms, cancelled_sms = ((CLOSED_MOVED_SMS, CLOSED_CANCELLED_SMS) if whole_session
                                else (DISPLACED_MOVED_SMS, DISPLACED_CANCELLED_SMS))
    for appt in people:
        person = await session.get(Beneficiary, appt.beneficiary_id)
        booking = await session.get(Booking, appt.booking_id)
        assert person is not None and booking is not None
        old_bucket = appt.bucket_id
        if person.account_id is None:
            done.not_told.append(person.reference_id)
        target = await _move_one(session, appt, person, kind, candidates, gate)
        if target is not None:
            place, new_bucket = target
            await repo.return_place(session, old_bucket)
            done.moved += 1
            await log_action(session, actor=actor.label, action="booking.appointment.displaced",
                             object_type="appointment", object_id=appt.id,
                             beneficiary=person.reference_id, from_bucket=old_bucket,
                             to_bucket=new_bucket)
            await _notify(session, [person], moved_sms, old_centre=centre.name_en,
                          old_date=old_date, name=person.name, centre=place.centre_name_en,
                          date=place.date.strftime("%d-%m-%Y"), slot=place.slot_label,
                          confirmation=booking.confirmation_no)
            continue
        await session.execute(
            update(Appointment).where(Appointment.id == appt.id)
            .values(status=AppointmentStatus.CANCELLED, updated_at=clock.now())
            .execution_options(synchronize_session=False))
        await repo.return_place(session, old_bucket)
        done.cancelled += 1
        await log_action(session, actor=actor.label, action="booking.appointment.displaced",
                         object_type="appointment", object_id=appt.id,
                         beneficiary=person.reference_id, from_bucket=old_bucket, to_bucket=None)
        await _notify(session, [person], cancelled_sms, old_centre=centre.name_en,
                      old_date=old_date, name=person.name, confirmation=booking.confirmation_no)
    return done


async def _move_one(session: AsyncSession, appt: Appointment, person: Beneficiary, kind: str,
                    candidates: list[_Candidate], gate: MoveGate | None
                    ) -> tuple[repo.PlaceView, int] | None:
    """Take a place for `appt`'s person at the first candidate that has one for them and
    point the appointment at it; the place and its bucket, or None when there is none."""
    tries = 0
    for cand in candidates:
        if cand.free <= 0:
            continue
        if tries >= MAX_TRIES:
            return None
        tries += 1
        may_take: Mapping[str, int] | None = None
        if gate is not None:
            try:
                may_take = await gate(cand.session_id, person.reference_id)
            except errors.DomainError:  # the waiting room keeps these places for others
                continue
        place, found = await repo.place_and_people(session, cand.session_id, cand.label,
                                                   [person.reference_id])
        me = found.get(person.reference_id)
        if place is None or me is None:
            continue
        schedule_of = await _schedules_for(session, place, [me])
        try:
            due = _check_eligible(me, place, appt.dose_number, schedule_of, rescheduling=appt.id)
            if rules.dose_kind(due, schedule_of[place.vaccine_id].doses) != kind:
                continue
            bucket = await _take_for(session, place.buckets.get(kind, []), kind,
                                     person.priority_group, _Allowed(may_take, place))
        except errors.DomainError:  # not for this person (age, dose window), or full
            continue
        cand.free -= 1
        await session.execute(
            update(Appointment).where(Appointment.id == appt.id)
            .values(session_id=place.session_id, slot_id=place.slot_id, bucket_id=bucket.id,
                    updated_at=clock.now())
            .execution_options(synchronize_session=False))
        return place, bucket.id
    return None
