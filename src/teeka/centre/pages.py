"""District console pages: centres of a district, a new centre, the sessions of a centre (publish,
change a slot's capacity), sessions from a CSV file, and today per centre.

Thin adapters: every change goes through teeka.centre.service / teeka.centre.csv_import, as the
JSON API does; scoping through teeka.auth.access. Plain forms (POST, then 303 to a page), so
everything works with JavaScript off. A refusal re-renders the form with the typed input and the
translated message; what the service had flushed before refusing is rolled back first.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from teeka import errors
from teeka.auth.access import access_centre_admin, access_district
from teeka.auth.actor import Actor
from teeka.booking.displace import Displaced
from teeka.centre import csv_import, service
from teeka.centre import repository as repo
from teeka.centre.api import MULTIPART_SLACK, read_limited_body
from teeka.centre.schemas import CapacityChange, CentreCreate, SessionCreate, SlotCapacity
from teeka.kit import clock
from teeka.models import District, Share, VaccinationSession
from teeka.models.staff import Role
from teeka.surge import api as surge_api
from teeka.vaccination import offline, resolve
from teeka.web import session as websession
from teeka.web.deps import Db, Form, Lang, StaffPage
from teeka.web.pages import page, see_other, undo

router = APIRouter(include_in_schema=False)

SLOT_ROWS = 4
DEFAULT_SLOTS = ("09:00AM-11:00AM", "11:00AM-01:00PM", "02:00PM-04:00PM", "")
SHARES = tuple(s.value for s in Share if s != Share.OPEN)
NOTICES = ("published", "capacity", "created", "closed")


# ---------------------------------------------------------------- page plumbing

_page, _see_other, _undo = page, see_other, undo


def _invalid(exc: ValidationError) -> errors.DomainError:
    fields = sorted({".".join(str(p) for p in e["loc"]) or "form" for e in exc.errors()})
    return errors.Invalid(detail=", ".join(fields))


_WHOLE = re.compile(r"\d{1,7}")  # any script's decimal digits: "१२" is 12
_DMY = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
_YMD = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def _optional(form: dict[str, str], name: str) -> int | None:
    """A whole number typed in a form (None when left empty)."""
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not _WHOLE.fullmatch(raw):
        raise errors.Invalid(detail="{name} must be a whole number", name=name)
    return int(raw)


def _whole(form: dict[str, str], name: str, default: int) -> int:
    found = _optional(form, name)
    return default if found is None else found


def _number(form: dict[str, str], name: str) -> float:
    raw = form.get(name, "").strip()
    try:
        return float(raw)
    except ValueError:
        raise errors.Invalid(detail="{name} must be a number", name=name) from None


def _day(raw: str) -> date:
    """DD-MM-YYYY as people write it (YYYY-MM-DD from a date picker too)."""
    raw = raw.strip()
    m = _DMY.fullmatch(raw)
    parts = (m[3], m[2], m[1]) if m else None
    if parts is None and (m := _YMD.fullmatch(raw)):
        parts = (m[1], m[2], m[3])
    try:
        if parts is None:
            raise ValueError
        return date(*(int(p) for p in parts))
    except ValueError:
        raise errors.Invalid(detail="date must be like DD-MM-YYYY") from None


def _time(raw: str, name: str) -> time | None:
    raw = raw.strip()
    if not raw:
        return None
    m = _HHMM.fullmatch(raw)
    if not m:
        raise errors.Invalid(detail="{name} must be a time like 15:00", name=name)
    return time(int(m[1]), int(m[2]))


async def _district(db: AsyncSession, actor: Actor, district_id: int | None
                    ) -> tuple[District, list[District]]:
    """The district shown, and the districts to choose from (a state admin's choice; a district
    admin has only their own, and asking for another is refused)."""
    choices: list[District] = []
    if actor.has_role(Role.STATE_ADMIN):
        choices = await repo.districts(db)
        district_id = district_id or (choices[0].id if choices else None)
    else:
        district_id = district_id or actor.district_id
    if district_id is None:
        raise errors.Forbidden()
    access_district(actor, district_id)
    district = await db.get(District, district_id)
    if district is None:
        raise errors.NotFound()
    return district, choices


# ---------------------------------------------------------------- centres of a district

@router.get("/staff/district", response_class=HTMLResponse)
async def district_home(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        district_id: int | None = None) -> Response:
    district, choices = await _district(db, actor, district_id)
    return _page(request, actor, "staff/district.html", lang, district=district,
                 districts=choices, centres=await repo.centres(db, district.id))


async def _centre_form_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                            district: District, form: dict[str, str], error: str | None = None,
                            status_code: int = 200) -> HTMLResponse:
    return _page(request, actor, "staff/centre_new.html", lang, status_code=status_code,
                 district=district, blocks=await repo.blocks(db, district.id),
                 vaccines=await repo.vaccine_codes(db), form=form, error=error)


@router.get("/staff/district/centres/new", response_class=HTMLResponse)
async def centre_new(request: Request, db: Db, lang: Lang, actor: StaffPage,
                     district_id: int | None = None) -> Response:
    district, _ = await _district(db, actor, district_id)
    return await _centre_form_page(request, db, actor, lang, district, {
        "fee_type": "Free", "opens_at": "09:00", "closes_at": "17:00"})


@router.post("/staff/district/centres/new", response_class=HTMLResponse)
async def centre_create(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        form: Form) -> Response:
    district, _ = await _district(db, actor, _optional(form, "district_id"))
    district_id = district.id
    try:
        vaccines = await repo.vaccine_codes(db)
        fees = {code: fee for code in vaccines
                if (fee := _optional(form, f"fee_{code}")) is not None}
        try:
            data = CentreCreate(
                district_id=district_id, block_id=_whole(form, "block_id", 0),
                name_en=form.get("name_en", "").strip(), name_hi=form.get("name_hi", "").strip(),
                address_en=form.get("address_en", "").strip(),
                address_hi=form.get("address_hi", "").strip(),
                pincode=_whole(form, "pincode", 0), lat=_number(form, "lat"),
                long=_number(form, "long"), fee_type=form.get("fee_type", "Free"),
                fees=fees if form.get("fee_type") == "Paid" else {},
                opens_at=_time(form.get("opens_at", ""), "opens_at") or time(9),
                closes_at=_time(form.get("closes_at", ""), "closes_at") or time(17))
        except ValidationError as exc:
            raise _invalid(exc) from None
        centre = await service.create_centre(db, actor=actor, data=data)
    except errors.DomainError as exc:
        await _undo(db, exc)
        district, _ = await _district(db, actor, district_id)  # loaded again after a rollback
        return await _centre_form_page(request, db, actor, lang, district, form,
                                       error=exc.text(lang), status_code=exc.status)
    return _see_other(request, actor, f"/staff/district/centres/{centre.id}?notice=created")


# ---------------------------------------------------------------- sessions of a centre

def _session_defaults() -> dict[str, str]:
    form = {"date": (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y"), "min_age": "18",
            "max_age": "", "walkin_allowance": "0", "share_release_time": ""}
    for i, label in enumerate(DEFAULT_SLOTS):
        form[f"slot_{i}_label"] = label
    return form


async def _centre_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                       centre_id: int, *, form: dict[str, str] | None = None,
                       error: str | None = None, capacity_error: tuple[int, str, str] | None = None,
                       notice: str | None = None, displaced: tuple[int, int] = (0, 0),
                       close_error: tuple[str, str] | None = None,
                       not_told: list[str] | None = None,
                       status_code: int = 200) -> HTMLResponse:
    centre = await access_centre_admin(db, actor, centre_id)
    district = await db.get(District, centre.district_id)
    sessions = await repo.sessions_of_centre(db, centre.id, from_day=clock.today())
    return _page(request, actor, "staff/centre.html", lang, status_code=status_code,
                 centre=centre, district=district, sessions=sessions,
                 release={s.id: s.release_at.astimezone(clock.LOCAL_TZ).strftime("%H:%M")
                          for s in sessions if s.release_at is not None},
                 vaccines=await repo.vaccine_codes(db), form=form or _session_defaults(),
                 slot_rows=SLOT_ROWS, shares=SHARES, error=error, capacity_error=capacity_error,
                 notice=notice if notice in NOTICES else None, displaced=displaced,
                 close_error=close_error, not_told=not_told or [])


async def _told_here(request: Request, db: AsyncSession, actor: Actor, lang: str,
                     centre_id: int, notice: str, done: Displaced) -> HTMLResponse:
    """The page after a capacity cut or a closed session that moved or cancelled people with
    no mobile number: answered at once (not redirected), with every one of them listed, for
    the district to tell through the help desk (the page reads the change in the request's
    own transaction). Sending the form again changes nothing more: the places are already
    where it put them."""
    return await _centre_page(request, db, actor, lang, centre_id, notice=notice,
                              displaced=(done.moved, done.cancelled), not_told=done.not_told)


def _count(raw: str) -> int:
    """A count from the address (after a capacity change): digits only, else 0."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0


