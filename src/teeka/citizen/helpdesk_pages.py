"""Help-desk pages: register a person who has no mobile phone, book a session of the district for
them, and hand over a printable slip (reference id, secret code, appointment).

Thin adapters over the services the JSON API uses: teeka.citizen.service.register_beneficiary
(with the help-desk actor: the person has no account) and teeka.booking.service.book_appointment
(its Idempotency-Key is made when the booking form is shown, so a double submission books once).
Plain forms, POST then 303: they work with JavaScript off.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.access import access_beneficiary, may_assist
from teeka.auth.actor import Actor
from teeka.booking import repository as booking_repo
from teeka.booking import service as booking
from teeka.booking.pages import slip_items, slip_signature
from teeka.centre import repository as centre_repo
from teeka.citizen import rules, service
from teeka.config import Settings
from teeka.kit import clock
from teeka.kit.phone import mask_id_number
from teeka.models import Appointment, AppointmentStatus, Beneficiary, District
from teeka.surge import api as surge_api
from teeka.web.deps import AppSettings, Db, Form, Lang, StaffPage
from teeka.web.pages import page, see_other, undo

router = APIRouter(include_in_schema=False)

DAYS_SHOWN = 7
_REFERENCE_ID = re.compile(r"[0-9]{14}")
_ID = re.compile(r"[0-9]{1,9}")
_DMY = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
_YMD = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


_page, _see_other, _undo = page, see_other, undo


def _assisting(actor: Actor) -> None:
    if not may_assist(actor):
        raise errors.Forbidden()


def _day(raw: str | None) -> date:
    """DD-MM-YYYY (or YYYY-MM-DD); today when empty or not a date."""
    raw = (raw or "").strip()
    m = _DMY.fullmatch(raw)
    parts = (m[3], m[2], m[1]) if m else None
    if parts is None and (m := _YMD.fullmatch(raw)):
        parts = (m[1], m[2], m[3])
    try:
        return max(date(*(int(p) for p in parts)), clock.today()) if parts else clock.today()
    except ValueError:
        return clock.today()


# ---------------------------------------------------------------- register, find

def _blank_person() -> dict[str, str]:
    return {"name": "", "birth_year": "", "gender": "", "id_type": "aadhaar", "id_number": "",
            "priority_group": "none"}


def _desk(request: Request, actor: Actor, lang: str, *, form: dict[str, str] | None = None,
          error: str | None = None, find_error: str | None = None, ref: str = "",
          find_id_error: str | None = None, find_id_type: str = "aadhaar",
          status_code: int = 200) -> HTMLResponse:
    return _page(request, actor, "staff/helpdesk.html", lang, status_code=status_code,
                 form=form or _blank_person(), error=error, find_error=find_error, ref=ref,
                 find_id_error=find_id_error, find_id_type=find_id_type,
                 genders=rules.GENDERS, id_types=rules.ID_TYPES,
                 priority_groups=rules.PRIORITY_GROUPS)


@router.get("/staff/helpdesk", response_class=HTMLResponse)
async def desk(request: Request, lang: Lang, actor: StaffPage) -> Response:
    _assisting(actor)
    return _desk(request, actor, lang)


@router.get("/staff/helpdesk/find", response_class=HTMLResponse)
async def find(request: Request, db: Db, lang: Lang, actor: StaffPage, ref: str = "") -> Response:
    _assisting(actor)
    ref = ref.strip()[:20]
    try:
        if not _REFERENCE_ID.fullmatch(ref):
            raise errors.Invalid(detail="reference id must have 14 digits")
        person = await access_beneficiary(db, actor, ref)
    except errors.DomainError as exc:
        return _desk(request, actor, lang, find_error=exc.text(lang), ref=ref,
                     status_code=exc.status)
    return _see_other(request, actor, f"/staff/helpdesk/people/{person.reference_id}")


@router.post("/staff/helpdesk/find-by-id", response_class=HTMLResponse)
async def find_by_id(request: Request, db: Db, lang: Lang, actor: StaffPage, form: Form,
                     settings: AppSettings) -> Response:
    """By photo ID, for a person who lost their slip: a form sent by POST, so that the
    document's number is never in an address (logs, history)."""
    _assisting(actor)
    id_type = form.get("id_type", "")[:20]
    try:
        person = await service.find_assisted_by_id(db, settings, actor=actor, id_type=id_type,
                                                   id_number=form.get("id_number", "")[:40])
    except errors.DomainError as exc:
        if exc.code != "NotFound":  # a lookup that found nobody keeps its audit entry
            await _undo(db, exc)
        return _desk(request, actor, lang, find_id_error=exc.text(lang),
                     find_id_type=id_type if id_type in rules.ID_TYPES else "aadhaar",
                     status_code=exc.status)
    return _see_other(request, actor, f"/staff/helpdesk/people/{person.reference_id}")


