"""A vaccinated person's certificate and FHIR record over the API and the pages: none before
the first dose; after it, a signed certificate that /verify and the published key accept, a
PDF (the national download too), an FHIR R4 Bundle; nobody else's; Hindi and English."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from teeka.certificate import hcert
from teeka.kit import clock
from tests.citizen.test_pages import page_login
from tests.factories import publish
from tests.staff import by_id
from tests.vaccination.test_offline import booked


async def vaccinated(client, maker, world, settings, sid: str | None = None) -> dict[str, Any]:
    sid = sid or await publish(maker, world, centre_id=world.centre_a, day=clock.today(),
                               dose1=5)
    [p] = await booked(client, maker, world, settings, sid, 1)
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate",
                         headers=p["citizen"])
    assert r.status_code == 404 and r.json()["code"] == "CertificateNotIssued", r.text
    r = await client.post("/api/v1/centre/doses", headers=world.headers("vaccinator_a"),
                          json={"appointment_id": p["appointment_id"], "secret_code": p["code"],
                                "batch": "4121Z025"})
    assert r.status_code == 201, r.text
    return p


async def test_the_certificate_is_signed_and_anyone_can_check_it(client, maker, world,
                                                                settings) -> None:
    p = await vaccinated(client, maker, world, settings)
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate", headers=p["citizen"])
    assert r.status_code == 200, r.text
    cert = r.json()
    v = cert["certificate"]["v"][0]
    assert (v["dn"], v["sd"], v["mp"], v["tg"], v["co"]) == (1, 2, "Covishield", "840539006",
                                                            "IN")
    assert cert["fully_vaccinated"] is False and cert["doses"][0]["batch"] == "4121Z025"
    # with the published key alone, as an outside verifier would
    keys = (await client.get("/api/v1/certificates/keys")).json()["keys"]
    [jwk] = keys

    def num(b64: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(b64 + "=="), "big")

    public = ec.EllipticCurvePublicNumbers(num(jwk["x"]), num(jwk["y"]),
                                           ec.SECP256R1()).public_key()
    found = hcert.verify(cert["hc1"], {base64.b64decode(jwk["kid"]): public})
    assert found.hcert == cert["certificate"]

    r = await client.post("/api/v1/certificates/verify", json={"hc1": cert["hc1"]})
    assert r.json()["valid"] is True and r.json()["certificate"]["v"][0]["ci"] == v["ci"]
    assert p["ref"] not in v["ci"]  # the certificate id does not give the reference id away
    forged = cert["hc1"][:-6] + ("A" if cert["hc1"][-6] != "A" else "B") + cert["hc1"][-5:]
    r = await client.post("/api/v1/certificates/verify", json={"hc1": forged})
    assert r.json()["valid"] is False and r.json()["reason"], r.text
    clock.shift(timedelta(days=366))
    r = await client.post("/api/v1/certificates/verify", json={"hc1": cert["hc1"]})
    assert (r.json()["valid"], r.json()["reason"]) == (False, "expired")


async def test_pdf_fhir_and_nobody_elses(client, maker, world, settings) -> None:
    p = await vaccinated(client, maker, world, settings)
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate.pdf",
                         headers=p["citizen"])
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    r = await client.get("/api/v2/registration/certificate/public/download",
                         params={"beneficiary_reference_id": p["ref"]}, headers=p["citizen"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")

    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/fhir", headers=p["citizen"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    patient, immunization = (e["resource"] for e in bundle["entry"])
    assert patient["resourceType"] == "Patient" and patient["id"] == p["ref"]
    assert "id_number" not in r.text and "XXXX" not in r.text
    for required in ("status", "vaccineCode", "patient", "occurrenceDateTime"):
        assert immunization[required], required
    assert immunization["patient"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert immunization["lotNumber"] == "4121Z025"
    assert immunization["protocolApplied"][0]["doseNumberPositiveInt"] == 1

    # another citizen, a vaccinator: nothing
    [other] = await booked(client, maker, world, settings,
                           await publish(maker, world, centre_id=world.centre_a), 1)
    for path in ("certificate", "certificate.pdf", "fhir"):
        r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/{path}",
                             headers=other["citizen"])
        assert r.status_code == 404, (path, r.text)
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/fhir",
                         headers=world.headers("vaccinator_a"))
    assert r.status_code == 404


async def test_the_pages_show_the_certificate_and_check_one(app, client, maker, world,
                                                           settings) -> None:
    p = await vaccinated(client, maker, world, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test") as c:
        await page_login(c, maker, settings, p["mobile"])  # the citizen, on the site
        me = await c.get("/me")
        assert f'id="certificate-{p["ref"]}"' in me.text
        r = await c.get(f"/me/people/{p['ref']}/certificate?lang=en")
        assert r.status_code == 200, r.text
        assert by_id(r.text, "cert-reference-id") == p["ref"]
        assert 'id="cert-qr"' in r.text and "data:image/svg+xml" in r.text
        pdf = await c.get(f"/me/people/{p['ref']}/certificate.pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        hindi = await c.get(f"/me/people/{p['ref']}/certificate?lang=hi")
        assert "टीकाकरण प्रमाणपत्र" in hindi.text
    hc1 = (await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate",
                            headers=p["citizen"])).json()["hc1"]
    r = await client.get("/verify", params={"hc1": hc1, "lang": "en"})
    assert r.status_code == 200 and 'data-valid="yes"' in r.text
    assert "genuine" in by_id(r.text, "verify-result")
    r = await client.get("/verify", params={"hc1": "HC1:NOPE", "lang": "hi"})
    assert 'data-valid="no"' in r.text and "प्रमाणपत्र" in r.text


async def test_the_help_desk_prints_the_certificate_of_a_person_without_a_phone(
        app, client, maker, world, settings) -> None:
    import re

    from tests.staff import csrf_of, hidden, register, staff_client
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=3)
    async with staff_client(app, "helpdesk") as desk:
        r = await register(desk)
        ref = re.search(r"/staff/helpdesk/people/(\d{14})", r.headers["location"])[1]
        page = await desk.get(f"/staff/helpdesk/people/{ref}/book")
        r = await desk.post(f"/staff/helpdesk/people/{ref}/book", data={
            "csrf": csrf_of(page.text), "key": hidden(page.text, "key"),
            "choice": f"{sid}|09:00AM-11:00AM"})
        assert r.status_code == 303, r.text
        r = await desk.get(f"/staff/helpdesk/people/{ref}/certificate.pdf")
        assert r.status_code == 404  # not vaccinated yet
        page = await desk.get(f"/staff/helpdesk/people/{ref}")
        assert 'id="certificate-link"' in page.text
        code = by_id(page.text, "secret-code")
        appt = (await client.get(f"/api/v1/centre/appointments?reference_id={ref}",
                                 headers=world.headers("vaccinator_a"))).json()[0]
        r = await client.post("/api/v1/centre/doses", headers=world.headers("vaccinator_a"),
                              json={"appointment_id": appt["appointment_id"],
                                    "secret_code": code, "batch": "B-1"})
        assert r.status_code == 201, r.text
        r = await desk.get(f"/staff/helpdesk/people/{ref}/certificate.pdf")
        assert r.status_code == 200 and r.content.startswith(b"%PDF")
    # a citizen's own person is not the help desk's
    p = await vaccinated(client, maker, world, settings, sid)
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate",
                         headers=world.headers("helpdesk"))
    assert r.status_code == 404


def test_a_certificate_signed_with_the_previous_key_still_checks(settings) -> None:
    from cryptography.hazmat.primitives import serialization

    from teeka.certificate import service

    old_key = ec.generate_private_key(ec.SECP256R1())
    now = clock.now()
    text = hcert.sign({"ver": "1.3.0"}, key=old_key, issuer="IN", issued_at=now,
                      expires_at=now + timedelta(days=1))
    assert service.check(settings, text).reason == "unknown_key"
    pem = old_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    moved = settings.model_copy(update={"certificate_previous_keys": pem.decode()})
    assert service.check(moved, text).valid is True


def _glyph_for(pdf: bytes, text: str) -> bool:
    """Whether the PDF draws `text` as one glyph (its ToUnicode map names a glyph for the whole
    sequence: a conjunct that HarfBuzz shaped; unshaped, each letter is a glyph of its own)."""
    import re

    wanted = text.encode("utf-16-be").hex().upper().encode()
    return wanted in re.findall(rb"<[0-9A-F]{4}> <([0-9A-F]{8,})>", pdf)


async def test_a_name_in_hindi_prints_shaped(client, maker, world, settings) -> None:
    """A name registered in Devanagari prints with its conjuncts (क्ष as one glyph) on the
    certificate and on the slip, not as letters in the wrong order or missing."""
    from sqlalchemy import update

    from teeka.booking.pdf import slip_pdf
    from teeka.db import session_scope
    from teeka.models import Beneficiary

    p = await vaccinated(client, maker, world, settings)
    async with session_scope(maker) as db:
        await db.execute(update(Beneficiary).where(Beneficiary.reference_id == p["ref"])
                         .values(name="क्षमा शर्मा"))
    r = await client.get(f"/api/v1/beneficiaries/{p['ref']}/certificate.pdf",
                         headers=p["citizen"])
    assert r.status_code == 200 and _glyph_for(r.content, "क्ष")
    slip = slip_pdf(confirmation_no="C-1", items=[{
        "name": "क्षमा शर्मा", "reference_id": p["ref"], "secret_code": "1234",
        "centre_en": "PHC Abhanpur", "date": "29-11-2026", "slot": "09:00AM-11:00AM",
        "dose": 1, "vaccine": "COVISHIELD", "status": "booked"}])
    assert _glyph_for(slip, "क्ष")
    latin = slip_pdf(confirmation_no="C-2", items=[{
        "name": "Kshama Sharma", "reference_id": p["ref"], "secret_code": "1234",
        "centre_en": "PHC Abhanpur", "date": "29-11-2026", "slot": "09:00AM-11:00AM",
        "dose": 1, "vaccine": "COVISHIELD", "status": "booked"}])
    assert not _glyph_for(latin, "क्ष")
