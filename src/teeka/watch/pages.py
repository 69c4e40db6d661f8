"""Staff pages for problems: the list (what is open, the most urgent and oldest first, overdue
ones marked), raising one, and one problem with its history and the moves the reader may
make. Thin adapters over teeka.watch.service; every text in Hindi and English; no JavaScript.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.kit import clock
from teeka.models import Centre, District
from teeka.models.staff import Role
from teeka.models.watch import ProblemStatus
from teeka.watch import rules, service, signals
from teeka.web.deps import Db, Form, Lang, StaffPage
from teeka.web.pages import page, see_other, undo

router = APIRouter(include_in_schema=False)

_NOTICES = {"raised", "noted", "acknowledged", "resolved", "open"}


def local(at: Any) -> str:
    return at.astimezone(clock.LOCAL_TZ).strftime("%d-%m-%Y %H:%M") if at else ""


def _int(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else None


@router.get("/staff/problems", response_class=HTMLResponse)
async def problems(request: Request, db: Db, lang: Lang, actor: StaffPage,
                   show: str = "open") -> Response:
    show = show if show in ("open", "resolved", "all") else "open"
    items = await service.list_problems(db, actor=actor, show=show)
    return page(request, actor, "staff/problems.html", lang, items=items, show=show,
                local=local, operator=rules.is_operator(actor),
                overdue=sum(1 for p in items if p.overdue),
                truncated=len(items) >= service.LIST_LIMIT)


async def _choices(db: AsyncSession, actor: Actor) -> dict[str, Any]:
    """The districts (an operator) and centres the form offers."""
    districts: list[District] = []
    if rules.is_operator(actor):
        districts = list((await db.execute(select(District).order_by(District.name_en)))
                         .scalars())
        centres: list[Centre] = []
    elif actor.has_role(Role.VACCINATOR):
        centres = []
    else:
        centres = list((await db.execute(
            select(Centre).where(Centre.district_id == actor.district_id)
            .order_by(Centre.name_en).limit(2000))).scalars())
    return {"districts": districts, "centres": centres}


async def _form_page(request: Request, db: AsyncSession, actor: Actor, lang: str, *,
                     form: dict[str, str], error: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
    return page(request, actor, "staff/problem_new.html", lang, status_code=status_code,
                form=form, error=error, **await _choices(db, actor))


@router.get("/staff/problems/new", response_class=HTMLResponse)
async def new_problem(request: Request, db: Db, lang: Lang, actor: StaffPage) -> Response:
    if not rules.may_raise(actor):
        raise errors.Forbidden()
    return await _form_page(request, db, actor, lang, form={
        "severity": "high", "title": "", "details": "", "district_id": "", "centre_id": ""})


@router.post("/staff/problems/new", response_class=HTMLResponse)
async def raise_problem(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        form: Form) -> Response:
    typed = {k: form.get(k, "")[:limit] for k, limit in (
        ("severity", 10), ("title", 400), ("details", 8000), ("district_id", 12),
        ("centre_id", 12))}
    try:
        view = await service.raise_problem(
            db, actor=actor, district_id=_int(typed["district_id"]),
            centre_id=_int(typed["centre_id"]), title=typed["title"],
            details=typed["details"], severity=typed["severity"])
    except errors.DomainError as exc:
        if exc.status == 403:
            raise
        await undo(db, exc)
        return await _form_page(request, db, actor, lang, form=typed, error=exc.text(lang),
                                status_code=exc.status)
    return see_other(request, actor, f"/staff/problems/{view.id}?notice=raised")


async def _problem_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                        problem_id: int, *, notice: str | None = None,
                        error: str | None = None, text: str = "",
                        status_code: int = 200) -> HTMLResponse:
    view, notes = await service.get_problem(db, actor=actor, problem_id=problem_id)
    moves = [to for to in (ProblemStatus.ACKNOWLEDGED, ProblemStatus.RESOLVED, ProblemStatus.OPEN)
             if _may(actor, view.status, to)]
    return page(request, actor, "staff/problem.html", lang, status_code=status_code, p=view,
                notes=notes, moves=[m.value for m in moves], local=local,
                notice=notice if notice in _NOTICES else None, error=error, text=text)


def _may(actor: Actor, status: str, to: str) -> bool:
    try:
        rules.check_move(actor, status, to)
    except errors.DomainError:
        return False
    return True


@router.get("/staff/problems/{problem_id}", response_class=HTMLResponse)
async def problem(request: Request, problem_id: int, db: Db, lang: Lang, actor: StaffPage,
                  notice: str | None = None) -> Response:
    return await _problem_page(request, db, actor, lang, problem_id, notice=notice)


@router.post("/staff/problems/{problem_id}/notes", response_class=HTMLResponse)
async def add_note(request: Request, problem_id: int, db: Db, lang: Lang, actor: StaffPage,
                   form: Form) -> Response:
    text, to = form.get("text", "")[:8000], form.get("status", "")[:15] or None
    try:
        seen = datetime.fromisoformat(form.get("seen", "")[:40])
    except ValueError:
        seen = None
    try:
        await service.add_note(db, actor=actor, problem_id=problem_id, text=text, status=to,
                               seen=seen)
    except errors.DomainError as exc:
        if exc.status in (403, 404):
            raise
        await undo(db, exc)
        return await _problem_page(request, db, actor, lang, problem_id, error=exc.text(lang),
                                   text=text, status_code=exc.status)
    return see_other(request, actor,
                     f"/staff/problems/{problem_id}?notice={to or 'noted'}#history")


@router.get("/staff/watch", response_class=HTMLResponse)
async def watch(request: Request, db: Db, lang: Lang, actor: StaffPage,
                auto: int = 0, notice: str | None = None) -> Response:
    """The operators' view: what needs them now. Refreshes itself every minute when the
    operator asks for it (`auto=1`; a page that reloads by itself is not the default)."""
    return await _watch_page(request, db, actor, lang, auto=auto == 1,
                             notice=notice if notice == "retired" else None)


async def _watch_page(request: Request, db: AsyncSession, actor: Actor, lang: str, *,
                      auto: bool = False, notice: str | None = None, error: str | None = None,
                      status_code: int = 200) -> Response:
    found = await signals.read(db, actor=actor)
    return page(request, actor, "staff/watch.html", lang, s=found, local=local, auto=auto,
                late_s=int(signals.SMS_LATE.total_seconds()), notice=notice, error=error,
                status_code=status_code)


@router.post("/staff/watch/servers/retire", response_class=HTMLResponse)
async def retire_server(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        form: Form) -> Response:
    """A silent server process marked as taken out of service (teeka.watch.service)."""
    try:
        await service.retire_server(db, actor=actor, name=form.get("name", "")[:200])
    except errors.DomainError as exc:
        if exc.status == 403:
            raise
        await undo(db, exc)
        return await _watch_page(request, db, actor, lang, error=exc.text(lang),
                                 status_code=exc.status)
    return see_other(request, actor, "/staff/watch?notice=retired#servers")
