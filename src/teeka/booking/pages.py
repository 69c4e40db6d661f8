"""HTML pages of booking: the home search (seven days of free places per centre) and the
printable slips. The search helpers are shared with the citizen's reschedule page."""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.booking.rules import band_label
from teeka.config import Settings
from teeka.db import busy_on_database_trouble, session_scope
from teeka.i18n import translate
from teeka.kit import clock, phone, signing
from teeka.kit.phone import mask_id_number
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    BeneficiaryStatus,
    Booking,
    Centre,
    District,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)
from teeka.models.centre import FeeType
from teeka.national.repository import CentreInfo, centres_with_sessions
from teeka.web import session as websession
from teeka.web.deps import AppSettings, Db, Lang
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)

DAYS = 7  # the availability view: a week from the chosen date
CENTRES_PER_PAGE = 10  # keeps a page of a large district well under 30 KB on the wire
DIGITS = phone.DEVANAGARI_DIGITS  # Devanagari digits typed on a phone


def slip_signature(settings: Settings, kind: str, key: str) -> str:
    """Slips are capability links: the signature proves the link was issued by us."""
    return signing.keyed_hash(settings.resolved_secret(), f"slip:{kind}", key)[:24]


def check_signature(settings: Settings, kind: str, key: str, sig: str) -> None:
    if not signing.constant_time_equal(slip_signature(settings, kind, key), sig or ""):
        raise errors.NotFound()


def dmy(day: date) -> str:
    """Dates are shown to people as DD-MM-YYYY."""
    return day.strftime("%d-%m-%Y")


# ---------------------------------------------------------------- the search (district or PIN)


@dataclass(frozen=True)
class Search:
    district_id: int | None
    pincode: str  # as typed (shown again in the form); searched only when `error` is None
    day: date
    page: int = 1
    error: str | None = None

    @property
    def last_day(self) -> date:
        return self.day + timedelta(days=DAYS - 1)

    def query(self, **changes: Any) -> str:
        """The query string of this search (for the page links), with `changes` applied."""
        s = replace(self, **changes)
        params: dict[str, str | int] = {"date": s.day.isoformat(), "page": s.page}
        if s.pincode:
            params["pincode"] = s.pincode
        elif s.district_id is not None:
            params["district_id"] = s.district_id
        return urlencode(params)


def _parse_day(raw: str) -> date | None:
    text = raw.strip().translate(DIGITS)
    for fmt in ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_search(lang: str, *, district_id: str, pincode: str, day: str, page: str,
                 default_district: int | None = None) -> Search:
    """Read the search form. A PIN code wins over the district; a past date becomes today."""
    today = clock.today()
    error = None
    pin = pincode.strip().replace(" ", "").translate(DIGITS)[:10]
    if pin and not (pin.isdecimal() and len(pin) == 6 and pin[0] != "0"):
        error = translate(lang, "Enter a 6-digit PIN code.")
    district = int(district_id) if district_id.isdecimal() and len(district_id) < 9 else None
    if district is None and not pin:
        district = default_district
    chosen = _parse_day(day[:20]) if day.strip() else today
    if chosen is None:
        error = error or translate(lang, "Enter the date as DD-MM-YYYY.")
    number = int(page) if page.isdecimal() and len(page) < 4 else 1
    return Search(district_id=district, pincode=pin, day=max(chosen or today, today),
                  page=max(number, 1), error=error)


def fee_text(lang: str, info: CentreInfo, vaccine: str) -> str:
    if info.centre.fee_type != FeeType.PAID:
        return translate(lang, "Free")
    fee = info.fees.get(vaccine)
    return f"₹ {fee}" if fee is not None else translate(lang, "Paid")


def centre_view(lang: str, info: CentreInfo) -> dict[str, Any]:
    """A centre and its sessions as a page shows them (names in the reader's language)."""
    c = info.centre
    hi = lang == "hi"
    return {
        "id": c.id, "name": c.name_hi if hi else c.name_en,
        "address": (c.address_hi if hi else c.address_en) or "", "pincode": c.pincode,
        "sessions": [{
            "id": s.id, "day": s.date, "date": dmy(s.date), "vaccine": s.vaccine,
            "age": band_label(s.min_age, s.max_age), "min_age": s.min_age, "max_age": s.max_age,
            "fee": fee_text(lang, info, s.vaccine),
            "dose1": s.dose1, "dose2": s.dose2, "precaution": s.precaution or 0,
            "available": s.available, "slots": s.slots,
        } for s in info.sessions],
    }