@router.get("/staff/district/centres/{centre_id}", response_class=HTMLResponse)
async def centre_page(request: Request, centre_id: int, db: Db, lang: Lang, actor: StaffPage,
                      notice: str | None = None, moved: str = "", cancelled: str = ""
                      ) -> Response:
    return await _centre_page(request, db, actor, lang, centre_id, notice=notice,
                              displaced=(_count(moved), _count(cancelled)))


def _session_create(centre_id: int, form: dict[str, str]) -> SessionCreate:
    slots = []
    for i in range(SLOT_ROWS):
        label = form.get(f"slot_{i}_label", "").strip()
        places = [_whole(form, f"slot_{i}_{kind}", 0)
                  for kind in ("dose1", "dose2", "precaution")]
        if not any(places):
            continue  # a row without places is not a slot
        if not label:
            raise errors.Invalid(detail="slot {number} has places but no time", number=i + 1)
        slots.append((label, places))
    if not slots:
        raise errors.Invalid(detail="give at least one slot with places")
    # Whole numbers only (no sign): shares that add up to 100, as the service checks, are each
    # from 0 to 100.
    shares = {name: pct for name in SHARES if (pct := _optional(form, f"share_{name}")) is not None}
    try:
        return SessionCreate(
            centre_id=centre_id, date=_day(form.get("date", "")),
            vaccine=form.get("vaccine", "")[:40], min_age=_whole(form, "min_age", 18),
            max_age=_optional(form, "max_age"), walkin_allowance=_whole(form, "walkin_allowance", 0),
            slots=[SlotCapacity(label=label, dose1=d1, dose2=d2, precaution=pr)
                   for label, (d1, d2, pr) in slots],
            shares=shares,
            share_release_time=_time(form.get("share_release_time", ""), "share_release_time"))
    except ValidationError as exc:
        raise _invalid(exc) from None


