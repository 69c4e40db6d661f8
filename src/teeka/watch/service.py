"""Problems a district or a centre raises for the state's operators, tracked to resolution:
raised (open), taken by an operator (acknowledged), resolved with a note saying what was done;
reopened by anyone who sees it when it is not. Every move is a note in the problem's history
and an audit entry. Who may see and move what: teeka.watch.rules. The API and the pages call
these functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.actor import Actor
from teeka.kit import clock
from teeka.models import (
    Centre,
    District,
    Problem,
    ProblemNote,
    ProblemStatus,
    ServerBeat,
    StaffUser,
)
from teeka.models.staff import Role
from teeka.notification.service import queue_sms
from teeka.watch import rules

LIST_LIMIT = 300
REPEAT_WINDOW = timedelta(minutes=2)  # the same problem sent again within this is the same one
ID_MAX = 2**31 - 1  # an INTEGER column: a larger id is no row (and no database error)


def _id(value: int | None) -> int | None:
    return None if value is None else value if 0 < value <= ID_MAX else -1
_SEVERITY_ORDER = {"urgent": 0, "high": 1, "normal": 2}
_MOVED = {ProblemStatus.ACKNOWLEDGED: "acknowledged", ProblemStatus.RESOLVED: "resolved",
          ProblemStatus.OPEN: "reopened"}


@dataclass(frozen=True)
class ProblemView:
    id: int
    district_id: int
    district_en: str
    district_hi: str
    centre_id: int | None
    centre_en: str | None
    centre_hi: str | None
    title: str
    details: str
    severity: str
    status: str
    raised_by: str
    raised_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime
    overdue: bool


@dataclass(frozen=True)
class NoteView:
    author: str
    at: datetime
    text: str
    status_to: str | None


def _view(p: Problem, district: District, centre: Centre | None, raiser: str,
          now: datetime) -> ProblemView:
    return ProblemView(
        id=p.id, district_id=p.district_id, district_en=district.name_en,
        district_hi=district.name_hi, centre_id=p.centre_id,
        centre_en=centre.name_en if centre else None, centre_hi=centre.name_hi if centre else None,
        title=p.title, details=p.details, severity=p.severity, status=p.status,
        raised_by=raiser, raised_at=p.raised_at, acknowledged_at=p.acknowledged_at,
        resolved_at=p.resolved_at, updated_at=p.updated_at,
        overdue=rules.overdue(p.severity, p.status, p.opened_at, now))


def _query() -> Select[Problem, District, Centre, str]:
    raiser = aliased(StaffUser)
    return (select(Problem, District, Centre, raiser.name)
            .join(District, District.id == Problem.district_id)
            .outerjoin(Centre, Centre.id == Problem.centre_id)
            .join(raiser, raiser.id == Problem.raised_by))


async def raise_problem(session: AsyncSession, *, actor: Actor, district_id: int | None,
                        centre_id: int | None, title: str, details: str,
                        severity: str) -> ProblemView:
    """A new open problem. A vaccinator raises it for their centre; district staff for their
    district (and one of its centres, if it is about one); an operator for any district."""
    if not rules.may_raise(actor):
        raise errors.Forbidden()
    level = rules.severity(severity)
    clean_title, clean_details = rules.title(title), rules.details(details)
    centre_id, district_id = _id(centre_id), _id(district_id)
    if actor.has_role(Role.VACCINATOR):
        centre_id = actor.centre_id
    centre = await session.get(Centre, centre_id) if centre_id is not None else None
    if centre_id is not None and centre is None:
        if not rules.is_operator(actor):
            raise errors.Forbidden()  # as for another district's centre: nothing disclosed
        raise errors.Invalid(detail="no such centre")
    if centre is not None:
        district_id = centre.district_id
    elif actor.has_role(Role.DISTRICT_ADMIN, Role.HELPDESK):
        district_id = actor.district_id
    if district_id is None or await session.get(District, district_id) is None:
        raise errors.Invalid(detail="choose the district the problem is in")
    if not rules.sees(actor, district_id, centre_id):
        raise errors.Forbidden()
    now = clock.now()
    # The same problem sent twice (a double click, two tabs, a resend after a lost answer)
    # is one problem: the raiser's row is locked (their sends one after another) and the
    # same title, details and severity for the same place within REPEAT_WINDOW are answered
    # with the problem already raised, so the operators on call are not paged twice for it
    # (a different severity is raised anew: an escalation).
    await session.execute(select(StaffUser.id).where(StaffUser.id == actor.id)
                          .with_for_update(key_share=True))
    repeat = (await session.execute(select(Problem.id).where(
        Problem.raised_by == actor.id, Problem.district_id == district_id,
        Problem.centre_id.is_(None) if centre_id is None else Problem.centre_id == centre_id,
        Problem.title == clean_title, Problem.details == clean_details,
        Problem.severity == level.value, Problem.raised_at >= now - REPEAT_WINDOW)
        .order_by(Problem.id).limit(1))).scalar()
    if repeat is not None:
        view, _notes = await get_problem(session, actor=actor, problem_id=repeat)
        return view
    problem = Problem(district_id=district_id, centre_id=centre_id, title=clean_title,
                      details=clean_details, severity=level.value,
                      status=ProblemStatus.OPEN.value, raised_by=actor.id, raised_at=now,
                      opened_at=now, updated_at=now)
    session.add(problem)
    await session.flush()
    await log_action(session, actor=actor.label, action="watch.problem.raised",
                     object_type="problem", object_id=problem.id, district=district_id,
                     centre=centre_id, severity=level.value)
    view, _notes = await get_problem(session, actor=actor, problem_id=problem.id)
    return view


PROBLEM_TAKEN_SMS = ("Teeka: an operator has taken problem {number} that you raised. "
                     "See /staff/problems/{number}")
PROBLEM_RESOLVED_SMS = ("Teeka: problem {number} that you raised has been resolved. "
                        "Read what was done, or reopen it: /staff/problems/{number}")


async def _tell_raiser(session: AsyncSession, problem: Problem, to: ProblemStatus,
                       actor: Actor) -> None:
    """An SMS to whoever raised the problem, when an operator takes or resolves it: if they
    keep a mobile number (`teeka user mobile`) and are not the one moving it. The number only,
    never the problem's text (typed freely, it may name people)."""
    if problem.raised_by == actor.id:
        return
    raiser = await session.get(StaffUser, problem.raised_by)
    if raiser is None or not raiser.active or raiser.mobile is None:
        return
    await queue_sms(session, to=raiser.mobile, lang=raiser.language,
                    template=PROBLEM_TAKEN_SMS if to == ProblemStatus.ACKNOWLEDGED
                    else PROBLEM_RESOLVED_SMS, number=problem.id)


