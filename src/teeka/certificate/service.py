"""A vaccinated person's records for the wider ecosystem: the verifiable certificate (HCERT,
teeka.certificate.hcert: a QR code any HCERT / DDCC:VS verifier checks offline against the
published key), the same as a printable page and PDF, and the doses as an HL7 FHIR R4 Bundle
(Patient and Immunization resources). Who may have them: the person's own account, or the help
desk for a person registered without a mobile number (teeka.auth.access.access_beneficiary);
anyone else gets 404. Nothing here is stored: a certificate is made from the dose records
each time it is asked for (the records are the truth)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.access import access_beneficiary
from teeka.auth.actor import Actor
from teeka.certificate import hcert
from teeka.config import Settings
from teeka.kit import clock, phone
from teeka.models import Beneficiary, Centre, DoseRecord, Vaccine

COUNTRY = "IN"
_FHIR_NS = uuid.UUID("5b0c6c1e-7f0e-4c55-9a8e-7e6f1b7d2a10")  # Teeka's FHIR resource ids
COVID_19 = "840539006"  # SNOMED CT: the disease targeted
VACCINE_TYPE = "J07BX03"  # ATC: covid-19 vaccines
# Product and marketing-authorisation holder, in the EU DCC value sets' codes where there is one.
PRODUCTS = {"COVISHIELD": ("Covishield", "ORG-100001981"),
            "COVAXIN": ("Covaxin", "Bharat-Biotech")}


@lru_cache(maxsize=4)
def _key(configured: str, secret: str) -> ec.EllipticCurvePrivateKey:
    if configured:
        text = configured
        if "-----BEGIN" not in configured and Path(configured).is_file():
            text = Path(configured).read_text()
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("certificate_key must be a P-256 (secp256r1) private key")
        return key
    # derived from the secret key: stable across restarts and processes of one installation
    seed = hashlib.sha256(b"teeka certificate key\0" + secret.encode()).digest()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(seed, "big") % (order - 1) + 1, ec.SECP256R1())


def signing_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    return _key(settings.certificate_key, settings.resolved_secret())


@lru_cache(maxsize=4)
def _previous(pems: str) -> tuple[ec.EllipticCurvePublicKey, ...]:
    out = []
    for block in pems.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" in block:
            key = serialization.load_pem_public_key(
                (block.strip() + "\n-----END PUBLIC KEY-----\n").encode())
            if isinstance(key, ec.EllipticCurvePublicKey):
                out.append(key)
    return tuple(out)


def public_keys(settings: Settings) -> dict[bytes, ec.EllipticCurvePublicKey]:
    """The keys a certificate of this installation may be signed with, by key id: the
    signing key's, and those it signed with before (`certificate_previous_keys`), so that a
    certificate printed before the key changed still checks."""
    keys = [signing_key(settings).public_key(), *_previous(settings.certificate_previous_keys)]
    return {hcert.key_id(k): k for k in keys}


@dataclass(frozen=True)
class DoseLine:
    dose: int
    vaccine: str
    vaccine_name: str
    manufacturer: str
    series: int
    day: date
    batch: str
    centre_en: str
    centre_hi: str
    administered_at: datetime


@dataclass(frozen=True)
class Certificate:
    reference_id: str
    name: str
    birth_year: int
    gender: str
    id_type: str
    id_number_masked: str
    doses: list[DoseLine]
    certificate_id: str
    issued_at: datetime
    expires_at: datetime
    hc1: str  # what the QR code carries
    hcert: dict[str, Any]  # the signed data, readable

    @property
    def fully_vaccinated(self) -> bool:
        last = self.doses[-1]
        return last.dose >= last.series


async def _person_and_doses(session: AsyncSession, actor: Actor, reference_id: str
                            ) -> tuple[Beneficiary, list[DoseLine]]:
    person = await access_beneficiary(session, actor, (reference_id or "")[:20])
    rows = await session.execute(
        select(DoseRecord, Vaccine, Centre)
        .join(Vaccine, Vaccine.id == DoseRecord.vaccine_id)
        .join(Centre, Centre.id == DoseRecord.centre_id)
        .where(DoseRecord.beneficiary_id == person.id)
        .order_by(DoseRecord.dose_number))
    doses = [DoseLine(dose=r.dose_number, vaccine=v.code, vaccine_name=v.name,
                      manufacturer=v.manufacturer, series=max(v.doses, r.dose_number),
                      day=r.administered_at.astimezone(clock.LOCAL_TZ).date(), batch=r.batch,
                      centre_en=c.name_en, centre_hi=c.name_hi,
                      administered_at=r.administered_at) for r, v, c in rows]
    return person, doses


NAME_MAX = 80  # EU DCC 1.3.0: fn, gn, fnt, gnt


def _icao(text: str) -> str:
    """The ICAO 9303 machine-readable form HCERT wants beside a name: A-Z with '<' between
    words and for hyphens, accents taken off (é → E). Letters of other scripts have no
    transliteration here and are left out ("X" when nothing is left)."""
    plain = unicodedata.normalize("NFKD", text).upper().replace("-", " ")
    words = ["".join(ch for ch in w if "A" <= ch <= "Z") for w in plain.split()]
    return ("<".join(w for w in words if w) or "X")[:NAME_MAX]


def _names(name: str) -> dict[str, str]:
    parts = name.split()
    family = parts[-1] if parts else name
    given = " ".join(parts[:-1])
    out = {"fn": family[:NAME_MAX], "fnt": _icao(family)}
    if given:
        out |= {"gn": given[:NAME_MAX], "gnt": _icao(given)}
    return out


def _uvci(settings: Settings, reference_id: str, dose: int) -> str:
    """The certificate's id: opaque (a keyed hash of the person and the dose), so that it does
    not hand the reference id to everyone who scans it; the same for the same dose."""
    digest = hmac.new(settings.resolved_secret().encode(), f"uvci\0{reference_id}\0{dose}"
                      .encode(), hashlib.sha256).digest()
    return f"URN:UVCI:01:{COUNTRY}:TK" + base64.b32encode(digest[:10]).decode()


async def certificate(session: AsyncSession, settings: Settings, *, actor: Actor,
                      reference_id: str) -> Certificate:
    """The certificate of the person's latest dose (CertificateNotIssued before the first)."""
    person, doses = await _person_and_doses(session, actor, reference_id)
    if not doses:
        raise errors.CertificateNotIssued()
    last = doses[-1]
    product, holder = PRODUCTS.get(last.vaccine, (last.vaccine_name, last.manufacturer))
    certificate_id = _uvci(settings, person.reference_id, last.dose)
    payload = {"ver": "1.3.0", "nam": _names(person.name), "dob": str(person.birth_year),
               "v": [{"tg": COVID_19, "vp": VACCINE_TYPE, "mp": product, "ma": holder,
                      "dn": last.dose, "sd": last.series, "dt": last.day.isoformat(),
                      "co": COUNTRY, "is": settings.certificate_issuer, "ci": certificate_id}]}
    issued = clock.now().replace(microsecond=0).astimezone(clock.LOCAL_TZ)
    expires = issued + timedelta(days=settings.certificate_valid_days)
    text = hcert.sign(payload, key=signing_key(settings), issuer=COUNTRY, issued_at=issued,
                      expires_at=expires)
    return Certificate(reference_id=person.reference_id, name=person.name,
                       birth_year=person.birth_year, gender=person.gender,
                       id_type=person.id_type,
                       id_number_masked=phone.mask_id_number(person.id_last4), doses=doses,
                       certificate_id=certificate_id, issued_at=issued, expires_at=expires,
                       hc1=text, hcert=payload)


