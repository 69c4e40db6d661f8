"""Read queries of district administration, for the console pages: districts, blocks, centres,
the sessions of a centre with their slots and capacity buckets, and today's counts per centre.

Read side only: nothing here decides a booking or a change (the services and the guarded
statements of teeka.booking.repository do). Callers check access first (teeka.auth.access).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.centre import rules
from teeka.kit import clock
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Block,
    CapacityBucket,
    Centre,
    District,
    DoseKind,
    DoseRecord,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)

DOSE_KIND_ORDER = (DoseKind.FIRST, DoseKind.SECOND, DoseKind.PRECAUTION)


# ---------------------------------------------------------------- places

async def districts(session: AsyncSession) -> list[District]:
    return list((await session.execute(select(District).order_by(District.name_en))).scalars())


async def blocks(session: AsyncSession, district_id: int) -> list[Block]:
    return list((await session.execute(
        select(Block).where(Block.district_id == district_id).order_by(Block.name_en))).scalars())


async def centres(session: AsyncSession, district_id: int) -> list[Centre]:
    return list((await session.execute(
        select(Centre).where(Centre.district_id == district_id)
        .order_by(Centre.name_en, Centre.id))).scalars())


async def vaccine_codes(session: AsyncSession) -> list[str]:
    return list((await session.execute(select(Vaccine.code).order_by(Vaccine.code))).scalars())


async def centre_of_slot(session: AsyncSession, slot_id: int) -> int | None:
    """The centre a slot belongs to (None: no such slot)."""
    return (await session.execute(
        select(VaccinationSession.centre_id)
        .join(SessionSlot, SessionSlot.session_id == VaccinationSession.id)
        .where(SessionSlot.id == slot_id))).scalar_one_or_none()


# ---------------------------------------------------------------- sessions of a centre

@dataclass(frozen=True)
class BucketLine:
    share: str
    capacity: int
    booked: int


@dataclass(frozen=True)
class KindLine:
    """One dose kind of one slot: its total and its priority shares."""

    dose_kind: str
    capacity: int
    booked: int
    shares: list[BucketLine]


@dataclass
class SlotLine:
    id: int
    label: str
    kinds: list[KindLine] = field(default_factory=list)


@dataclass
class SessionLine:
    id: str
    date: date
    vaccine: str
    min_age: int
    max_age: int | None
    walkin_allowance: int
    walkins_used: int
    release_at: datetime | None  # when unused priority shares open to everyone (UTC)
    slots: list[SlotLine] = field(default_factory=list)

    @property
    def places(self) -> int:
        """Every place of the session, booked or not (0: closed, or published without any)."""
        return sum(k.capacity for slot in self.slots for k in slot.kinds)

    @property
    def booked(self) -> int:
        return sum(k.booked for slot in self.slots for k in slot.kinds)


async def sessions_of_centre(session: AsyncSession, centre_id: int, *, from_day: date,
                             limit: int = 60) -> list[SessionLine]:
    """The centre's sessions from `from_day` on, in date order, with slots and buckets."""
    rows = (await session.execute(
        select(VaccinationSession, Vaccine.code)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(VaccinationSession.centre_id == centre_id, VaccinationSession.date >= from_day)
        .order_by(VaccinationSession.date, Vaccine.code, VaccinationSession.min_age)
        .limit(limit).execution_options(populate_existing=True))).all()
    out = {vs.id: SessionLine(id=vs.id, date=vs.date, vaccine=code, min_age=vs.min_age,
                              max_age=vs.max_age, walkin_allowance=vs.walkin_allowance,
                              walkins_used=vs.walkins_used, release_at=None)
           for vs, code in rows}
    if not out:
        return []
    slots: dict[int, SlotLine] = {}
    for slot in (await session.execute(
            select(SessionSlot).where(SessionSlot.session_id.in_(list(out)))
            .order_by(SessionSlot.ordinal, SessionSlot.id))).scalars():
        slots[slot.id] = SlotLine(id=slot.id, label=slot.label)
        out[slot.session_id].slots.append(slots[slot.id])
    buckets: dict[tuple[int, str], list[CapacityBucket]] = {}
    for bucket in (await session.execute(
            select(CapacityBucket).where(CapacityBucket.session_id.in_(list(out)))
            .order_by(CapacityBucket.id)
            # read afresh: a change earlier in this transaction (a capacity cut moving people,
            # in SQL) is shown as it is, not as the rows were first loaded
            .execution_options(populate_existing=True))).scalars():
        buckets.setdefault((bucket.slot_id, bucket.dose_kind), []).append(bucket)
        if bucket.release_at is not None:
            out[bucket.session_id].release_at = bucket.release_at
    for line in slots.values():
        for kind in DOSE_KIND_ORDER:
            found = buckets.get((line.id, kind))
            if found:
                line.kinds.append(KindLine(
                    dose_kind=kind, capacity=sum(b.capacity for b in found),
                    booked=sum(b.booked for b in found),
                    shares=[BucketLine(share=b.share, capacity=b.capacity, booked=b.booked)
                            for b in found]))
    return list(out.values())


