"""HTML pages of booking: the home search and the printable slips."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from teeka import errors
from teeka.booking.repository import find_sessions
from teeka.config import Settings
from teeka.kit import clock, signing
from teeka.kit.phone import mask_id_number
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    Booking,
    Centre,
    District,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)
from teeka.web.deps import AppSettings, Db, Lang
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)


def slip_signature(settings: Settings, kind: str, key: str) -> str:
    """Slips are capability links: the signature proves the link was issued by us."""
    return signing.keyed_hash(settings.resolved_secret(), f"slip:{kind}", key)[:24]


def check_signature(settings: Settings, kind: str, key: str, sig: str) -> None:
    if not signing.constant_time_equal(slip_signature(settings, kind, key), sig or ""):
        raise errors.NotFound()


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, db: Db, lang: Lang, district_id: int | None = None,
               day: Annotated[date | None, Query(alias="date")] = None) -> HTMLResponse:
    districts = (await db.execute(select(District).order_by(District.name_en))).scalars().all()
    chosen = district_id or (districts[0].id if districts else None)
    day = day or clock.today()
    sessions = await find_sessions(db, district_id=chosen, day=day) if chosen else []
    return render(request, "home.html", lang, districts=districts, district_id=chosen, day=day,
                  sessions=sessions)


async def slip_items(db: Db, where: object) -> list[dict[str, object]]:
    rows = await db.execute(
        select(Appointment, Beneficiary, VaccinationSession, SessionSlot, Centre, Vaccine)
        .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
        .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
        .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(where).order_by(Appointment.created_at))  # type: ignore[arg-type]
    return [{"name": p.name, "reference_id": p.reference_id, "secret_code": p.secret_code,
             "centre_en": c.name_en, "centre_hi": c.name_hi,
             "date": vs.date.strftime("%d-%m-%Y"), "slot": s.label, "dose": a.dose_number,
             "vaccine": v.code, "status": a.status} for a, p, vs, s, c, v in rows]


@router.get("/slip/{confirmation_no}", response_class=HTMLResponse)
async def slip(request: Request, confirmation_no: str, db: Db, lang: Lang,
               settings: AppSettings, sig: str = "") -> HTMLResponse:
    check_signature(settings, "booking", confirmation_no, sig)
    booking = (await db.execute(select(Booking).where(
        Booking.confirmation_no == confirmation_no))).scalar_one_or_none()
    if booking is None:
        raise errors.NotFound()
    items = await slip_items(db, Appointment.booking_id == booking.id)
    return render(request, "slip.html", lang, confirmation_no=confirmation_no, items=items)


@router.get("/slip/person/{reference_id}", response_class=HTMLResponse)
async def person_slip(request: Request, reference_id: str, db: Db, lang: Lang,
                      settings: AppSettings, sig: str = "") -> HTMLResponse:
    check_signature(settings, "person", reference_id, sig)
    person = (await db.execute(select(Beneficiary).where(
        Beneficiary.reference_id == reference_id))).scalar_one_or_none()
    if person is None:
        raise errors.NotFound()
    items = await slip_items(db, (Appointment.beneficiary_id == person.id)
                              & (Appointment.status == AppointmentStatus.BOOKED))
    return render(request, "person_slip.html", lang, person=person,
                  masked_id=mask_id_number(person.id_last4),
                  appointment=items[0] if items else None)