@router.post("/staff/district/centres/{centre_id}/sessions", response_class=HTMLResponse)
async def publish_session(request: Request, centre_id: int, db: Db, lang: Lang,
                          actor: StaffPage, form: Form) -> Response:
    await access_centre_admin(db, actor, centre_id)
    try:
        vs = await service.publish_session(db, actor=actor,
                                           data=_session_create(centre_id, form))
    except errors.DomainError as exc:
        await _undo(db, exc)
        return await _centre_page(request, db, actor, lang, centre_id, form=form,
                                  error=exc.text(lang), status_code=exc.status)
    return _see_other(request, actor,
                      f"/staff/district/centres/{centre_id}?notice=published#session-{vs.id}")


@router.post("/staff/district/slots/{slot_id}/capacity", response_class=HTMLResponse)
async def change_capacity(request: Request, slot_id: int, db: Db, lang: Lang, actor: StaffPage,
                          form: Form) -> Response:
    centre_id = await repo.centre_of_slot(db, slot_id)
    if centre_id is None:
        raise errors.NotFound()
    await access_centre_admin(db, actor, centre_id)
    kind = form.get("dose_kind", "")[:12]
    try:
        try:
            change = CapacityChange(dose_kind=kind, capacity=_whole(form, "capacity", -1),
                                    move_affected=form.get("move_affected") == "1")
        except ValidationError as exc:
            raise _invalid(exc) from None
        done = await service.change_slot_capacity(db, actor=actor, slot_id=slot_id,
                                                  change=change,
                                                  gate=surge_api.move_gate(request, db, actor))
    except errors.DomainError as exc:
        await _undo(db, exc)
        return await _centre_page(request, db, actor, lang, centre_id,
                                  capacity_error=(slot_id, kind, exc.text(lang)),
                                  status_code=exc.status)
    if done.not_told:
        return await _told_here(request, db, actor, lang, centre_id, "capacity", done)
    return _see_other(request, actor,
                      f"/staff/district/centres/{centre_id}?notice=capacity"
                      f"&moved={done.moved}&cancelled={done.cancelled}#slot-{slot_id}")


