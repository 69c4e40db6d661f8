"""JSON API for certificates and FHIR records (teeka.certificate.service)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from teeka.certificate import pdf, service
from teeka.web.deps import AppSettings, CurrentActor, Db

router = APIRouter(prefix="/api/v1", tags=["certificates"])


class DoseRead(BaseModel):
    dose: int
    series: int
    vaccine: str
    date: date
    batch: str
    centre: str


class CertificateRead(BaseModel):
    reference_id: str
    certificate_id: str
    issued_at: datetime
    expires_at: datetime
    fully_vaccinated: bool
    hc1: str  # the QR code's text: HCERT, checkable with the keys at /api/v1/certificates/keys
    certificate: dict[str, Any]  # the signed data (EU DCC schema 1.3.0)
    doses: list[DoseRead]


class VerifyIn(BaseModel):
    hc1: str = Field(max_length=8000)


class VerifyOut(BaseModel):
    valid: bool
    reason: str | None  # not_hc1, not_base45, not_zlib, not_cose, unknown_key, bad_signature,
    # expired
    kid: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    certificate: dict[str, Any] | None = None


def read(c: service.Certificate) -> CertificateRead:
    return CertificateRead(
        reference_id=c.reference_id, certificate_id=c.certificate_id, issued_at=c.issued_at,
        expires_at=c.expires_at, fully_vaccinated=c.fully_vaccinated, hc1=c.hc1,
        certificate=c.hcert,
        doses=[DoseRead(dose=d.dose, series=d.series, vaccine=d.vaccine, date=d.day,
                        batch=d.batch, centre=d.centre_en) for d in c.doses])


@router.get("/beneficiaries/{reference_id}/certificate", response_model=CertificateRead)
async def certificate(reference_id: str, db: Db, actor: CurrentActor,
                      settings: AppSettings) -> CertificateRead:
    """The person's vaccination certificate (their latest dose), signed: `hc1` is what its QR
    code carries. 404 CertificateNotIssued before the first dose."""
    return read(await service.certificate(db, settings, actor=actor, reference_id=reference_id))


async def pdf_response(c: service.Certificate, issuer: str) -> Response:
    """The PDF, drawn in a worker thread (tens of milliseconds of CPU): the event loop keeps
    answering everyone else meanwhile."""
    body = await anyio.to_thread.run_sync(lambda: pdf.certificate_pdf(c, issuer=issuer))
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition":
                             f'attachment; filename="certificate-{c.reference_id}.pdf"',
                             "Cache-Control": "no-store"})


@router.get("/beneficiaries/{reference_id}/certificate.pdf")
async def certificate_pdf(reference_id: str, db: Db, actor: CurrentActor,
                          settings: AppSettings) -> Response:
    c = await service.certificate(db, settings, actor=actor, reference_id=reference_id)
    return await pdf_response(c, settings.certificate_issuer)


@router.get("/beneficiaries/{reference_id}/fhir")
async def fhir(reference_id: str, db: Db, actor: CurrentActor) -> Response:
    """The person and their doses as an HL7 FHIR R4 Bundle (Patient, Immunization)."""
    bundle = await service.fhir_bundle(db, actor=actor, reference_id=reference_id)
    return JSONResponse(bundle, media_type="application/fhir+json",
                        headers={"Cache-Control": "no-store"})


@router.get("/certificates/keys")
async def keys(settings: AppSettings) -> dict[str, list[dict[str, str]]]:
    """The public keys certificates are signed with (JWK, kid as HCERT names it): for any
    verifier to check a certificate offline."""
    from teeka.certificate import hcert

    return {"keys": [hcert.jwk(k) for k in service.public_keys(settings).values()]}


@router.post("/certificates/verify", response_model=VerifyOut)
async def verify(body: VerifyIn, settings: AppSettings) -> VerifyOut:
    """Check a certificate's QR text: signed by this state's key, and not expired."""
    c = service.check(settings, body.hc1)
    return VerifyOut(valid=c.valid, reason=c.reason, kid=c.kid, issued_at=c.issued_at,
                     expires_at=c.expires_at, certificate=c.hcert)
