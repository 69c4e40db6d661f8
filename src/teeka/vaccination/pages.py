"""Vaccinator pages: the day's list at the centre; find a person by reference id, mobile number or
slip (confirmation number); check the secret code and record the dose with its batch; walk-ins
against the session's walk-in allowance.

Thin adapters over teeka.vaccination.service (record_dose, record_walkin,
find_appointments_today), as the JSON API; scoping through teeka.auth.access. A wrong or locked
secret code, or a person not eligible, is answered with an unmistakable full-width alert
(role="alert"), never a 500; a repeated submission shows the record already made.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.access import access_centre_work
from teeka.auth.actor import Actor
from teeka.centre import repository as centre_repo
from teeka.centre.csv_import import CsvRejected
from teeka.centre.pages import uploaded_csv
from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import Centre
from teeka.vaccination import offline, rules, service
from teeka.vaccination import repository as repo
from teeka.vaccination.schemas import CentreAppointmentRead
from teeka.web.deps import Db, Form, Lang, StaffPage
from teeka.web.pages import page, see_other, undo

router = APIRouter(include_in_schema=False)

_CONFIRMATION = re.compile(r"[0-9A-Z]{6,12}")
# Refusals about the secret code: the person may not be who the slip says.
CODE_ERRORS = (errors.SecretCodeWrong, errors.SecretCodeLocked)
# Refusals a typing mistake explains: shown as a plain form error, the form kept.
INPUT_ERRORS = (errors.Invalid,)


_page, _see_other, _undo = page, see_other, undo


def _alert(exc: errors.DomainError, lang: str) -> dict[str, str]:
    kind = ("code" if isinstance(exc, CODE_ERRORS)
            else "input" if isinstance(exc, INPUT_ERRORS) else "stop")
    return {"kind": kind, "code": exc.code, "message": exc.text(lang),
            "locked": "yes" if isinstance(exc, errors.SecretCodeLocked) else ""}


async def _centre(db: AsyncSession, actor: Actor) -> Centre:
    """The vaccinator's own centre; anyone else is refused."""
    if actor.centre_id is None:
        raise errors.Forbidden()
    access_centre_work(actor, actor.centre_id)
    centre = await db.get(Centre, actor.centre_id)
    if centre is None:
        raise errors.NotFound()
    return centre


# ---------------------------------------------------------------- the day's list, finding people

@router.get("/staff/centre", response_class=HTMLResponse)
async def today(request: Request, db: Db, lang: Lang, actor: StaffPage, ref: str = "",
                mobile: str = "", slip: str = "") -> Response:
    centre = await _centre(db, actor)
    day = clock.today()
    ref, mobile, slip = ref.strip()[:20], mobile.strip()[:20], slip.strip().upper()[:20]
    found: list[CentreAppointmentRead] | None = None
    error = None
    status_code = 200
    try:
        if ref:
            found = await service.find_appointments_today(db, actor=actor, reference_id=ref)
        elif mobile:
            found = await service.find_appointments_today(db, actor=actor, mobile=mobile)
        elif slip:
            if not _CONFIRMATION.fullmatch(slip):
                raise errors.Invalid(detail="the confirmation number has letters and digits only")
            found = await repo.appointments_today(db, centre_id=centre.id, day=day,
                                                  confirmation_no=slip)
    except errors.DomainError as exc:
        error, status_code = exc.text(lang), exc.status
    counts = (await centre_repo.today_at_centres(db, [centre.id], day=day,
                                                 now=clock.now()))[centre.id]
    return _page(request, actor, "staff/centre_today.html", lang, status_code=status_code,
                 centre=centre, day=day.strftime("%d-%m-%Y"), counts=counts,
                 sessions=await repo.sessions_today(db, centre_id=centre.id, day=day),
                 appointments=await repo.appointments_today(db, centre_id=centre.id, day=day),
                 found=found, searched={"ref": ref, "mobile": mobile, "slip": slip},
                 error=error)


# ---------------------------------------------------------------- one appointment: code, dose

async def _appointment(db: AsyncSession, actor: Actor, appointment_id: str
                       ) -> CentreAppointmentRead:
    found = await repo.appointment(db, appointment_id[:36])
    if found is None:
        raise errors.NotFound()
    appointment, centre_id = found
    access_centre_work(actor, centre_id)
    return appointment