# ---------------------------------------------------------------- today per centre

@dataclass
class TodayCounts:
    """One centre's day. `booked` counts every appointment of today's sessions that holds a
    place; each is vaccinated, still to come, or a no-show (its slot has ended and it was not
    completed), so booked = vaccinated + to_come + no_shows. Walk-ins are doses given without
    an appointment, from the sessions' walk-in allowance."""

    booked: int = 0
    vaccinated: int = 0
    walkins: int = 0
    to_come: int = 0
    no_shows: int = 0

    def add(self, other: TodayCounts) -> None:
        self.booked += other.booked
        self.vaccinated += other.vaccinated
        self.walkins += other.walkins
        self.to_come += other.to_come
        self.no_shows += other.no_shows


def slot_has_ended(day: date, label: str, now: datetime) -> bool:
    """True once the slot's end (IST wall clock on `day`) has passed."""
    _, end = rules.parse_slot(label)
    return now >= clock.local_datetime(day, end.hour, end.minute)


async def today_at_centres(session: AsyncSession, centre_ids: Sequence[int] | None, *,
                           day: date, now: datetime) -> dict[int, TodayCounts]:
    """Counts of `day` for each centre (every centre asked for has an entry); `None`: every
    centre with appointments or walk-ins that day, in one grouped read (no list of ids: the
    operators' view of the whole state, teeka.watch.signals)."""
    out = {cid: TodayCounts() for cid in centre_ids or ()}
    if centre_ids is not None and not out:
        return out
    where_centre = (VaccinationSession.centre_id.in_(list(out)) if centre_ids is not None
                    else true())
    appointments = await session.execute(
        select(VaccinationSession.centre_id, SessionSlot.label, Appointment.status, func.count())
        .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
        .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
        .where(where_centre, VaccinationSession.date == day,
               Appointment.status.in_([AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED]))
        .group_by(VaccinationSession.centre_id, SessionSlot.label, Appointment.status))
    for centre_id, label, status, n in appointments:
        counts = out.setdefault(centre_id, TodayCounts())
        counts.booked += n
        if status == AppointmentStatus.COMPLETED:
            counts.vaccinated += n
        elif slot_has_ended(day, label, now):
            counts.no_shows += n
        else:
            counts.to_come += n
    walkins = await session.execute(
        select(DoseRecord.centre_id, func.count())
        .join(VaccinationSession, VaccinationSession.id == DoseRecord.session_id)
        .where(DoseRecord.centre_id.in_(list(out)) if centre_ids is not None else true(),
               DoseRecord.walk_in.is_(True), VaccinationSession.date == day)
        .group_by(DoseRecord.centre_id))
    for centre_id, n in walkins:
        out.setdefault(centre_id, TodayCounts()).walkins += n
    return out