async def availability(db: AsyncSession | Request, lang: str, search: Search, *,
                       vaccine: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One page of the centres that have sessions in the week searched, and whether more
    pages follow. Read side only (the free places shown never decide a booking). Given the
    request instead of a session: from the snapshots (`_snapshot_of`), which the request
    must ask for before it uses a connection of its own (SQLite has one: the build would
    wait for it)."""
    if search.error is not None:
        return [], False
    if search.pincode:
        where: dict[str, int] = {"pincode": int(search.pincode)}
    elif search.district_id is not None:
        where = {"district_id": search.district_id}
    else:
        return [], False
    if isinstance(db, Request):
        found = await _snapshot_of(db, where, search.day, vaccine)
    else:
        found = await centres_with_sessions(db, day=search.day, days=DAYS, vaccine=vaccine,
                                            **where)
    with_sessions = [c for c in found if c.sessions]
    start = (search.page - 1) * CENTRES_PER_PAGE
    chunk = with_sessions[start:start + CENTRES_PER_PAGE]
    return [centre_view(lang, c) for c in chunk], len(with_sessions) > start + CENTRES_PER_PAGE


async def _from_snapshot(request: Request, key: str,
                         read: Callable[[AsyncSession], Awaitable[list[Any]]]) -> list[Any]:
    """What `read` finds, from the availability snapshots that answer the national API's
    searches too (teeka.surge.snapshot): at most 2 s old, rebuilt in the background and soon
    after a capacity change, one build for everyone asking the same, so a crowd on the portal
    costs the database one read per question every two seconds instead of one per page. Kept
    pickled: each page shapes its own copy, in its own language."""
    app = request.app

    async def build() -> bytes:
        async with busy_on_database_trouble(), session_scope(app.state.sessionmaker) as db:
            found = await read(db)
        return pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)

    entry = await app.state.snapshots.get("page|" + key, build)
    rows: list[Any] = pickle.loads(entry.body)  # noqa: S301 (built here, never input)
    return rows


async def _snapshot_of(request: Request, where: dict[str, int], day: date,
                       vaccine: str | None) -> list[CentreInfo]:
    """The centres with sessions of a search (it was the one citizen availability answer read
    afresh every time)."""
    key = "|".join(f"{k}={v}" for k, v in sorted(where.items())) + f"|{day}|{vaccine}"
    return await _from_snapshot(request, key, lambda db: centres_with_sessions(
        db, day=day, days=DAYS, vaccine=vaccine, **where))


@dataclass(frozen=True)
class DistrictChoice:
    id: int
    name_en: str
    name_hi: str


async def _district_choices(request: Request) -> list[DistrictChoice]:
    """The districts to search in: the home page reads nothing from the database for a
    visitor not signed in."""
    async def read(db: AsyncSession) -> list[DistrictChoice]:
        return [DistrictChoice(d.id, d.name_en, d.name_hi) for d in await districts(db)]

    return await _from_snapshot(request, "districts", read)


async def districts(db: AsyncSession) -> list[District]:
    return list((await db.execute(select(District).order_by(District.name_en))).scalars())


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, db: Db, lang: Lang, district_id: str = "", pincode: str = "",
               day: Annotated[str, Query(alias="date")] = "", page: str = "1") -> HTMLResponse:
    all_districts = await _district_choices(request)
    # The first visit shows a district at once; a search without district or PIN asks for one.
    searched = any(k in request.query_params for k in ("district_id", "pincode", "date"))
    default = all_districts[0].id if all_districts and not searched else None
    search = parse_search(lang, district_id=district_id, pincode=pincode, day=day, page=page,
                          default_district=default)
    # from the snapshots, before this request's own session takes a connection (SQLite)
    centres, more = await availability(request, lang, search)
    place = ""
    if search.pincode:
        place = search.pincode
    elif search.district_id is not None:
        place = next(((d.name_hi if lang == "hi" else d.name_en) for d in all_districts
                      if d.id == search.district_id), "")
    actor = await websession.page_actor(request, db, staff=False)
    response = render(request, "home.html", lang, districts=all_districts, search=search,
                      centres=centres, more=more, place=place, first=dmy(search.day),
                      last=dmy(search.last_day), signed_in=actor)
    if actor is not None:
        websession.renew(request, response, actor)
    return response


# ---------------------------------------------------------------- slips


async def slip_items(db: Db, where: object) -> list[dict[str, object]]:
    """The appointments `where` selects, as a slip lists them; a person deleted since (their
    appointment cancelled with them) is left out, their name and secret code with them."""
    rows = await db.execute(
        select(Appointment, Beneficiary, VaccinationSession, SessionSlot, Centre, Vaccine)
        .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
        .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
        .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(where, Beneficiary.status == BeneficiaryStatus.ACTIVE)  # type: ignore[arg-type]
        .order_by(Appointment.created_at))
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
        Beneficiary.reference_id == reference_id,
        Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one_or_none()
    if person is None:  # (a person deleted: their slip, and secret code, are gone)
        raise errors.NotFound()
    items = await slip_items(db, (Appointment.beneficiary_id == person.id)
                              & (Appointment.status == AppointmentStatus.BOOKED))
    return render(request, "person_slip.html", lang, person=person,
                  masked_id=mask_id_number(person.id_last4),
                  appointment=items[0] if items else None)
