"""What the state's operators watch, so that they see trouble before a district phones in:
centres gone silent (slots over, people booked, no dose recorded: offline, or not open), SMS
not leaving (the outbox backs up or fails), problems waiting longer than their severity
allows, doses given offline that could not be recorded. Read from the database on each look
(the page refreshes itself every minute when asked, without JavaScript); `trouble` names
what needs an operator now. The thresholds are below; docs/watch.md explains each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.centre import repository as centre_repo
from teeka.kit import clock
from teeka.models import (
    Centre,
    District,
    DoseRecord,
    OfflineDose,
    OutboxMessage,
    OutboxStatus,
    Problem,
    ProblemStatus,
    VaccinationSession,
)
from teeka.watch import rules

SMS_LATE = timedelta(minutes=5)  # an SMS waiting longer than this: delivery is stuck
FAILED_WINDOW = timedelta(hours=24)  # SMS given up on within this window are counted
SILENT_SHOWN = 100  # silent centres listed (the count covers them all)


@dataclass(frozen=True)
class SilentCentre:
    centre_id: int
    name_en: str
    name_hi: str
    district_en: str
    district_hi: str
    booked: int
    missed: int  # booked in slots already over, not vaccinated


@dataclass
class Signals:
    at: datetime
    problems_open: dict[str, int] = field(default_factory=dict)  # by severity
    problems_overdue: int = 0
    sms_pending: int = 0
    sms_oldest_pending_s: int | None = None
    sms_failed: int = 0  # in the last FAILED_WINDOW
    silent_centres: list[SilentCentre] = field(default_factory=list)
    silent_count: int = 0
    offline_to_resolve: int = 0

    @property
    def trouble(self) -> list[str]:
        """What needs an operator now, most pressing first (stable codes)."""
        out = []
        if self.problems_open.get("urgent"):
            out.append("urgent_problem")
        if self.problems_overdue:
            out.append("problem_overdue")
        if self.silent_count:
            out.append("silent_centres")
        if self.sms_oldest_pending_s is not None and self.sms_oldest_pending_s > \
                SMS_LATE.total_seconds():
            out.append("sms_late")
        if self.sms_failed:
            out.append("sms_failing")
        if self.offline_to_resolve:
            out.append("offline_to_resolve")
        return out


async def read(session: AsyncSession, *, actor: Actor) -> Signals:
    """The signals, for an operator only."""
    if not rules.is_operator(actor):
        raise errors.Forbidden()
    now = clock.now()
    out = Signals(at=now)
    for severity, status, raised_at in (await session.execute(
            select(Problem.severity, Problem.status, Problem.raised_at)
            .where(Problem.status != ProblemStatus.RESOLVED.value))).all():
        out.problems_open[severity] = out.problems_open.get(severity, 0) + 1
        out.problems_overdue += rules.overdue(severity, status, raised_at, now)
    pending, oldest = (await session.execute(
        select(func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status == OutboxStatus.PENDING))).one()
    out.sms_pending = int(pending)
    if oldest is not None:
        out.sms_oldest_pending_s = max(0, int((now - _aware(oldest)).total_seconds()))
    out.sms_failed = int((await session.execute(
        select(func.count()).select_from(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.FAILED,
               OutboxMessage.created_at >= now - FAILED_WINDOW))).scalar_one())
    recorded_there = (select(DoseRecord.id).where(
        DoseRecord.appointment_id == OfflineDose.appointment_id,
        DoseRecord.centre_id == OfflineDose.centre_id).exists())
    out.offline_to_resolve = int((await session.execute(
        select(func.count()).select_from(OfflineDose)
        .where(OfflineDose.outcome == "refused", ~recorded_there))).scalar_one())
    await _silent(session, out, now)
    return out


def _aware(at: datetime) -> datetime:
    """min() over a UTC column comes back naive on SQLite."""
    return at if at.tzinfo is not None else at.replace(tzinfo=clock.now().tzinfo)


async def _silent(session: AsyncSession, out: Signals, now: datetime) -> None:
    """Centres with people booked today in slots already over and not one dose recorded
    today (neither booked nor walk-in)."""
    day = clock.today()
    centre_ids = list((await session.execute(
        select(VaccinationSession.centre_id).where(VaccinationSession.date == day).distinct()
    )).scalars())
    counts = await centre_repo.today_at_centres(session, centre_ids, day=day, now=now)
    silent = {cid: c for cid, c in counts.items()
              if c.no_shows and not c.vaccinated and not c.walkins}
    out.silent_count = len(silent)
    if not silent:
        return
    worst = sorted(silent, key=lambda cid: (-silent[cid].no_shows, cid))[:SILENT_SHOWN]
    rows = await session.execute(
        select(Centre.id, Centre.name_en, Centre.name_hi, District.name_en, District.name_hi)
        .join(District, District.id == Centre.district_id).where(Centre.id.in_(worst)))
    names = {r[0]: r[1:] for r in rows}
    out.silent_centres = [SilentCentre(cid, *names[cid], booked=silent[cid].booked,
                                       missed=silent[cid].no_shows)
                          for cid in worst if cid in names]
