"""Reads for the national surface: centres with their names in both languages, their fees, and
their sessions with free places per dose (computed from the capacity buckets, the one counter)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.booking.repository import bucket_totals, in_scope
from teeka.models import (
    Block,
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
    query = in_scope(_centres_query().order_by(Centre.id), district_id=district_id,
                     pincode=pincode, centre_id=centre_id)
    rows = (await session.execute(query)).all()
    centres = {c.id: CentreInfo(c, d, b, s) for c, d, b, s in rows}
    if not centres:
        return []
    ids = list(centres)
    srows = (await session.execute(
        select(VaccinationSession, Vaccine.code)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(VaccinationSession.centre_id.in_(ids), VaccinationSession.date >= day,
               VaccinationSession.date < day + timedelta(days=days),
               *([Vaccine.code == vaccine.upper()] if vaccine else []))
        .order_by(VaccinationSession.date, VaccinationSession.min_age))).all()
    sids = [vs.id for vs, _ in srows]
    totals = await bucket_totals(session, sids) if sids else {}
    slots: dict[str, list[str]] = {}
    if sids:
        for sid, label in await session.execute(
                select(SessionSlot.session_id, SessionSlot.label)
                .where(SessionSlot.session_id.in_(sids)).order_by(SessionSlot.ordinal)):
            slots.setdefault(sid, []).append(label)
    for vs, code in srows:
        t = totals.get(vs.id, {})
        centres[vs.centre_id].sessions.append(SessionInfo(
            id=vs.id, date=vs.date, vaccine=code, min_age=vs.min_age, max_age=vs.max_age,
            slots=slots.get(vs.id, []), dose1=t.get("first", 0), dose2=t.get("second", 0),
            precaution=t.get("precaution") if "precaution" in t else None))
    for centre_id_, code, fee in await session.execute(
            select(CentreFee.centre_id, Vaccine.code, CentreFee.fee)
            .join(Vaccine, Vaccine.id == CentreFee.vaccine_id)
            .where(CentreFee.centre_id.in_(ids))):
        centres[centre_id_].fees[code] = fee
    return list(centres.values())


async def centres_near(session: AsyncSession, lat: float, long: float, box: float = 0.5
                       ) -> Sequence[tuple[Centre, District, Block, State]]:
    rows = await session.execute(_centres_query().where(
        Centre.lat.between(lat - box, lat + box), Centre.long.between(long - box, long + box)))
    return rows.all()
