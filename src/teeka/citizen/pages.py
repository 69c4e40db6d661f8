"""Citizen pages: OTP sign-in, my beneficiaries, booking, cancelling and rescheduling.

Every handler is a thin adapter over the same service functions as the JSON API
(`citizen.service`, `booking.service`); no rule is decided here. The pages work without
JavaScript: plain forms, POST, then a 303 redirect to a page that can be reloaded. A domain error
shows the form again with its message in the reader's language and what was typed; the unit of
work is rolled back first (unless the error keeps its changes, as a counted wrong OTP does), so a
failed booking never leaves half of itself behind.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.access import access_beneficiary
from teeka.auth.actor import Actor
from teeka.auth.pages import _safe_next
from teeka.booking import repository as booking_repo
from teeka.booking import rules as booking_rules
from teeka.booking import service as booking_service
from teeka.booking.pages import (
    DIGITS,
    availability,
    centre_view,
    districts,
    dmy,
    parse_search,
    slip_items,
    slip_signature,
)
from teeka.citizen import rules as citizen_rules
from teeka.citizen import service
from teeka.config import Settings
from teeka.i18n import translate
from teeka.kit import clock, ids
from teeka.kit.phone import mask_id_number, normalise_mobile
from teeka.models import Appointment, Beneficiary, Booking, Centre
from teeka.models import VaccinationSession as VSession
from teeka.national.repository import centres_with_sessions
from teeka.surge import api as surge_api
from teeka.surge.limits import limiter, otp_client_limit, otp_send_limit
from teeka.web import session as websession
from teeka.web.deps import AppSettings, CitizenPage, Db, Form, Lang
from teeka.web.pages import page, see_other, undo
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)

FIELDS = ("name", "birth_year", "gender", "id_type", "id_number", "priority_group")


# ---------------------------------------------------------------- helpers


def _page(request: Request, name: str, lang: str, actor: Actor, status_code: int = 200,
          **context: Any) -> HTMLResponse:
    return page(request, actor, name, lang, status_code=status_code, **context)


def _see_other(request: Request, url: str, actor: Actor) -> RedirectResponse:
    return see_other(request, actor, url)


_undo = undo


def choice_labels(lang: str) -> dict[str, dict[str, str]]:
    """The words for the coded values a person chooses, in the order of citizen.rules (a code
    added there without words here fails loudly)."""
    words = {
        "male": translate(lang, "Male"), "female": translate(lang, "Female"),
        "other": translate(lang, "Other"),
        "aadhaar": translate(lang, "Aadhaar card"), "pan": translate(lang, "PAN card"),
        "passport": translate(lang, "Passport"), "voter_id": translate(lang, "Voter ID card"),
        "driving_licence": translate(lang, "Driving licence"),
        "ration_card": translate(lang, "Ration card"),
        "none": translate(lang, "None of these"),
        "frontline": translate(lang, "Health or frontline worker"),
        "aay": translate(lang, "Antyodaya (AAY) card holder"),
        "bpl": translate(lang, "BPL card holder"), "apl": translate(lang, "APL card holder"),
    }
    return {"gender": {c: words[c] for c in citizen_rules.GENDERS},
            "id_type": {c: words[c] for c in citizen_rules.ID_TYPES},
            "priority_group": {c: words[c] for c in citizen_rules.PRIORITY_GROUPS}}


def _notice(lang: str, done: str) -> str | None:
    return {
        "added": translate(lang, "The person has been added."),
        "deleted": translate(lang, "The person has been removed."),
        "cancelled": translate(lang, "The appointment has been cancelled. The place is free "
                                     "for others again."),
        "rescheduled": translate(lang, "The appointment has been changed. An SMS is on its way."),
    }.get(done)


# ---------------------------------------------------------------- sign in (mobile, then OTP)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, db: Db, lang: Lang, settings: AppSettings,
                     next: str = "") -> Response:
    actor = await websession.page_actor(request, db, staff=False)
    if actor is not None:
        return _see_other(request, _safe_next(next, "/me"), actor)
    return render(request, "citizen/login.html", lang, next=_safe_next(next, ""), error=None,
                  mobile="", minutes=service.otp_minutes(settings))


@router.post("/login", response_class=HTMLResponse)
async def send_otp(request: Request, db: Db, lang: Lang, settings: AppSettings,
                   form: Form) -> Response:
    mobile = form.get("mobile", "")[:20]
    nxt = _safe_next(form.get("next"), "")
    try:
        await otp_client_limit(request)
        device = websession.trusted_device(request, normalise_mobile(mobile))
        txn = await service.request_otp(db, settings, mobile=mobile, lang=lang,
                                        before_send=otp_send_limit(request, device),
                                        trusted_device=device is not None)
    except errors.DomainError as exc:
        await _undo(db, exc)
        return render(request, "citizen/login.html", lang, status_code=exc.status, next=nxt,
                      error=exc.text(lang), mobile=mobile, minutes=service.otp_minutes(settings))
    return RedirectResponse("/login/otp?" + urlencode({"txn": txn, "next": nxt}),
                            status_code=303)


@router.get("/login/otp", response_class=HTMLResponse)
async def otp_form(request: Request, lang: Lang, settings: AppSettings, txn: str = "",
                   next: str = "") -> Response:
    if not txn:
        return RedirectResponse("/login", status_code=303)
    return render(request, "citizen/otp.html", lang, txn=txn[:36], next=_safe_next(next, ""),
                  error=None, dev=settings.is_development)


@router.post("/login/otp", response_class=HTMLResponse)
async def confirm(request: Request, db: Db, lang: Lang, settings: AppSettings,
                  form: Form) -> Response:
    txn = form.get("txn", "")[:36]
    nxt = _safe_next(form.get("next"), "/me")
    try:
        account = await service.confirm_otp(db, settings, txn_id=txn,
                                            otp=form.get("otp", "")[:10], language=lang)
    except errors.DomainError as exc:
        # A wrong try is counted: OtpInvalid keeps its changes, committed with this page.
        await _undo(db, exc)
        return render(request, "citizen/otp.html", lang, status_code=exc.status, txn=txn,
                      next=_safe_next(form.get("next"), ""), error=exc.text(lang),
                      dev=settings.is_development)
    response = RedirectResponse(nxt, status_code=303)
    websession.set_cookie(request, response, websession.CITIZEN,
                          websession.citizen_cookie_token(request, account.id),
                          settings.citizen_token_minutes)
    websession.remember_device(request, response, account.mobile)
    return response


@router.post("/logout")
async def logout(request: Request, db: Db, form: Form) -> Response:
    await websession.end_sessions(request, db, staff=False)
    response = RedirectResponse("/", status_code=303)
    websession.clear_cookie(response, websession.CITIZEN)
    return response


# ---------------------------------------------------------------- my beneficiaries


def _reminder(lang: str, history: list[booking_rules.GivenDose],
              schedule_of: dict[int, booking_rules.Schedule], today: date
              ) -> dict[str, str] | None:
    """When the next dose may be booked: before the window opens, while it is open, and once it
    has closed (teeka.booking.rules.dose_window on the vaccine's schedule)."""
    if not history:
        return None
    try:
        due = booking_rules.next_dose(history, schedule_of)
    except errors.ScheduleComplete:
        return None
    last = max(history, key=lambda d: d.dose_number)
    first = min(history, key=lambda d: d.dose_number)
    schedule = schedule_of[first.vaccine_id]
    earliest, latest = booking_rules.dose_window(last.day, due, schedule)
    window = {"dose": due, "vaccine": schedule.code, "earliest": dmy(earliest),
              "latest": dmy(latest) if latest else ""}
    if today < earliest:
        kind = "soon"
        text = (translate(lang, "Dose {dose} of {vaccine} can be booked from {earliest} to "
                                "{latest}.", **window) if latest else
                translate(lang, "Dose {dose} of {vaccine} can be booked from {earliest}.",
                          **window))
    elif latest is None or today <= latest:
        kind = "due"
        text = (translate(lang, "Dose {dose} of {vaccine} is due now. Book it by {latest}.",
                          **window) if latest else
                translate(lang, "Dose {dose} of {vaccine} is due now.", **window))
    else:
        kind = "closed"
        text = (errors.DoseWindowPassed(dose=due, latest=dmy(latest)).text(lang) + " "
                + translate(lang, "Please ask at a vaccination centre what to do."))
    return {"kind": kind, "text": text}


async def _appointment_view(db: AsyncSession, settings: Settings, lang: str,
                            appointment_id: str) -> dict[str, Any]:
    read = await booking_repo.appointment_read(db, appointment_id)
    centre = await db.get(Centre, read.centre_id)
    assert centre is not None
    return {"id": read.appointment_id, "confirmation_no": read.confirmation_no,
            "date": dmy(read.date), "slot": read.slot, "dose": read.dose,
            "status": read.status, "session_id": read.session_id,
            "centre": centre.name_hi if lang == "hi" else centre.name_en,
            "slip_url": f"/slip/{read.confirmation_no}?sig="
                        f"{slip_signature(settings, 'booking', read.confirmation_no)}"}


async def _person_view(db: AsyncSession, settings: Settings, lang: str, person: Beneficiary,
                       schedule_of: dict[int, booking_rules.Schedule]) -> dict[str, Any]:
    labels = choice_labels(lang)
    history = sorted(await booking_repo.dose_history(db, person.id, schedule_of),
                     key=lambda d: d.dose_number)
    active = await booking_repo.active_appointment(db, person.id)
    doses = len(history)
    if doses == 0:
        status = translate(lang, "Not vaccinated")
    elif doses < schedule_of[history[0].vaccine_id].doses:
        status = translate(lang, "Partly vaccinated")
    else:
        status = translate(lang, "Fully vaccinated")
    return {
        "reference_id": person.reference_id, "name": person.name,
        "birth_year": person.birth_year,
        "gender": labels["gender"].get(person.gender, person.gender),
        "id_type": labels["id_type"].get(person.id_type, person.id_type),
        "masked_id": mask_id_number(person.id_last4),
        "priority_group": labels["priority_group"].get(person.priority_group,
                                                       person.priority_group),
        "secret_code": person.secret_code, "doses": doses, "status": status,
        "history": [{"dose": d.dose_number, "vaccine": d.vaccine_code, "date": dmy(d.day)}
                    for d in history],
        "appointment": (await _appointment_view(db, settings, lang, active.id)
                        if active is not None else None),
        "reminder": (_reminder(lang, history, schedule_of, clock.today())
                     if active is None else None),
        "slip_url": f"/slip/person/{person.reference_id}?sig="
                    f"{slip_signature(settings, 'person', person.reference_id)}",
    }


@router.get("/me", response_class=HTMLResponse)
async def me(request: Request, db: Db, lang: Lang, actor: CitizenPage, settings: AppSettings,
             done: str = "") -> HTMLResponse:
    schedule_of = await booking_repo.schedules(db)
    people = [await _person_view(db, settings, lang, p, schedule_of)
              for p in await service.list_beneficiaries(db, actor)]
    return _page(request, "citizen/me.html", lang, actor, people=people,
                 notice=_notice(lang, done))


@router.get("/me/people/{reference_id}", response_class=HTMLResponse)
async def person_status(request: Request, reference_id: str, db: Db, lang: Lang,
                        actor: CitizenPage, settings: AppSettings) -> HTMLResponse:
    person = await access_beneficiary(db, actor, reference_id[:20])
    view = await _person_view(db, settings, lang, person, await booking_repo.schedules(db))
    return _page(request, "citizen/person.html", lang, actor, person=view)


def _add_error(lang: str, exc: errors.DomainError) -> tuple[str | None, str]:
    """The form field a refusal of citizen.service.register_beneficiary is about, and what to
    tell the person (citizen.rules says it in English, for the logs: this page says it in the
    reader's language)."""
    if isinstance(exc, errors.DuplicateIdDocument):
        return "id_number", exc.text(lang)
    detail = str(exc.params.get("detail", "")) if isinstance(exc, errors.Invalid) else ""
    if detail.startswith("name"):
        return "name", translate(lang, "Enter the full name, as on the photo ID (2 to 120 "
                                       "letters).")
    if detail.startswith("birth year"):
        return "birth_year", translate(lang, "Enter a real year of birth, for example 1980.")
    if detail == "unknown gender":
        return "gender", translate(lang, "Choose the gender.")
    if detail == "unknown priority group":
        return "priority_group", translate(lang, "Choose a priority group.")
    if detail == "unknown photo-ID type":
        return "id_type", translate(lang, "Choose the type of photo ID.")
    if detail.startswith("photo-ID number"):
        return "id_number", translate(lang, "This number does not look like the chosen photo "
                                            "ID. Check it and try again.")
    return None, exc.text(lang)


def _add_page(request: Request, lang: str, actor: Actor, values: dict[str, str], nxt: str,
              field_errors: dict[str, str] | None = None, error: str | None = None,
              status_code: int = 200) -> HTMLResponse:
    return _page(request, "citizen/add.html", lang, actor, status_code=status_code,
                 values=values, errors=field_errors or {}, error=error, next=nxt,
                 labels=choice_labels(lang))


@router.get("/me/add", response_class=HTMLResponse)
async def add_form(request: Request, lang: Lang, actor: CitizenPage,
                   next: str = "") -> HTMLResponse:
    values = dict.fromkeys(FIELDS, "") | {"priority_group": "none"}
    return _add_page(request, lang, actor, values, _safe_next(next, ""))


@router.post("/me/add", response_class=HTMLResponse)
async def add(request: Request, db: Db, lang: Lang, actor: CitizenPage, settings: AppSettings,
              form: Form) -> Response:
    values = {f: " ".join(form.get(f, "").split())[:200 if f == "name" else 40] for f in FIELDS}
    nxt = _safe_next(form.get("next"), "")
    year = values["birth_year"].translate(DIGITS)
    if not (year.isdecimal() and len(year) == 4):
        return _add_page(request, lang, actor, values, nxt, status_code=400, field_errors={
            "birth_year": translate(lang, "Enter the year of birth in 4 digits, for example "
                                          "1980.")})
    try:
        await service.register_beneficiary(
            db, settings, actor=actor, name=values["name"], birth_year=int(year),
            gender=values["gender"], id_type=values["id_type"],
            id_number=values["id_number"].translate(DIGITS),
            priority_group=values["priority_group"] or "none")
    except errors.DomainError as exc:
        await _undo(db, exc)
        field, message = _add_error(lang, exc)
        return _add_page(request, lang, actor, values, nxt, status_code=exc.status,
                         field_errors={field: message} if field else None,
                         error=None if field else message)
    return _see_other(request, nxt or "/me?done=added", actor)


@router.get("/me/people/{reference_id}/delete", response_class=HTMLResponse)
async def delete_form(request: Request, reference_id: str, db: Db, lang: Lang,
                      actor: CitizenPage, settings: AppSettings) -> HTMLResponse:
    person = await access_beneficiary(db, actor, reference_id[:20])
    view = await _person_view(db, settings, lang, person, await booking_repo.schedules(db))
    return _page(request, "citizen/delete.html", lang, actor, person=view, error=None)


@router.post("/me/people/{reference_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, reference_id: str, db: Db, lang: Lang, actor: CitizenPage,
                 settings: AppSettings, form: Form) -> Response:
    try:
        await service.delete_beneficiary(db, actor=actor, reference_id=reference_id[:20])
    except errors.DomainError as exc:
        await _undo(db, exc)
        person = await access_beneficiary(db, actor, reference_id[:20])
        view = await _person_view(db, settings, lang, person, await booking_repo.schedules(db))
        return _page(request, "citizen/delete.html", lang, actor, status_code=exc.status,
                     person=view, error=exc.text(lang))
    return _see_other(request, "/me?done=deleted", actor)


# ---------------------------------------------------------------- book a slot


async def _session_view(db: AsyncSession, lang: str, session_id: str) -> dict[str, Any]:
    vs = await db.get(VSession, session_id[:36])
    if vs is None:
        raise errors.NotFound()
    found = await centres_with_sessions(db, day=vs.date, days=1, centre_id=vs.centre_id)
    if not found:
        raise errors.NotFound()
    centre = centre_view(lang, found[0])
    session = next((s for s in centre["sessions"] if s["id"] == vs.id), None)
    if session is None:
        raise errors.NotFound()
    return {"centre": centre, "session": session}


async def _book_page(request: Request, db: AsyncSession, settings: Settings, lang: str,
                     actor: Actor, session_id: str, *, slot: str, chosen: list[str], key: str,
                     error: str | None = None, status_code: int = 200) -> HTMLResponse:
    place = await _session_view(db, lang, session_id)
    people = []
    for p in await service.list_beneficiaries(db, actor):
        active = await booking_repo.active_appointment(db, p.id)
        people.append({"reference_id": p.reference_id, "name": p.name,
                       "birth_year": p.birth_year,
                       "appointment": (await _appointment_view(db, settings, lang, active.id)
                                       if active is not None else None)})
    slots = place["session"]["slots"]
    checked = slot if slot in slots else (slots[0] if slots else "")
    return _page(request, "citizen/book.html", lang, actor, status_code=status_code,
                 place=place, people=people, slot=checked, chosen=chosen, key=key, error=error)


@router.get("/book/{session_id}", response_class=HTMLResponse)
async def book_form(request: Request, session_id: str, db: Db, lang: Lang, actor: CitizenPage,
                    settings: AppSettings, slot: str = "") -> HTMLResponse:
    # The key that makes a double submit of this form one booking (booking.service).
    return await _book_page(request, db, settings, lang, actor, session_id, slot=slot[:20],
                            chosen=[], key=ids.new_uuid())


@router.post("/book/{session_id}", response_class=HTMLResponse)
async def book(request: Request, session_id: str, db: Db, lang: Lang, actor: CitizenPage,
               settings: AppSettings, form: Form) -> Response:
    submitted = await request.form()  # already read (and its CSRF token checked) by `form`
    refs = [str(v)[:20] for v in submitted.getlist("beneficiary")][:10]
    slot = form.get("slot", "")[:20]
    key = form.get("idempotency_key", "")[:80]
    if not slot:
        return await _book_page(request, db, settings, lang, actor, session_id, slot=slot,
                                chosen=refs, key=key, status_code=400,
                                error=translate(lang, "Choose a time slot."))
    try:
        await limiter(request).hit("booking", actor.label)
        passed = await surge_api.gate(request, db, actor, session_id[:36], people=refs,
                                      idempotency_key=key)
        result = await booking_service.book_appointment(
            db, actor=actor, session_id=session_id[:36], slot=slot, beneficiary_refs=refs,
            dose=None, idempotency_key=key, may_take=passed.may_take)
        await surge_api.used(request, db, passed, actor, pools=result.pools or None,
                             appointment_ids=result.appointment_ids,
                             replayed=result.replayed)
    except errors.DomainError as exc:
        await _undo(db, exc)
        message = exc.text(lang)
        if isinstance(exc, errors.Invalid) and "beneficiaries" in str(exc.params):
            message = translate(lang, "Choose 1 to {count} people for one booking.",
                                count=booking_service.MAX_PER_BOOKING)
        if isinstance(exc, errors.IdempotencyKeyReused):
            key = ids.new_uuid()  # the old form was already used for another booking
        return await _book_page(request, db, settings, lang, actor, session_id, slot=slot,
                                chosen=refs, key=key, error=message, status_code=exc.status)
    return _see_other(request, f"/booked/{result.confirmation_no}", actor)


@router.get("/booked/{confirmation_no}", response_class=HTMLResponse)
async def booked(request: Request, confirmation_no: str, db: Db, lang: Lang,
                 actor: CitizenPage, settings: AppSettings) -> HTMLResponse:
    booking = (await db.execute(select(Booking).where(
        Booking.confirmation_no == confirmation_no[:12], Booking.actor == actor.label))
    ).scalar_one_or_none()
    if booking is None:
        raise errors.NotFound()
    items = await slip_items(db, Appointment.booking_id == booking.id)
    return _page(request, "citizen/booked.html", lang, actor,
                 confirmation_no=booking.confirmation_no, items=items,
                 slip_url=f"/slip/{booking.confirmation_no}?sig="
                          f"{slip_signature(settings, 'booking', booking.confirmation_no)}")


# ---------------------------------------------------------------- cancel, reschedule


async def _own_appointment(db: AsyncSession, settings: Settings, lang: str, actor: Actor,
                           appointment_id: str) -> tuple[Appointment, dict[str, Any]]:
    appt, person = await booking_service.access_appointment(db, actor, appointment_id[:36])
    view = await _appointment_view(db, settings, lang, appt.id)
    view |= {"name": person.name, "reference_id": person.reference_id,
             "birth_year": person.birth_year}
    return appt, view


def _age_fits(birth_year: int, session: dict[str, Any]) -> bool:
    """Only sessions of the person's age band are offered (the service checks it again)."""
    try:
        booking_rules.check_age(birth_year, session["day"], session["min_age"],
                                session["max_age"])
    except errors.AgeNotEligible:
        return False
    return True


@router.get("/me/appointments/{appointment_id}/cancel", response_class=HTMLResponse)
async def cancel_form(request: Request, appointment_id: str, db: Db, lang: Lang,
                      actor: CitizenPage, settings: AppSettings) -> HTMLResponse:
    _, view = await _own_appointment(db, settings, lang, actor, appointment_id)
    return _page(request, "citizen/cancel.html", lang, actor, appointment=view, error=None)


@router.post("/me/appointments/{appointment_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, appointment_id: str, db: Db, lang: Lang, actor: CitizenPage,
                 settings: AppSettings, form: Form) -> Response:
    try:
        await booking_service.cancel_appointment(db, actor=actor,
                                                 appointment_id=appointment_id[:36])
    except errors.DomainError as exc:
        await _undo(db, exc)
        _, view = await _own_appointment(db, settings, lang, actor, appointment_id)
        return _page(request, "citizen/cancel.html", lang, actor, status_code=exc.status,
                     appointment=view, error=exc.text(lang))
    return _see_other(request, "/me?done=cancelled", actor)


async def _reschedule_page(request: Request, db: AsyncSession, settings: Settings, lang: str,
                           actor: Actor, appointment_id: str, *, district_id: str, pincode: str,
                           day: str, page: str, chosen: str = "", error: str | None = None,
                           status_code: int = 200) -> HTMLResponse:
    appt, view = await _own_appointment(db, settings, lang, actor, appointment_id)
    vs = await db.get(VSession, appt.session_id)
    assert vs is not None
    centre = await db.get(Centre, vs.centre_id)
    assert centre is not None
    schedule = (await booking_repo.schedules(db))[vs.vaccine_id]
    kind = booking_rules.dose_kind(appt.dose_number, schedule.doses)
    search = parse_search(lang, district_id=district_id, pincode=pincode, day=day, page=page,
                          default_district=centre.district_id)
    centres, more = await availability(db, lang, search, vaccine=schedule.code)
    free_of = {"first": "dose1", "second": "dose2", "precaution": "precaution"}[kind]
    for c in centres:
        c["sessions"] = [s for s in c["sessions"] if _age_fits(view["birth_year"], s)]
        for s in c["sessions"]:
            s["free"] = s[free_of]
    return _page(request, "citizen/reschedule.html", lang, actor, status_code=status_code,
                 appointment=view, vaccine=schedule.code, search=search,
                 districts=await districts(db), centres=centres, more=more, chosen=chosen,
                 error=error, current=f"{appt.session_id}|{view['slot']}")


@router.get("/me/appointments/{appointment_id}/reschedule", response_class=HTMLResponse)
async def reschedule_form(request: Request, appointment_id: str, db: Db, lang: Lang,
                          actor: CitizenPage, settings: AppSettings, district_id: str = "",
                          pincode: str = "", day: Annotated[str, Query(alias="date")] = "",
                          page: str = "1") -> HTMLResponse:
    return await _reschedule_page(request, db, settings, lang, actor, appointment_id,
                                  district_id=district_id, pincode=pincode, day=day, page=page)


@router.post("/me/appointments/{appointment_id}/reschedule", response_class=HTMLResponse)
async def reschedule(request: Request, appointment_id: str, db: Db, lang: Lang,
                     actor: CitizenPage, settings: AppSettings, form: Form) -> Response:
    chosen = form.get("place", "")[:60]
    session_id, _, slot = chosen.partition("|")
    search = {k: form.get(k, "")[:20] for k in ("district_id", "pincode", "page")}
    search["day"] = form.get("date", "")[:20]
    if not session_id or not slot:
        return await _reschedule_page(request, db, settings, lang, actor, appointment_id,
                                      **search, status_code=400,
                                      error=translate(lang, "Choose a new date and time slot."))
    try:
        passed = await surge_api.gate(request, db, actor, session_id[:36])
        await booking_service.reschedule_appointment(
            db, actor=actor, appointment_id=appointment_id[:36], session_id=session_id,
            slot=slot, may_take=passed.may_take)
        await surge_api.used(request, db, passed, actor, appointment_ids=[appointment_id[:36]])
    except errors.DomainError as exc:
        await _undo(db, exc)
        return await _reschedule_page(request, db, settings, lang, actor, appointment_id,
                                      **search, chosen=chosen, error=exc.text(lang),
                                      status_code=exc.status)
    return _see_other(request, "/me?done=rescheduled", actor)