async def list_problems(session: AsyncSession, *, actor: Actor, show: str = "open",
                        district_id: int | None = None) -> list[ProblemView]:
    """The problems the actor sees: `show` "open" (not resolved: open or acknowledged),
    "resolved" or "all"; the most urgent and the oldest first."""
    if not rules.may_raise(actor):
        raise errors.Forbidden()
    query = _query()
    if show == "open":
        query = query.where(Problem.status != ProblemStatus.RESOLVED.value)
    elif show == "resolved":
        query = query.where(Problem.status == ProblemStatus.RESOLVED.value)
    elif show != "all":
        raise errors.Invalid(detail="show must be open, resolved or all")
    if not rules.is_operator(actor):
        if actor.has_role(Role.VACCINATOR):
            query = query.where(Problem.centre_id == actor.centre_id)
        else:
            query = query.where(Problem.district_id == actor.district_id)
    if district_id is not None:
        query = query.where(Problem.district_id == _id(district_id))
    # What is not resolved: the most urgent, then the longest waiting, first. What is
    # resolved: the latest resolved first (the list stops at LIST_LIMIT; the page says so).
    severity_rank = case(_SEVERITY_ORDER, value=Problem.severity, else_=3)
    resolved = Problem.status == ProblemStatus.RESOLVED.value
    resolved_last = case((resolved, 1), else_=0)
    rows = await session.execute(query.order_by(
        resolved_last, case((resolved, 0), else_=severity_rank),
        case((resolved, None), else_=Problem.opened_at), Problem.resolved_at.desc(),
        Problem.id.desc()).limit(LIST_LIMIT))
    now = clock.now()
    return [_view(p, d, c, name, now) for p, d, c, name in rows]


