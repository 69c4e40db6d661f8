"""JSON API for problems raised by districts and centres (teeka.watch.service)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from teeka.watch import service, signals
from teeka.watch.schemas import NoteCreate, NoteRead, ProblemCreate, ProblemRead
from teeka.web.deps import CurrentActor, Db

router = APIRouter(prefix="/api/v1/problems", tags=["problems"])


def read(v: service.ProblemView, notes: list[service.NoteView] | None = None) -> ProblemRead:
    return ProblemRead(
        id=v.id, district_id=v.district_id, district=v.district_en, centre_id=v.centre_id,
        centre=v.centre_en, title=v.title, details=v.details, severity=v.severity,
        status=v.status, raised_by=v.raised_by, raised_at=v.raised_at,
        acknowledged_at=v.acknowledged_at, resolved_at=v.resolved_at, updated_at=v.updated_at,
        overdue=v.overdue,
        notes=None if notes is None else [NoteRead(author=n.author, at=n.at, text=n.text,
                                                   status_to=n.status_to) for n in notes])


@router.get("", response_model=list[ProblemRead])
async def list_problems(db: Db, actor: CurrentActor,
                        show: Annotated[str, Query(max_length=10)] = "open",
                        district_id: int | None = None) -> list[ProblemRead]:
    """The problems you see (an operator: all; district staff: their district's; a
    vaccinator: their centre's), the most urgent and oldest first."""
    return [read(v) for v in await service.list_problems(db, actor=actor, show=show,
                                                         district_id=district_id)]


@router.post("", response_model=ProblemRead, status_code=201)
async def raise_problem(body: ProblemCreate, db: Db, actor: CurrentActor) -> ProblemRead:
    return read(await service.raise_problem(
        db, actor=actor, district_id=body.district_id, centre_id=body.centre_id,
        title=body.title, details=body.details, severity=body.severity), [])


@router.get("/{problem_id}", response_model=ProblemRead)
async def get_problem(problem_id: int, db: Db, actor: CurrentActor) -> ProblemRead:
    view, notes = await service.get_problem(db, actor=actor, problem_id=problem_id)
    return read(view, notes)


@router.post("/{problem_id}/notes", response_model=ProblemRead)
async def add_note(problem_id: int, body: NoteCreate, db: Db,
                   actor: CurrentActor) -> ProblemRead:
    """A note, and a move: an operator takes (`acknowledged`) or resolves (`resolved`, with a
    note) a problem; anyone who sees a resolved one reopens it (`open`, with a note)."""
    await service.add_note(db, actor=actor, problem_id=problem_id, text=body.text,
                           status=body.status, seen=body.seen)
    view, notes = await service.get_problem(db, actor=actor, problem_id=problem_id)
    return read(view, notes)


class SilentCentreRead(BaseModel):
    centre_id: int
    centre: str
    district: str
    booked: int
    missed: int


class ServerRead(BaseModel):
    """A process's own report (teeka.watch.beat): counts over its last window_s seconds."""

    name: str  # host:pid:random, the key to retire it by once it is silent
    host: str
    pid: int
    kind: str  # web or worker
    runs_worker: bool  # delivers SMS and pages the operators on call
    started_at: datetime
    beat_at: datetime
    window_s: int
    requests: int  # worked on (not shed), the crowd's included
    crowd: int  # of those, queue polls and joins and public availability
    shed_work: int  # refused 503 at once, not the crowd's
    shed_crowd: int  # refused 503, the crowd's (by design during an opening)
    busy: int  # answered 503 inside (the database's door, a retry, Redis), not the crowd's
    failed: int  # ended in an unexpected error (500)
    lag_samples: int  # event-loop timer wake-ups
    lag_slow: int  # of those, late by more than 50 ms
    lag_stalled: int  # late by more than a second
    saturated: bool


class SignalsRead(BaseModel):
    at: datetime
    trouble: list[str]  # what needs an operator now: stable codes (docs/watch.md)
    problems_open: dict[str, int]
    problems_overdue: int
    sms_pending: int
    sms_oldest_pending_s: int | None
    sms_failed: int
    silent_count: int
    silent_centres: list[SilentCentreRead]
    offline_to_resolve: int
    servers: list[ServerRead]  # reporting now
    servers_silent: list[ServerRead]  # stopped reporting without shutting down
    servers_restarted: int  # stopped reporting, and a new one of their kind took over


def _server(v: signals.ServerView) -> ServerRead:
    return ServerRead(saturated=v.saturated, **{
        f: getattr(v, f) for f in ServerRead.model_fields if f != "saturated"})


watch_router = APIRouter(prefix="/api/v1/watch", tags=["problems"])


@watch_router.get("", response_model=SignalsRead)
async def watch(db: Db, actor: CurrentActor) -> SignalsRead:
    """For operators and their alerting: what needs an operator now (`trouble`) and the
    figures behind it."""
    s = await signals.read(db, actor=actor)
    return SignalsRead(
        at=s.at, trouble=s.trouble, problems_open=s.problems_open,
        problems_overdue=s.problems_overdue, sms_pending=s.sms_pending,
        sms_oldest_pending_s=s.sms_oldest_pending_s, sms_failed=s.sms_failed,
        silent_count=s.silent_count, offline_to_resolve=s.offline_to_resolve,
        silent_centres=[SilentCentreRead(centre_id=c.centre_id, centre=c.name_en,
                                         district=c.district_en, booked=c.booked,
                                         missed=c.missed) for c in s.silent_centres],
        servers=[_server(v) for v in s.servers],
        servers_silent=[_server(v) for v in s.servers_silent],
        servers_restarted=s.servers_restarted)


class ServerRetired(BaseModel):
    name: str
    retired: bool  # False: it had stopped or been retired already (nothing changed)


@watch_router.post("/servers/{name}/retire", response_model=ServerRetired)
async def retire_server(name: str, db: Db, actor: CurrentActor) -> ServerRetired:
    """An operator marks a server process that stopped reporting as taken out of service (its
    host retired, the deployment scaled down): it is no longer alarmed (`server_silent`) nor
    paged. 409 ServerStillReporting for one still reporting; audited."""
    return ServerRetired(name=name,
                         retired=await service.retire_server(db, actor=actor, name=name))
