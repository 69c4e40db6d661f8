"""Queries and THE guarded statements that change capacity counters.

Read docs/booking-and-capacity.md before touching anything here. Every change of
`capacity_bucket.booked` goes through `take_place` / `return_place`, and every change of
capacity through `set_capacity`. Each is one UPDATE whose WHERE clause is the guard: the database
evaluates it on the latest committed row version while holding the row lock, so two
transactions can never both pass it for the same last place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.booking.rules import BucketView, GivenDose, Schedule
from teeka.booking.schemas import AppointmentRead, SessionAvailability
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    Booking,
    CapacityBucket,
    Centre,
    DoseRecord,
    SessionSlot,
    VaccinationSession,
    Vaccine,
    VaccineInterval,
)
from teeka.models.schedule import Share

# Set to False only by the canary test, to show that the race is real without the guard.
GUARD_ENABLED = True


async def take_place(session: AsyncSession, bucket_id: int) -> bool:
    """Take one place from a bucket if one is free. True when taken."""
    session.info["capacity_changed"] = True
    if not GUARD_ENABLED:
        return await _take_place_unguarded(session, bucket_id)
    result = await session.execute(
        update(CapacityBucket)
        .where(CapacityBucket.id == bucket_id, CapacityBucket.booked < CapacityBucket.capacity)
        .values(booked=CapacityBucket.booked + 1)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _take_place_unguarded(session: AsyncSession, bucket_id: int) -> bool:
    """The classic read-check-write race, kept only for the canary test."""
    row = (await session.execute(select(CapacityBucket.booked, CapacityBucket.capacity)
                                 .where(CapacityBucket.id == bucket_id))).one()
    if row.booked >= row.capacity:
        return False
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_sleep(0.02)"))  # widen the window
    await session.execute(update(CapacityBucket).where(CapacityBucket.id == bucket_id)
                          .values(booked=row.booked + 1)
                          .execution_options(synchronize_session=False))
    return True


async def return_place(session: AsyncSession, bucket_id: int) -> None:
    """Give one place back. A counter that would go negative is a bug: fail loudly."""
    session.info["capacity_changed"] = True
    result = await session.execute(
        update(CapacityBucket)
        .where(CapacityBucket.id == bucket_id, CapacityBucket.booked > 0)
        .values(booked=CapacityBucket.booked - 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"capacity bucket {bucket_id} would go negative")


async def set_capacity(session: AsyncSession, bucket_id: int, capacity: int) -> bool:
    """Change a bucket's capacity unless that would put it below what is booked."""
    session.info["capacity_changed"] = True
    result = await session.execute(
        update(CapacityBucket)
        .where(CapacityBucket.id == bucket_id, CapacityBucket.booked <= capacity)
        .values(capacity=capacity)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def buckets_for(session: AsyncSession, slot_id: int, dose_kind: str) -> list[BucketView]:
    rows = await session.execute(
        select(CapacityBucket).where(CapacityBucket.slot_id == slot_id,
                                     CapacityBucket.dose_kind == dose_kind)
        .order_by(CapacityBucket.id))
    return [BucketView(id=b.id, share=Share(b.share), capacity=b.capacity, booked=b.booked,
                       release_at=b.release_at) for b in rows.scalars()]


async def schedules(session: AsyncSession) -> dict[int, Schedule]:
    vaccines = (await session.execute(select(Vaccine))).scalars().all()
    intervals = (await session.execute(select(VaccineInterval))).scalars().all()
    return {
        v.id: Schedule(vaccine_id=v.id, code=v.code, doses=v.doses,
                       intervals={i.dose_number: (i.min_days, i.max_days)
                                  for i in intervals if i.vaccine_id == v.id},
                       precaution_after_days=v.precaution_after_days)
        for v in vaccines
    }


async def dose_history(session: AsyncSession, beneficiary_id: int,
                       schedule_of: dict[int, Schedule]) -> list[GivenDose]:
    from teeka.kit.clock import LOCAL_TZ

    rows = (await session.execute(select(DoseRecord).where(
        DoseRecord.beneficiary_id == beneficiary_id))).scalars().all()
    return [GivenDose(dose_number=r.dose_number, vaccine_id=r.vaccine_id,
                      vaccine_code=schedule_of[r.vaccine_id].code,
                      day=r.administered_at.astimezone(LOCAL_TZ).date()) for r in rows]


async def active_appointment(session: AsyncSession, beneficiary_id: int) -> Appointment | None:
    return (await session.execute(select(Appointment).where(
        Appointment.beneficiary_id == beneficiary_id,
        Appointment.status == AppointmentStatus.BOOKED))).scalar_one_or_none()


async def recount_mismatches(session: AsyncSession) -> Sequence[tuple[int, int, int]]:
    """(bucket id, counter, recount) for every bucket whose counter differs from the number of
    appointments holding a place in it (booked or completed). Empty when all is well (used by
    tests and `teeka check`)."""
    held = (select(Appointment.bucket_id, func.count().label("n"))
            .where(Appointment.status.in_([AppointmentStatus.BOOKED,
                                           AppointmentStatus.COMPLETED]))
            .group_by(Appointment.bucket_id).subquery())
    rows = await session.execute(
        select(CapacityBucket.id, CapacityBucket.booked, func.coalesce(held.c.n, 0))
        .outerjoin(held, held.c.bucket_id == CapacityBucket.id)
        .where(CapacityBucket.booked != func.coalesce(held.c.n, 0)))
    return [(r[0], r[1], r[2]) for r in rows]


# ---------------------------------------------------------------- read side

_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")

async def bucket_totals(session: AsyncSession, session_ids: list[str]
                        ) -> dict[str, dict[str, int]]:
    """Free places per session and dose kind (read side; never used to decide a booking)."""
    rows = await session.execute(
        select(CapacityBucket.session_id, CapacityBucket.dose_kind,
               func.sum(CapacityBucket.capacity - CapacityBucket.booked))
        .where(CapacityBucket.session_id.in_(session_ids))
        .group_by(CapacityBucket.session_id, CapacityBucket.dose_kind))
    out: dict[str, dict[str, int]] = {}
    for sid, kind, free in rows:
        out.setdefault(sid, {})[kind] = max(int(free or 0), 0)
    return out


def in_scope(query: _Q, *, district_id: int | None, pincode: int | None,
             centre_id: int | None) -> _Q:
    """Narrow a query that joins Centre to a district, a PIN code and/or one centre."""
    if district_id is not None:
        query = query.where(Centre.district_id == district_id)
    if pincode is not None:
        query = query.where(Centre.pincode == pincode)
    if centre_id is not None:
        query = query.where(Centre.id == centre_id)
    return query


async def find_sessions(session: AsyncSession, *, district_id: int | None = None,
                        pincode: int | None = None, centre_id: int | None = None,
                        day: date, days: int = 1) -> list[SessionAvailability]:
    query = (select(VaccinationSession, Centre, Vaccine)
             .join(Centre, Centre.id == VaccinationSession.centre_id)
             .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
             .where(Centre.active.is_(True), VaccinationSession.date >= day,
                    VaccinationSession.date < day + timedelta(days=days))
             .order_by(Centre.id, VaccinationSession.date, VaccinationSession.min_age))
    query = in_scope(query, district_id=district_id, pincode=pincode, centre_id=centre_id)
    rows = (await session.execute(query.limit(5000))).all()
    ids = [r[0].id for r in rows]
    if not ids:
        return []
    totals = await bucket_totals(session, ids)
    slots: dict[str, list[str]] = {}
    for sid, label in await session.execute(
            select(SessionSlot.session_id, SessionSlot.label)
            .where(SessionSlot.session_id.in_(ids)).order_by(SessionSlot.ordinal)):
        slots.setdefault(sid, []).append(label)
    out = []
    for vs, centre, vaccine in rows:
        t = totals.get(vs.id, {})
        d1, d2, d3 = t.get("first", 0), t.get("second", 0), t.get("precaution", 0)
        out.append(SessionAvailability(
            session_id=vs.id, centre_id=centre.id, centre_name=centre.name_en,
            centre_name_hi=centre.name_hi, pincode=centre.pincode, district_id=centre.district_id,
            date=vs.date, vaccine=vaccine.code, min_age=vs.min_age, max_age=vs.max_age,
            fee_type=centre.fee_type, slots=slots.get(vs.id, []), available_dose1=d1,
            available_dose2=d2, available_precaution=d3, available=d1 + d2 + d3))
    return out


async def appointment_read(session: AsyncSession, appointment_id: str) -> AppointmentRead:
    row = (await session.execute(
        select(Appointment, Booking, Beneficiary, VaccinationSession, SessionSlot, Centre)
        .join(Booking, Booking.id == Appointment.booking_id)
        .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
        .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
        .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .where(Appointment.id == appointment_id))).one()
    appt, booking, person, vs, slot, centre = row
    return AppointmentRead(appointment_id=appt.id, confirmation_no=booking.confirmation_no,
                           beneficiary_reference_id=person.reference_id, centre_id=centre.id,
                           centre_name=centre.name_en, session_id=vs.id, date=vs.date,
                           slot=slot.label, dose=appt.dose_number, status=appt.status)