async def get_problem(session: AsyncSession, *, actor: Actor, problem_id: int
                      ) -> tuple[ProblemView, list[NoteView]]:
    """One problem and its history. Not found for anyone who may not see it (its existence is
    not disclosed)."""
    row = (await session.execute(_query().where(Problem.id == _id(problem_id)))).first()
    if row is None or not rules.sees(actor, row[0].district_id, row[0].centre_id):
        raise errors.NotFound()
    notes = await session.execute(
        select(ProblemNote, StaffUser.name).join(StaffUser, StaffUser.id == ProblemNote.author_id)
        .where(ProblemNote.problem_id == problem_id).order_by(ProblemNote.at, ProblemNote.id))
    p, district, centre, raiser = row
    return (_view(p, district, centre, raiser, clock.now()),
            [NoteView(author=name, at=n.at, text=n.text, status_to=n.status_to)
             for n, name in notes])


async def add_note(session: AsyncSession, *, actor: Actor, problem_id: int, text: str,
                   status: str | None = None, seen: datetime | None = None) -> ProblemView:
    """A note on the problem, moving it to `status` when given: an operator takes
    (acknowledged) or resolves it; anyone who sees it reopens a resolved one. Resolving and
    reopening need a note saying what was done or why. `seen`: the problem's updated_at as
    the page showed it; a move made from a page older than the problem is refused
    (ProblemChanged), so nobody resolves what was reopened since they looked."""
    problem = (await session.execute(select(Problem).where(Problem.id == _id(problem_id))
                                     .with_for_update())).scalar_one_or_none()
    if problem is None or not rules.sees(actor, problem.district_id, problem.centre_id):
        raise errors.NotFound()
    if status and seen is not None and seen != problem.updated_at:
        raise errors.ProblemChanged()
    to = None
    if status:
        try:
            to = ProblemStatus(status)
        except ValueError:
            raise errors.Invalid(detail="status must be acknowledged, resolved or open") from None
        rules.check_move(actor, problem.status, to)
    clean = rules.note(text, required=to in (None, ProblemStatus.RESOLVED, ProblemStatus.OPEN))
    now = clock.now()
    if to is not None:
        old = problem.status
        problem.status = to.value
        if to == ProblemStatus.ACKNOWLEDGED:
            problem.acknowledged_at = now
        elif to == ProblemStatus.RESOLVED:
            problem.resolved_at = now
            problem.acknowledged_at = problem.acknowledged_at or now
        else:  # reopened: waiting for an operator again, from now
            problem.resolved_at = problem.acknowledged_at = None
            problem.opened_at = now
    problem.updated_at = now
    session.add(ProblemNote(problem_id=problem.id, author_id=actor.id, at=now,
                            text=clean or "", status_to=to.value if to else None))
    await session.flush()
    await log_action(session, actor=actor.label,
                     action="watch.problem." + (_MOVED[to] if to else "noted"),
                     object_type="problem", object_id=problem.id,
                     **({"from": old} if to is not None else {}))
    if to in (ProblemStatus.ACKNOWLEDGED, ProblemStatus.RESOLVED):
        await _tell_raiser(session, problem, to, actor)
    view, _notes = await get_problem(session, actor=actor, problem_id=problem.id)
    return view


SERVER_NAME_MAX = 120  # server_beat.name: host (60), pid and a random suffix


async def retire_server(session: AsyncSession, *, actor: Actor, name: str) -> bool:
    """An operator says a server process that stopped reporting is gone for good (its host
    retired, the deployment scaled down, a container not coming back): the watch stops calling
    it silent (`server_silent`) and stops paging for it. Only a silent process may be retired:
    one still reporting is refused (ServerStillReporting), and one that reports again later
    (it was only cut off) is listed again by its next report. An audit entry says who and
    which. Already stopped or retired: nothing changes (False)."""
    from teeka.watch.signals import SERVER_LIVE, aware

    if not rules.is_operator(actor):
        raise errors.Forbidden()
    if not name or len(name) > SERVER_NAME_MAX:
        raise errors.NotFound()
    row = await session.get(ServerBeat, name, with_for_update=True)
    if row is None:
        raise errors.NotFound()
    if row.stopped_at is not None:
        return False
    now = clock.now()
    if aware(row.beat_at) >= now - SERVER_LIVE:
        raise errors.ServerStillReporting()
    row.stopped_at = now
    await log_action(session, actor=actor.label, action="watch.server.retired",
                     object_type="server", object_id=name, host=row.host, pid=row.pid,
                     kind=row.kind, last_report=aware(row.beat_at).isoformat())
    return True