@router.post("/staff/district/sessions/{session_id}/close", response_class=HTMLResponse)
async def close_session(request: Request, session_id: str, db: Db, lang: Lang,
                        actor: StaffPage, form: Form) -> Response:
    vs = await db.get(VaccinationSession, session_id) if len(session_id) <= 36 else None
    if vs is None:
        raise errors.NotFound()
    await access_centre_admin(db, actor, vs.centre_id)
    centre_id, vid = vs.centre_id, vs.id  # read before a rollback expires them
    try:
        if form.get("confirm") != "1":
            raise errors.Invalid(detail="tick the box to confirm closing the session")
        done = await service.close_session(db, actor=actor, session_id=vid,
                                           gate=surge_api.move_gate(request, db, actor))
    except errors.DomainError as exc:
        await _undo(db, exc)
        return await _centre_page(request, db, actor, lang, centre_id,
                                  close_error=(vid, exc.text(lang)), status_code=exc.status)
    if done.not_told:
        return await _told_here(request, db, actor, lang, centre_id, "closed", done)
    return _see_other(request, actor,
                      f"/staff/district/centres/{centre_id}?notice=closed"
                      f"&moved={done.moved}&cancelled={done.cancelled}#session-{vid}")


# ---------------------------------------------------------------- sessions from a CSV file

def _upload_page(request: Request, actor: Actor, lang: str, status_code: int = 200,
                 **context: Any) -> HTMLResponse:
    return _page(request, actor, "staff/upload.html", lang, status_code=status_code,
                 columns=",".join(csv_import.COLUMNS), example_centre=1,
                 example_day=(clock.today() + timedelta(days=1)).strftime("%d-%m-%Y"), **context)


@router.get("/staff/district/upload", response_class=HTMLResponse)
async def upload_form(request: Request, lang: Lang, actor: StaffPage,
                      sessions: int | None = None, rows: int | None = None) -> Response:
    csv_import.may_import(actor)
    created = (sessions, rows) if sessions is not None and rows is not None else None
    return _upload_page(request, actor, lang, created=created, rejected=None)


async def uploaded_csv(request: Request) -> str | csv_import.CsvRejected:
    """The uploaded file as text, read before the unit of work begins (a slow upload must not
    hold a database connection), after the form's CSRF token was checked. A refusal of the file
    is returned, to be answered after authentication."""
    try:
        body = await read_limited_body(request, csv_import.MAX_BYTES + MULTIPART_SLACK)
    except csv_import.CsvRejected as exc:
        return exc

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    raw: bytes | None = None
    try:
        async with Request(request.scope, replay).form(max_files=1, max_fields=4) as form:
            websession.check_csrf(request, str(form.get("csrf") or ""))
            part = form.get("file")
            if isinstance(part, UploadFile) and part.filename:
                raw = await part.read(csv_import.MAX_BYTES + 1)
    except HTTPException as exc:  # a malformed multipart body
        return csv_import.CsvRejected.single(csv_import.FILE, "BadUpload",
                                             f"the upload could not be read: {exc.detail}")
    if raw is None:
        return csv_import.CsvRejected.single(csv_import.FILE, "NoFile", "choose a CSV file")
    try:
        return csv_import.decode_upload(raw)
    except csv_import.CsvRejected as exc:
        return exc


