"""What the state's operators watch, so that they see trouble before a district phones in:
centres gone silent (slots over, people booked, no dose recorded: offline, or not open), SMS
not leaving (the outbox backs up or fails), problems waiting longer than their severity
allows, doses given offline that could not be recorded, and the servers themselves (people
refused with 503, unexpected errors, saturated event loops, a process gone silent, no outbox
worker running: their reports, teeka.watch.beat). Read from the database on each look
(the page refreshes itself every minute when asked, without JavaScript); `trouble` names
what needs an operator now. The thresholds are below; docs/watch.md explains each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.centre import repository as centre_repo
from teeka.kit import clock
from teeka.models import (
    Beneficiary,
    Centre,
    District,
    DoseRecord,
    OfflineDose,
    OutboxMessage,
    OutboxStatus,
    Problem,
    ProblemStatus,
    ServerBeat,
    VaccinationSession,
)
from teeka.vaccination.rules import SYNC_DAYS
from teeka.watch import rules

SMS_LATE = timedelta(minutes=5)  # an SMS waiting longer than this: delivery is stuck
FAILED_WINDOW = timedelta(hours=24)  # SMS given up on within this window are shown
# SMS are failing when, in the last hour, at least this many were given up on and they are at
# least this share of those finished (one wrong number among a state's SMS is not an alarm)
FAIL_HOUR = timedelta(hours=1)
FAIL_MIN, FAIL_SHARE = 10, 0.02
# A centre is listed as silent with one person missed; it is an alarm from this many (a
# single no-show is not)
SILENT_ALARM = 5
SILENT_SHOWN = 100  # silent centres listed (the count covers them all)
# The servers' own reports (teeka.watch.beat, every 15 s, counts over the last minute). A
# process is reporting when its last report is this recent; one that stopped reporting without
# saying it shut down is silent (unless a process of its kind started since and replaces no
# other: restarted).
SERVER_LIVE = timedelta(seconds=75)
# Requests other than the crowd's refused with 503 (shed, or Busy inside): people trying to
# book or record are being turned away. The crowd's refusals during an opening are by design.
REFUSING_MIN, REFUSING_SHARE = 20, 0.01
ERRORS_MIN = 5  # requests that ended in an unexpected error (500), all servers, in a minute
# An event loop late by more than 50 ms on this share of its timer's wake-ups (with at least
# SLOW_SAMPLES of them), or by more than a second once: the process is saturated.
SLOW_SHARE, SLOW_SAMPLES = 0.05, 40


@dataclass(frozen=True)
class SilentCentre:
    centre_id: int
    name_en: str
    name_hi: str
    district_en: str
    district_hi: str
    booked: int
    missed: int  # booked in slots already over, not vaccinated


@dataclass(frozen=True)
class ServerView:
    name: str
    host: str
    pid: int
    kind: str  # web or worker
    runs_worker: bool
    started_at: datetime
    beat_at: datetime
    window_s: int
    requests: int
    crowd: int
    shed_work: int
    shed_crowd: int
    busy: int
    failed: int
    lag_samples: int
    lag_slow: int
    lag_stalled: int

    @property
    def refused_work(self) -> int:
        return self.shed_work + self.busy

    @property
    def saturated(self) -> bool:
        return self.lag_stalled > 0 or (self.lag_samples >= SLOW_SAMPLES
                                        and self.lag_slow >= SLOW_SHARE * self.lag_samples)


@dataclass
class Signals:
    at: datetime
    problems_open: dict[str, int] = field(default_factory=dict)  # by severity
    problems_overdue: int = 0
    sms_pending: int = 0
    sms_oldest_pending_s: int | None = None
    sms_failed: int = 0  # given up on in the last FAILED_WINDOW
    sms_failed_hour: int = 0  # given up on in the last hour
    sms_sent_hour: int = 0  # delivered in the last hour
    silent_centres: list[SilentCentre] = field(default_factory=list)
    silent_count: int = 0
    silent_alarm: int = 0  # silent centres with at least SILENT_ALARM people missed
    offline_to_resolve: int = 0  # uploaded within the sync days, not recorded
    servers: list[ServerView] = field(default_factory=list)  # reporting now
    servers_silent: list[ServerView] = field(default_factory=list)  # stopped reporting
    servers_restarted: int = 0  # silent, but one of the same kind on the host started since

    def servers_total(self, name: str) -> int:
        """One count summed over the servers reporting now (the last minute)."""
        return sum(int(getattr(v, name)) for v in self.servers)

    @property
    def trouble(self) -> list[str]:
        """What needs an operator now, most pressing first (stable codes)."""
        out = []
        if self.problems_open.get("urgent"):
            out.append("urgent_problem")
        if self.servers_silent:
            out.append("server_silent")
        if self.servers and not any(v.runs_worker for v in self.servers):
            out.append("no_worker")
        refused = self.servers_total("refused_work")
        work = self.servers_total("requests") - self.servers_total("crowd") \
            + self.servers_total("shed_work")
        if refused >= REFUSING_MIN and refused >= REFUSING_SHARE * work:
            out.append("servers_refusing")
        if self.servers_total("failed") >= ERRORS_MIN:
            out.append("server_errors")
        if any(v.saturated for v in self.servers):
            out.append("servers_saturated")
        if self.problems_overdue:
            out.append("problem_overdue")
        if self.silent_alarm:
            out.append("silent_centres")
        if self.sms_oldest_pending_s is not None and self.sms_oldest_pending_s > \
                SMS_LATE.total_seconds():
            out.append("sms_late")
        failed, finished = self.sms_failed_hour, self.sms_failed_hour + self.sms_sent_hour
        if failed >= FAIL_MIN and failed >= FAIL_SHARE * finished:
            out.append("sms_failing")
        if self.offline_to_resolve:
            out.append("offline_to_resolve")
        return out


async def read(session: AsyncSession, *, actor: Actor) -> Signals:
    """The signals, for an operator only."""
    if not rules.is_operator(actor):
        raise errors.Forbidden()
    return await collect(session)


async def collect(session: AsyncSession) -> Signals:
    """The signals, read for whoever may see them (`read`; the pager, teeka.watch.pager)."""
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
        out.sms_oldest_pending_s = max(0, int((now - aware(oldest)).total_seconds()))
    # A message given up on keeps the time of its last try in next_attempt_at (the worker),
    # which the outbox's (status, next_attempt_at) index reads as a range.
    def finished(status: str, since: timedelta) -> Select[int]:
        return (select(func.count()).select_from(OutboxMessage)
                .where(OutboxMessage.status == status,
                       OutboxMessage.next_attempt_at >= now - since))

    out.sms_failed = int((await session.execute(
        finished(OutboxStatus.FAILED, FAILED_WINDOW))).scalar_one())
    out.sms_failed_hour = int((await session.execute(
        finished(OutboxStatus.FAILED, FAIL_HOUR))).scalar_one())
    out.sms_sent_hour = int((await session.execute(
        finished(OutboxStatus.SENT, FAIL_HOUR))).scalar_one())
    answered = (select(DoseRecord.id)
                .join(Beneficiary, Beneficiary.id == DoseRecord.beneficiary_id)
                .join(VaccinationSession, VaccinationSession.id == DoseRecord.session_id)
                .where(Beneficiary.reference_id == OfflineDose.reference_id,
                       DoseRecord.centre_id == OfflineDose.centre_id,
                       VaccinationSession.date == OfflineDose.day,
                       DoseRecord.created_at >= OfflineDose.uploaded_at).exists())
    out.offline_to_resolve = int((await session.execute(
        select(func.count()).select_from(OfflineDose)
        .where(OfflineDose.outcome == "refused", ~answered,
               OfflineDose.uploaded_at >= now - timedelta(days=SYNC_DAYS + 1))
    )).scalar_one())
    await _silent(session, out, now)
    await _servers(session, out, now)
    return out


async def _servers(session: AsyncSession, out: Signals, now: datetime) -> None:
    """The servers' own reports (teeka.watch.beat): those reporting now, and those that
    stopped reporting without shutting down (a process that was restarted is counted, not
    alarmed: a later one of its kind reports from the same host)."""
    rows = (await session.execute(
        select(ServerBeat).where(ServerBeat.stopped_at.is_(None))
        .order_by(ServerBeat.host, ServerBeat.kind, ServerBeat.started_at))).scalars().all()
    views = [ServerView(**{f: getattr(r, f) for f in ServerView.__dataclass_fields__})
             for r in rows]
    out.servers = [v for v in views if aware(v.beat_at) >= now - SERVER_LIVE]
    silent = sorted((v for v in views if aware(v.beat_at) < now - SERVER_LIVE),
                    key=lambda v: v.beat_at)
    replaced = replacements(silent, out.servers)
    out.servers_silent = [v for v in silent if v.name not in replaced]
    out.servers_restarted = len(replaced)


def replacements(silent: list[ServerView], live: list[ServerView]) -> set[str]:
    """The silent processes a live one took over from. Each process that started after a
    silent one's last report replaces at most one of its kind (two dead, one back: one is
    still missing): first on the same host, across every silent one (a process restarted
    where it ran), then elsewhere, the earliest silent first (a container rescheduled on
    another host). Matching elsewhere first could call a process replaced while the one that
    really is missing stayed listed, so that an operator retiring the listed one would clear
    the alarm with a process still down (a reviewer's note, 29 Nov)."""
    newcomers = sorted(live, key=lambda w: w.started_at)
    replaced: set[str] = set()
    for same_host in (True, False):
        for v in silent:
            if v.name in replaced:
                continue
            taken = next((w for w in newcomers if w.kind == v.kind
                          and aware(w.started_at) >= aware(v.beat_at)
                          and (w.host == v.host) == same_host), None)
            if taken is not None:
                newcomers.remove(taken)
                replaced.add(v.name)
    return replaced


def aware(at: datetime) -> datetime:
    """min() over a UTC column comes back naive on SQLite."""
    return at if at.tzinfo is not None else at.replace(tzinfo=clock.now().tzinfo)


async def _silent(session: AsyncSession, out: Signals, now: datetime) -> None:
    """Centres with people booked today in slots already over and not one dose recorded
    today (neither booked nor walk-in): the day's counts of every centre, in one grouped read
    (teeka.centre.repository.today_at_centres)."""
    counts = await centre_repo.today_at_centres(session, None, day=clock.today(), now=now)
    silent = {cid: c.no_shows for cid, c in counts.items()
              if c.no_shows and not c.vaccinated and not c.walkins}
    out.silent_count = len(silent)
    out.silent_alarm = sum(1 for n in silent.values() if n >= SILENT_ALARM)
    if not silent:
        return
    worst = sorted(silent, key=lambda cid: (-silent[cid], cid))[:SILENT_SHOWN]
    rows = await session.execute(
        select(Centre.id, Centre.name_en, Centre.name_hi, District.name_en, District.name_hi)
        .join(District, District.id == Centre.district_id).where(Centre.id.in_(worst)))
    names = {r[0]: r[1:] for r in rows}
    out.silent_centres = [SilentCentre(cid, *names[cid], booked=counts[cid].booked,
                                       missed=silent[cid])
                          for cid in worst if cid in names]
