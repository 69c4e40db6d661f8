"""Citizen sign-in pages: mobile number, then the OTP. Work without JavaScript."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeka import errors
from teeka.auth.pages import _safe_next
from teeka.citizen import service
from teeka.web import session as websession
from teeka.web.deps import AppSettings, Db, Form, Lang
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, lang: Lang, next: str = "") -> HTMLResponse:
    return render(request, "citizen/login.html", lang, next=_safe_next(next, ""), error=None,
                  mobile="")


@router.post("/login", response_class=HTMLResponse)
async def send_otp(request: Request, db: Db, lang: Lang, settings: AppSettings,
                   form: Form) -> HTMLResponse:
    mobile = form.get("mobile", "")[:20]
    nxt = _safe_next(form.get("next"), "")
    try:
        txn = await service.request_otp(db, settings, mobile=mobile, lang=lang)
    except errors.DomainError as exc:
        return render(request, "citizen/login.html", lang, status_code=exc.status, next=nxt,
                      error=exc.text(lang), mobile=mobile)
    return render(request, "citizen/otp.html", lang, txn=txn, next=nxt, error=None,
                  dev=settings.is_development)


@router.post("/login/otp", response_class=HTMLResponse)
async def confirm(request: Request, db: Db, lang: Lang, settings: AppSettings,
                  form: Form) -> Response:
    txn = form.get("txn", "")[:36]
    nxt = _safe_next(form.get("next"), "/me")
    try:
        account = await service.confirm_otp(db, settings, txn_id=txn,
                                            otp=form.get("otp", "")[:10])
    except errors.DomainError as exc:
        # The failed try has been counted; this unit of work commits it with the page.
        return render(request, "citizen/otp.html", lang, status_code=exc.status, txn=txn,
                      next=nxt, error=exc.text(lang), dev=settings.is_development)
    response = RedirectResponse(nxt, status_code=303)
    websession.set_cookie(request, response, websession.CITIZEN,
                          websession.citizen_cookie_token(request, account.id),
                          settings.citizen_token_minutes)
    return response


@router.post("/logout")
async def logout(form: Form) -> Response:
    response = RedirectResponse("/", status_code=303)
    websession.clear_cookie(response, websession.CITIZEN)
    return response