@router.post("/staff/helpdesk/register", response_class=HTMLResponse)
async def register(request: Request, db: Db, lang: Lang, actor: StaffPage, form: Form,
                   settings: AppSettings) -> Response:
    _assisting(actor)
    typed = {k: form.get(k, "")[:200] for k in _blank_person()}
    try:
        year = typed["birth_year"].strip()
        if not re.fullmatch(r"\d{4}", year):
            raise errors.Invalid(detail="birth year must have 4 digits")
        person = await service.register_beneficiary(
            db, settings, actor=actor, name=typed["name"], birth_year=int(year),
            gender=typed["gender"], id_type=typed["id_type"], id_number=typed["id_number"][:40],
            priority_group=typed["priority_group"] or "none")
    except errors.DomainError as exc:
        await _undo(db, exc)
        return _desk(request, actor, lang, form=typed, error=exc.text(lang),
                     status_code=exc.status)
    return _see_other(request, actor,
                      f"/staff/helpdesk/people/{person.reference_id}?notice=registered")


# ---------------------------------------------------------------- one person

def _slip_url(settings: Settings, ref: str) -> str:
    return f"/slip/person/{ref}?sig={slip_signature(settings, 'person', ref)}"


@router.get("/staff/helpdesk/people/{ref}", response_class=HTMLResponse)
async def person_page(request: Request, ref: str, db: Db, lang: Lang, actor: StaffPage,
                      settings: AppSettings, notice: str = "") -> Response:
    _assisting(actor)
    person = await access_beneficiary(db, actor, ref)
    items = await slip_items(db, (Appointment.beneficiary_id == person.id)
                             & (Appointment.status == AppointmentStatus.BOOKED))
    return _page(request, actor, "staff/helpdesk_person.html", lang, person=person,
                 masked_id=mask_id_number(person.id_last4),
                 appointment=items[0] if items else None, slip_url=_slip_url(settings, ref),
                 notice=notice if notice in ("registered", "booked") else None)


# ---------------------------------------------------------------- book for them

async def _district_of(db: AsyncSession, actor: Actor, district_id: int | None
                       ) -> tuple[District, list[District]]:
    """The help desk's own district; staff without one (the state) choose."""
    choices: list[District] = []
    if actor.district_id is None:
        choices = await centre_repo.districts(db)
        district_id = district_id or (choices[0].id if choices else None)
    else:
        district_id = actor.district_id
    district = await db.get(District, district_id) if district_id is not None else None
    if district is None:
        raise errors.NotFound()
    return district, choices


async def _booking_page(request: Request, db: AsyncSession, actor: Actor, lang: str,
                        person: Beneficiary, *, day: date, district_id: int | None,
                        chosen: str = "", error: str | None = None,
                        status_code: int = 200) -> HTMLResponse:
    district, choices = await _district_of(db, actor, district_id)
    sessions = await booking_repo.find_sessions(db, district_id=district.id, day=day,
                                                days=DAYS_SHOWN)
    return _page(request, actor, "staff/helpdesk_book.html", lang, status_code=status_code,
                 person=person, district=district, districts=choices, sessions=sessions,
                 day=day.strftime("%d-%m-%Y"), chosen=chosen, error=error,
                 key=secrets.token_urlsafe(24))


@router.get("/staff/helpdesk/people/{ref}/book", response_class=HTMLResponse)
async def booking_form(request: Request, ref: str, db: Db, lang: Lang, actor: StaffPage,
                       date: str = "", district_id: int | None = None) -> Response:
    _assisting(actor)
    person = await access_beneficiary(db, actor, ref)
    return await _booking_page(request, db, actor, lang, person, day=_day(date),
                               district_id=district_id)


@router.post("/staff/helpdesk/people/{ref}/book", response_class=HTMLResponse)
async def book(request: Request, ref: str, db: Db, lang: Lang, actor: StaffPage,
               form: Form) -> Response:
    _assisting(actor)
    await access_beneficiary(db, actor, ref)
    chosen = form.get("choice", "")[:80]
    session_id, _, slot = chosen.partition("|")
    try:
        if not session_id or not slot:
            raise errors.Invalid(detail="choose a session and a slot")
        passed = await surge_api.gate(request, db, actor, session_id[:36], people=[ref])
        await booking.book_appointment(db, actor=actor, session_id=session_id, slot=slot,
                                       beneficiary_refs=[ref], dose=None,
                                       idempotency_key=form.get("key", "")[:100],
                                       may_take=passed.may_take)
    except errors.DomainError as exc:
        await _undo(db, exc)
        person = await access_beneficiary(db, actor, ref)  # loaded again after the rollback
        district_id = form.get("district_id", "")
        return await _booking_page(request, db, actor, lang, person, day=_day(form.get("date")),
                                   district_id=int(district_id) if _ID.fullmatch(district_id)
                                   else None,
                                   chosen=chosen, error=exc.text(lang), status_code=exc.status)
    return _see_other(request, actor, f"/staff/helpdesk/people/{ref}?notice=booked")