def _vaccinate_page(request: Request, actor: Actor, lang: str, appointment: CentreAppointmentRead,
                    *, form: dict[str, str] | None = None, alert: dict[str, str] | None = None,
                    status_code: int = 200) -> HTMLResponse:
    return _page(request, actor, "staff/vaccinate.html", lang, status_code=status_code,
                 a=appointment, form=form or {"batch": ""}, alert=alert,
                 today=appointment.date == clock.today(),
                 date=appointment.date.strftime("%d-%m-%Y"))


@router.get("/staff/centre/appointments/{appointment_id}", response_class=HTMLResponse)
async def appointment_page(request: Request, appointment_id: str, db: Db, lang: Lang,
                           actor: StaffPage) -> Response:
    return _vaccinate_page(request, actor, lang, await _appointment(db, actor, appointment_id))


@router.post("/staff/centre/appointments/{appointment_id}/dose", response_class=HTMLResponse)
async def record_dose(request: Request, appointment_id: str, db: Db, lang: Lang,
                      actor: StaffPage, form: Form) -> Response:
    appointment = await _appointment(db, actor, appointment_id)
    batch = form.get("batch", "")[:60]
    try:
        outcome = await service.record_dose(db, actor=actor,
                                            appointment_id=appointment.appointment_id,
                                            secret_code=form.get("secret_code", "").strip()[:8],
                                            batch=batch)
    except errors.DomainError as exc:
        await _undo(db, exc)
        # The secret code is never echoed back; the batch typed is kept.
        return _vaccinate_page(request, actor, lang, appointment, form={"batch": batch},
                               alert=_alert(exc, lang), status_code=exc.status)
    repeat = "?repeat=1" if outcome.already_recorded else ""
    return _see_other(request, actor, f"/staff/centre/doses/{outcome.record.id}{repeat}")


# ---------------------------------------------------------------- walk-ins

async def _walkin_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                       centre: Centre, *, form: dict[str, str],
                       alert: dict[str, str] | None = None,
                       status_code: int = 200) -> HTMLResponse:
    return _page(request, actor, "staff/walkin.html", lang, status_code=status_code,
                 centre=centre,
                 sessions=await repo.sessions_today(db, centre_id=centre.id, day=clock.today()),
                 form=form, alert=alert)


@router.get("/staff/centre/walkin", response_class=HTMLResponse)
async def walkin_form(request: Request, db: Db, lang: Lang, actor: StaffPage,
                      ref: str = "") -> Response:
    centre = await _centre(db, actor)
    return await _walkin_page(request, db, actor, lang, centre,
                              form={"reference_id": ref.strip()[:14], "batch": "",
                                    "session_id": ""})


@router.post("/staff/centre/walkin", response_class=HTMLResponse)
async def record_walkin(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        form: Form) -> Response:
    centre_id = (await _centre(db, actor)).id
    typed = {"reference_id": form.get("reference_id", "").strip()[:14],
             "batch": form.get("batch", "")[:60], "session_id": form.get("session_id", "")[:36]}
    try:
        outcome = await service.record_walkin(db, actor=actor, session_id=typed["session_id"],
                                              reference_id=typed["reference_id"],
                                              secret_code=form.get("secret_code", "").strip()[:8],
                                              batch=typed["batch"])
    except errors.DomainError as exc:
        await _undo(db, exc)
        centre = await db.get(Centre, centre_id)  # loaded again after a rollback
        assert centre is not None
        return await _walkin_page(request, db, actor, lang, centre, form=typed,
                                  alert=_alert(exc, lang), status_code=exc.status)
    repeat = "?repeat=1" if outcome.already_recorded else ""
    return _see_other(request, actor, f"/staff/centre/doses/{outcome.record.id}{repeat}")


# ---------------------------------------------------------------- a dose recorded

@router.get("/staff/centre/doses/{record_id}", response_class=HTMLResponse)
async def dose_page(request: Request, record_id: int, db: Db, lang: Lang, actor: StaffPage,
                    repeat: int = 0) -> Response:
    record = await repo.dose_record(db, record_id)
    if record is None:
        raise errors.NotFound()
    access_centre_work(actor, record.centre_id)
    return _page(request, actor, "staff/dose_done.html", lang, r=record, repeat=bool(repeat),
                 at=record.administered_at.astimezone(clock.LOCAL_TZ).strftime("%d-%m-%Y %H:%M"))


