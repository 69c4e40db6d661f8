"""Reads for the national surface: centres with their names in both languages, their fees, and
their sessions with free places per dose (computed from the capacity buckets, the one counter)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.booking.repository import in_scope
from teeka.models import (
    Block,
    CapacityBucket,
    Centre,
    CentreFee,
    District,
    SessionSlot,
    State,
    VaccinationSession,
    Vaccine,
)


@dataclass
class SessionInfo:
    id: str
    date: date
    vaccine: str
    min_age: int
    max_age: int | None
    slots: list[str]
    dose1: int
    dose2: int
    precaution: int | None  # None: the session offers no precaution doses

    @property
    def available(self) -> int:
        return self.dose1 + self.dose2 + (self.precaution or 0)


@dataclass
class CentreInfo:
    centre: Centre
    district: District
    block: Block
    state: State
    fees: dict[str, int] = field(default_factory=dict)
    sessions: list[SessionInfo] = field(default_factory=list)


def _centres_query() -> Select[Centre, District, Block, State]:
    return (select(Centre, District, Block, State)
            .join(District, District.id == Centre.district_id)
            .join(Block, Block.id == Centre.block_id)
            .join(State, State.id == District.state_id)
            .where(Centre.active.is_(True)))


async def centres_with_sessions(session: AsyncSession, *, day: date, days: int,
                                district_id: int | None = None, pincode: int | None = None,
                                centre_id: int | None = None, vaccine: str | None = None
                                ) -> list[CentreInfo]:
    """The active centres of a scope, with their fees and their sessions of `days` days from
    `day`. Five queries whatever the size of the scope: each later one selects by the scope
    itself (a subquery), never by a list of ids, and fetches plain columns rather than ORM
    objects (this builds the public snapshots, teeka.surge.snapshot). On PostgreSQL each query
    sees the database as it is when it runs: a centre made active (or added) after the first
    one is left out of this answer, not an error; the next build has it."""
    query = in_scope(_centres_query().order_by(Centre.id), district_id=district_id,
                     pincode=pincode, centre_id=centre_id)
    rows = (await session.execute(query)).all()
    centres = {c.id: CentreInfo(c, d, b, s) for c, d, b, s in rows}
    if not centres:
        return []
    in_centres = in_scope(select(Centre.id).where(Centre.active.is_(True)),
                          district_id=district_id, pincode=pincode, centre_id=centre_id)
    sessions = (select(VaccinationSession.id)
                .where(VaccinationSession.centre_id.in_(in_centres),
                       VaccinationSession.date >= day,
                       VaccinationSession.date < day + timedelta(days=days)))
    if vaccine:
        sessions = sessions.where(VaccinationSession.vaccine_id.in_(
            select(Vaccine.id).where(Vaccine.code == vaccine.upper())))
    srows = (await session.execute(
        select(VaccinationSession.id, VaccinationSession.centre_id, VaccinationSession.date,
               VaccinationSession.min_age, VaccinationSession.max_age, Vaccine.code)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(VaccinationSession.id.in_(sessions))
        .order_by(VaccinationSession.date, VaccinationSession.min_age))).all()
    if srows:
        totals: dict[str, dict[str, int]] = {}
        for sid, kind, free in await session.execute(
                select(CapacityBucket.session_id, CapacityBucket.dose_kind,
                       func.sum(CapacityBucket.capacity - CapacityBucket.booked))
                .where(CapacityBucket.session_id.in_(sessions))
                .group_by(CapacityBucket.session_id, CapacityBucket.dose_kind)):
            totals.setdefault(sid, {})[kind] = max(int(free or 0), 0)
        slots: dict[str, list[str]] = {}
        for sid, label in await session.execute(
                select(SessionSlot.session_id, SessionSlot.label)
                .where(SessionSlot.session_id.in_(sessions)).order_by(SessionSlot.ordinal)):
            slots.setdefault(sid, []).append(label)
        for sid, cid, when, min_age, max_age, code in srows:
            if cid not in centres:
                continue
            t = totals.get(sid, {})
            centres[cid].sessions.append(SessionInfo(
                id=sid, date=when, vaccine=code, min_age=min_age, max_age=max_age,
                slots=slots.get(sid, []), dose1=t.get("first", 0), dose2=t.get("second", 0),
                precaution=t.get("precaution") if "precaution" in t else None))
    for centre_id_, code, fee in await session.execute(
            select(CentreFee.centre_id, Vaccine.code, CentreFee.fee)
            .join(Vaccine, Vaccine.id == CentreFee.vaccine_id)
            .where(CentreFee.centre_id.in_(in_centres))):
        if centre_id_ in centres:
            centres[centre_id_].fees[code] = fee
    return list(centres.values())


async def centres_near(session: AsyncSession, lat: float, long: float, box: float = 0.5
                       ) -> Sequence[tuple[Centre, District, Block, State]]:
    rows = await session.execute(_centres_query().where(
        Centre.lat.between(lat - box, lat + box), Centre.long.between(long - box, long + box)))
    return rows.all()