@router.post("/staff/district/upload", response_class=HTMLResponse)
async def upload_sessions(
        request: Request, upload: Annotated[str | csv_import.CsvRejected, Depends(uploaded_csv)],
        db: Db, lang: Lang, actor: StaffPage) -> Response:
    """The file is read (and its form's CSRF token checked) before the unit of work begins."""
    csv_import.may_import(actor)
    if isinstance(upload, str):
        try:
            report = await csv_import.import_sessions_csv(db, actor=actor, text=upload)
        except csv_import.CsvRejected as exc:
            await db.rollback()  # answered here, not raised: undo what was flushed
            upload = exc
        else:
            return _see_other(request, actor, f"/staff/district/upload?sessions="
                                              f"{report.sessions_created}&rows={report.rows}")
    return _upload_page(request, actor, lang, status_code=upload.status, created=None,
                        rejected={"message": upload.text(lang), "rows": upload.report.as_rows(),
                                  "count": len(upload.report.errors)})


# ---------------------------------------------------------------- today per centre

@router.get("/staff/district/today", response_class=HTMLResponse)
async def today(request: Request, db: Db, lang: Lang, actor: StaffPage,
                district_id: int | None = None) -> Response:
    district, choices = await _district(db, actor, district_id)
    centres = await repo.centres(db, district.id)
    now = clock.now()
    counts = await repo.today_at_centres(db, [c.id for c in centres], day=clock.today(), now=now)
    total = repo.TodayCounts()
    for c in counts.values():
        total.add(c)
    return _page(request, actor, "staff/district_today.html", lang, district=district,
                 districts=choices, centres=centres, counts=counts, total=total,
                 day=clock.today().strftime("%d-%m-%Y"),
                 as_of=now.astimezone(clock.LOCAL_TZ).strftime("%H:%M"))


# ---------------------------------------------------------------- doses given offline to resolve

async def _offline_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                        district_id: int | None, *, notice: str = "",
                        error: tuple[int, str] | None = None,
                        notes: dict[int, str] | None = None,
                        status_code: int = 200) -> HTMLResponse:
    district, choices = await _district(db, actor, district_id)
    kept = await resolve.district_list(db, actor=actor, district_id=district.id)
    return _page(request, actor, "staff/district_offline.html", lang, status_code=status_code,
                 district=district, districts=choices, kept=kept, notice=notice, error=error,
                 notes=notes or {}, recordable=resolve.RECORDABLE,
                 reasons={k.id: offline.reason_text(k.reason, lang) for k in kept},
                 local=lambda at: at.astimezone(clock.LOCAL_TZ).strftime("%H:%M"))


@router.get("/staff/district/offline", response_class=HTMLResponse)
async def offline_doses(request: Request, db: Db, lang: Lang, actor: StaffPage,
                        district_id: int | None = None, notice: str = "") -> Response:
    """Doses given offline at the district's centres that no upload could record: record one
    whose refusal the district may overrule, or dismiss one, each with a note."""
    return await _offline_page(request, db, actor, lang, district_id,
                               notice=notice if notice in ("recorded", "dismissed") else "")


@router.post("/staff/district/offline/{offline_id}/{action}", response_class=HTMLResponse)
async def resolve_offline_dose(request: Request, offline_id: int, action: str, db: Db,
                               lang: Lang, actor: StaffPage, form: Form) -> Response:
    if action not in ("record", "dismiss") or not 1 <= offline_id < 2**31:
        raise errors.NotFound()
    note = form.get("note", "")[:400]
    district_id = form.get("district_id", "")
    # ASCII digits only: str.isdigit() is true of '²' and '①', which int() refuses (a 500)
    district = (int(district_id) if district_id.isascii() and district_id.isdigit()
                and len(district_id) < 10 else None)
    try:
        if action == "record":
            await resolve.record(db, actor=actor, offline_id=offline_id, note=note)
        else:
            await resolve.dismiss(db, actor=actor, offline_id=offline_id, note=note)
    except errors.DomainError as exc:
        await _undo(db, exc)
        return await _offline_page(request, db, actor, lang, district,
                                   error=(offline_id, exc.text(lang)),
                                   notes={offline_id: note}, status_code=exc.status)
    done = "recorded" if action == "record" else "dismissed"
    query = f"?notice={done}" + (f"&district_id={district}" if district else "")
    return _see_other(request, actor, f"/staff/district/offline{query}")
