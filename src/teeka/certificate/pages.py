"""Pages: a person's certificate (for their account, printable, with its QR code and a PDF),
and /verify, where anyone checks a certificate's QR text against the state's key. Hindi and
English, no JavaScript."""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from teeka import errors
from teeka.certificate import service
from teeka.certificate.api import pdf_response
from teeka.web.deps import AppSettings, CitizenPage, Db, Lang, StaffPage
from teeka.web.pages import page
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)


def _qr(text: str) -> str:
    return str(segno.make(text, error="q", micro=False).svg_data_uri(scale=3, border=4))


@router.get("/me/people/{reference_id}/certificate", response_class=HTMLResponse)
async def certificate(request: Request, reference_id: str, db: Db, lang: Lang,
                      actor: CitizenPage, settings: AppSettings) -> Response:
    try:
        c = await service.certificate(db, settings, actor=actor, reference_id=reference_id)
    except errors.CertificateNotIssued as exc:
        return page(request, actor, "certificate.html", lang, status_code=exc.status, c=None,
                    error=exc.text(lang))
    return page(request, actor, "certificate.html", lang, c=c, qr=_qr(c.hc1), error=None,
                issuer=settings.certificate_issuer)


@router.get("/me/people/{reference_id}/certificate.pdf")
async def certificate_pdf(reference_id: str, db: Db, actor: CitizenPage,
                          settings: AppSettings) -> Response:
    c = await service.certificate(db, settings, actor=actor, reference_id=reference_id)
    return await pdf_response(c, settings.certificate_issuer)


@router.get("/verify", response_class=HTMLResponse)
async def verify(request: Request, lang: Lang, settings: AppSettings,
                 hc1: str = "") -> Response:
    """Paste the text a certificate's QR code holds (a QR reader app shows it): is it signed by
    this state's key, still valid, and whose is it."""
    result: Any = service.check(settings, hc1) if hc1.strip() else None
    return render(request, "verify.html", lang, hc1=hc1[:8000], result=result)


@router.get("/staff/helpdesk/people/{reference_id}/certificate.pdf")
async def helpdesk_certificate_pdf(reference_id: str, db: Db, actor: StaffPage,
                                   settings: AppSettings) -> Response:
    """For a person registered at the help desk (no phone): their certificate, to print."""
    c = await service.certificate(db, settings, actor=actor, reference_id=reference_id)
    return await pdf_response(c, settings.certificate_issuer)
