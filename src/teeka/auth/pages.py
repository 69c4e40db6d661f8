"""Staff sign-in pages: password (argon2), then a TOTP second factor (enrolment at first login)."""

from __future__ import annotations

from urllib.parse import quote

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeka import errors
from teeka.auth import totp
from teeka.auth.service import staff_login, verify_second_factor
from teeka.i18n import translate
from teeka.models import StaffUser
from teeka.models.staff import Role
from teeka.web import session as websession
from teeka.web.deps import Db, Form, Lang, StaffPage
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)

HOME_FOR_ROLE = {Role.VACCINATOR: "/staff/centre", Role.HELPDESK: "/staff/helpdesk",
                 Role.DISTRICT_ADMIN: "/staff/district", Role.STATE_ADMIN: "/staff/district"}


def _safe_next(raw: str | None, default: str) -> str:
    """Only a local path: never an open redirect."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return default


@router.get("/staff/login", response_class=HTMLResponse)
async def login_form(request: Request, lang: Lang, next: str = "") -> HTMLResponse:
    return render(request, "staff/login.html", lang, next=_safe_next(next, ""), error=None)


@router.post("/staff/login", response_class=HTMLResponse)
async def login(request: Request, db: Db, lang: Lang, form: Form) -> Response:
    try:
        staff = await staff_login(db, username=form.get("username", "")[:60],
                                  password=form.get("password", "")[:200])
    except errors.Unauthenticated:
        return render(request, "staff/login.html", lang, status_code=401,
                      next=_safe_next(form.get("next"), ""),
                      error=translate(lang, "Wrong username or password."))
    enrol = None if staff.totp_secret else totp.new_secret()
    # encoded: a `next` with its own query or fragment (`?a=1&b=2`, `#history`) comes back whole
    response = RedirectResponse("/staff/second-factor?next="
                                + quote(_safe_next(form.get("next"), ""), safe=""),
                                status_code=303)
    websession.set_cookie(request, response, websession.SECOND_FACTOR,
                          websession.second_factor_token(request, staff.id, enrol), 5)
    return response


async def _pending(request: Request, db: Db) -> tuple[StaffUser, str | None]:
    claims = websession.read_second_factor(request)
    staff = await db.get(StaffUser, int(claims["sub"])) if claims else None
    if claims is None or staff is None or not staff.active:
        raise websession.LoginRequired("/staff/login", "")
    return staff, claims.get("enrol")


@router.get("/staff/second-factor", response_class=HTMLResponse)
async def second_factor_form(request: Request, db: Db, lang: Lang, next: str = "") -> Response:
    staff, enrol = await _pending(request, db)
    qr = None
    if enrol:
        qr = segno.make(totp.provisioning_uri(enrol, staff.username), error="m").svg_data_uri(
            scale=4)
    return render(request, "staff/second_factor.html", lang, enrol=enrol, qr=qr,
                  username=staff.username, next=_safe_next(next, ""), error=None)


@router.post("/staff/second-factor", response_class=HTMLResponse)
async def second_factor(request: Request, db: Db, lang: Lang, form: Form) -> Response:
    staff, enrol = await _pending(request, db)
    try:
        passed = await verify_second_factor(db, staff, form.get("code", ""), enrol_secret=enrol)
        status, error = 401, translate(lang, "The code is not right. Use the current code from your app.")
    except errors.SecondFactorLocked as exc:
        passed, status, error = False, exc.status, exc.text(lang)
    if not passed:
        qr = segno.make(totp.provisioning_uri(enrol, staff.username), error="m").svg_data_uri(
            scale=4) if enrol else None
        return render(request, "staff/second_factor.html", lang, status_code=status,
                      enrol=enrol, qr=qr, username=staff.username,
                      next=_safe_next(form.get("next"), ""), error=error)
    target = _safe_next(form.get("next"), HOME_FOR_ROLE.get(Role(staff.role), "/staff/district"))
    response = RedirectResponse(target, status_code=303)
    websession.clear_cookie(response, websession.SECOND_FACTOR)
    websession.set_cookie(request, response, websession.STAFF,
                          websession.staff_cookie_token(request, staff.id),
                          websession.STAFF_PAGE_MINUTES)
    return response


@router.post("/staff/logout")
async def logout(request: Request, db: Db, form: Form) -> Response:
    await websession.end_sessions(request, db, staff=True)
    response = RedirectResponse("/staff/login", status_code=303)
    websession.clear_cookie(response, websession.STAFF)
    return response


@router.get("/staff", response_class=HTMLResponse)
async def staff_home(actor: StaffPage) -> Response:
    return RedirectResponse(HOME_FOR_ROLE.get(Role(actor.role or ""), "/staff/district"),
                            status_code=303)