@dataclass(frozen=True)
class Checked:
    valid: bool
    reason: str | None  # why not: hcert.NotACertificate's reasons, or "expired"
    kid: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    hcert: dict[str, Any] | None = None


def check(settings: Settings, text: str) -> Checked:
    """A certificate's text (from its QR code) checked against this installation's keys."""
    try:
        found = hcert.verify((text or "")[:8000], public_keys(settings))
    except hcert.NotACertificate as exc:
        return Checked(valid=False, reason=exc.reason)
    issued = datetime.fromtimestamp(found.issued_at, clock.LOCAL_TZ)
    expires = datetime.fromtimestamp(found.expires_at, clock.LOCAL_TZ)
    expired = clock.now() > expires
    return Checked(valid=not expired, reason="expired" if expired else None,
                   kid=base64.b64encode(found.kid).decode(), issued_at=issued,
                   expires_at=expires, hcert=found.hcert)


async def fhir_bundle(session: AsyncSession, *, actor: Actor, reference_id: str
                      ) -> dict[str, Any]:
    """The person and their doses as an HL7 FHIR R4 Bundle (type collection): one Patient,
    one Immunization per dose. The photo-ID number is never in it."""
    person, doses = await _person_and_doses(session, actor, reference_id)
    patient_id = person.reference_id
    patient_url = f"urn:uuid:{uuid.uuid5(_FHIR_NS, 'Patient/' + patient_id)}"
    gender = {"male": "male", "female": "female"}.get(person.gender, "other")
    entries: list[dict[str, Any]] = [{"fullUrl": patient_url, "resource": {
        "resourceType": "Patient", "id": patient_id,
        "identifier": [{"system": "urn:teeka:beneficiary-reference-id", "value": patient_id}],
        "name": [{"text": person.name}], "gender": gender,
        "birthDate": str(person.birth_year)}}]
    for d in doses:
        product, holder = PRODUCTS.get(d.vaccine, (d.vaccine_name, d.manufacturer))
        url = f"urn:uuid:{uuid.uuid5(_FHIR_NS, f'Immunization/{patient_id}-{d.dose}')}"
        entries.append({"fullUrl": url, "resource": {
            "resourceType": "Immunization", "id": f"{patient_id}-{d.dose}",
            "status": "completed",
            "vaccineCode": {"coding": [
                {"system": "http://www.whocc.no/atc", "code": VACCINE_TYPE,
                 "display": "covid-19 vaccines"},
                {"system": "urn:teeka:vaccine", "code": d.vaccine, "display": product}],
                "text": d.vaccine_name},
            "patient": {"reference": patient_url},
            "occurrenceDateTime": d.administered_at.isoformat(),
            "primarySource": True,
            "lotNumber": d.batch,
            "manufacturer": {"display": d.manufacturer,
                             "identifier": {"system": "urn:teeka:ema-organisation",
                                            "value": holder}},
            "location": {"display": d.centre_en},
            "protocolApplied": [{
                "targetDisease": [{"coding": [{"system": "http://snomed.info/sct",
                                               "code": COVID_19, "display": "COVID-19"}]}],
                "doseNumberPositiveInt": d.dose, "seriesDosesPositiveInt": d.series}]}})
    return {"resourceType": "Bundle", "type": "collection",
            "timestamp": clock.now().replace(microsecond=0).isoformat(), "entry": entries}