# ---------------------------------------------------------------- offline: the day sheet

def _sheet_day(raw: str) -> date:
    """The day of a sheet from the address (YYYY-MM-DD); today when not given."""
    if not raw:
        return clock.today()
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise errors.Invalid(detail="the date must be like 2026-11-29 or 29-11-2026")


def _sheet_days() -> list[date]:
    today = clock.today()
    return [today + timedelta(days=1 - i) for i in range(rules.SYNC_DAYS + 2)]


@router.get("/staff/centre/day-sheet", response_class=HTMLResponse)
async def day_sheet(request: Request, db: Db, lang: Lang, actor: StaffPage,
                    date: str = "") -> Response:
    """The day's appointments to print or save before the network goes: the vaccinator fills
    in the code, batch and time by hand and uploads them later (/staff/centre/sync)."""
    centre = await _centre(db, actor)
    try:
        day = _sheet_day(date)
        rows = await offline.day_sheet(db, actor=actor, day=day)
    except errors.DomainError as exc:
        return _page(request, actor, "staff/day_sheet.html", lang, status_code=exc.status,
                     centre=centre, day=None, rows=[], days=_sheet_days(),
                     error=exc.text(lang))
    return _page(request, actor, "staff/day_sheet.html", lang, centre=centre, day=day,
                 rows=rows, days=_sheet_days(), error=None,
                 walkins=await offline.walkin_sessions(db, actor=actor, day=day),
                 walkin_lines=offline.WALKIN_LINES,
                 generated=clock.now().astimezone(clock.LOCAL_TZ).strftime("%d-%m-%Y %H:%M"))


@router.get("/staff/centre/day-sheet.csv")
async def day_sheet_csv(db: Db, actor: StaffPage, date: str = "") -> Response:
    """The day sheet as a CSV file for a spreadsheet (UTF-8 with a BOM, so that names in Hindi
    open as they are); never kept by a cache."""
    day = _sheet_day(date)
    rows = await offline.day_sheet(db, actor=actor, day=day)
    walkins = await offline.walkin_sessions(db, actor=actor, day=day)
    name = f"day-sheet-{offline.own_centre(actor)}-{day.isoformat()}.csv"
    return Response("\ufeff" + offline.sheet_csv(rows, walkins, day),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


async def _sync_page(request: Request, db: AsyncSession, actor: Actor, lang: str, *,
                     status_code: int = 200, **context: object) -> HTMLResponse:
    centre = await _centre(db, actor)
    context.setdefault("report", None)
    context.setdefault("problems", [])
    context.setdefault("error", None)
    context.setdefault("error_details", None)
    return _page(request, actor, "staff/sync.html", lang, status_code=status_code,
                 centre=centre, to_resolve=await offline.to_resolve(db, actor=actor),
                 reason=lambda code: offline.reason_text(code, lang), **context)


@router.get("/staff/centre/sync", response_class=HTMLResponse)
async def sync_form(request: Request, db: Db, lang: Lang, actor: StaffPage) -> Response:
    return await _sync_page(request, db, actor, lang)


@router.post("/staff/centre/sync", response_class=HTMLResponse)
async def sync_upload(request: Request,
                      upload: Annotated[str | CsvRejected, Depends(uploaded_csv)],
                      db: Db, lang: Lang, actor: StaffPage) -> Response:
    """A filled day sheet: every dose on it recorded once, or refused and kept to resolve; the
    answer lists each line's outcome. Sending the same file again records nothing twice."""
    offline.own_centre(actor)
    if isinstance(upload, CsvRejected):
        details = "; ".join(e.detail for errs in upload.report.errors.values() for e in errs)
        return await _sync_page(request, db, actor, lang, status_code=upload.status,
                                error=upload.text(lang), error_details=details)
    try:
        sheet = offline.read_sheet(upload)
    except errors.DomainError as exc:
        return await _sync_page(request, db, actor, lang, status_code=exc.status,
                                error=exc.text(lang))
    report = await offline.sync(db, actor=actor, rows=sheet.rows, lines=sheet.lines, lang=lang)
    problems = [(line, translate(lang, msgid, **params)) for line, msgid, params in
                sheet.problems]
    return await _sync_page(request, db, actor, lang, report=report, problems=problems)
