"""Citizen login by OTP and beneficiaries, through real HTTP and a real database."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from teeka import errors, logging_setup
from teeka.citizen.service import confirm_otp
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Beneficiary, OtpChallenge, OutboxMessage
from tests.factories import add_beneficiary, latest_sms, login_citizen, next_aadhaar, next_mobile


async def send_otp(client, maker, settings, mobile: str) -> tuple[str, str]:
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
    assert r.status_code == 200, r.text
    sms = await latest_sms(client, maker, settings, mobile)
    code = re.search(r"\b(\d{6})\b", sms)
    assert code
    return r.json()["txn_id"], code[1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_otp_login_gives_a_short_lived_token(client, world, maker, settings) -> None:
    mobile = next_mobile()
    txn, code = await send_otp(client, maker, settings, mobile)
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
    assert r.status_code == 200
    token = r.json()["token"]
    assert r.json()["expires_in"] == 15 * 60
    assert (await client.get("/api/v1/beneficiaries",
                             headers={"Authorization": f"Bearer {token}"})).status_code == 200
    # an OTP works once
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
    assert r.status_code == 401 and r.json()["code"] == "OtpInvalid"
    clock.shift(timedelta(minutes=16))
    r = await client.get("/api/v1/beneficiaries", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_wrong_otp_and_too_many_tries(client, world, maker, settings) -> None:
    txn, code = await send_otp(client, maker, settings, next_mobile())
    for _ in range(3):
        r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": wrong(code)})
        assert r.status_code == 401 and r.json()["code"] == "OtpInvalid"
    # the right code no longer helps after three wrong tries
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
    assert r.status_code == 429 and r.json()["code"] == "OtpTooManyTries"
    assert "Retry-After" in r.headers


async def test_tries_made_meanwhile_count_against_a_try_that_read_the_count_before(
        client, world, maker, settings) -> None:
    """A try that read the challenge before three wrong tries were counted (tries sent at the
    same moment) is not checked: the count is taken where it is updated."""
    txn, code = await send_otp(client, maker, settings, next_mobile())
    early = async_sessionmaker(maker.kw["bind"], expire_on_commit=False)
    async with early() as db:
        read = await db.get(OtpChallenge, txn)  # kept: the session's identity map holds it
        assert read.attempts == 0
        await db.commit()
        for _ in range(3):
            r = await client.post("/api/v1/auth/otp/confirm",
                                  json={"txn_id": txn, "otp": wrong(code)})
            assert r.status_code == 401 and r.json()["code"] == "OtpInvalid"
        with pytest.raises(errors.OtpTooManyTries):
            await confirm_otp(db, settings, txn_id=txn, otp=code)
        await db.rollback()
    async with session_scope(maker) as db:
        challenge = await db.get(OtpChallenge, txn)
        assert challenge.used_at is None and challenge.attempts == 3


async def test_expired_otp(client, world, maker, settings) -> None:
    txn, code = await send_otp(client, maker, settings, next_mobile())
    clock.shift(timedelta(minutes=3, seconds=1))
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
    assert r.status_code == 401 and r.json()["code"] == "OtpExpired"


async def test_the_otp_lasts_as_long_as_its_sms_and_the_page_say(client, world, maker,
                                                                settings) -> None:
    settings.otp_ttl_seconds = 300
    try:
        mobile = next_mobile()
        txn, code = await send_otp(client, maker, settings, mobile)
        assert "यह 5 मिनट तक मान्य है" in await latest_sms(client, maker, settings, mobile)
        page = await client.get("/login?lang=en")
        assert "It is valid for 5 minutes." in page.text
        clock.shift(timedelta(minutes=4, seconds=50))
        r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
        assert r.status_code == 200, r.text
    finally:
        settings.otp_ttl_seconds = 180


async def test_resend_interval_and_daily_cap(client, world, maker, settings) -> None:
    mobile = next_mobile()
    settings.otp_resend_interval_seconds = 30
    try:
        await send_otp(client, maker, settings, mobile)
        r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
        assert r.status_code == 429 and r.json()["code"] == "OtpResendTooSoon"
        assert int(r.headers["Retry-After"]) > 0
        for _ in range(settings.otp_daily_limit - 1):
            clock.shift(timedelta(seconds=31))
            assert (await client.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
        clock.shift(timedelta(seconds=31))
        r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
        assert r.status_code == 429 and r.json()["code"] == "OtpDailyLimit"
        clock.shift(timedelta(days=1))
        assert (await client.post("/api/v1/auth/otp", json={"mobile": mobile})).status_code == 200
    finally:
        settings.otp_resend_interval_seconds = 0


@pytest.mark.parametrize("mobile", ["12345", "5999999999", "abcdefghij", "+91 99999 9999x", "",
                                    "٩٨٧٦٥٤٣٢١٠", "98765٤٣٢١٠", "५९९९९९९९९९"])
async def test_invalid_mobile_is_a_clear_error(client, world, mobile: str) -> None:
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile},
                          headers={"Accept-Language": "en"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidMobile"


def test_access_log_lines_keep_the_path_but_not_the_query() -> None:
    """A vaccinator's search by mobile number, or a signed link, in uvicorn's access log."""
    logging_setup.configure("INFO")
    access = logging.getLogger("uvicorn.access")
    for path, kept in [("/staff/centre?mobile=9876543210", "/staff/centre?…"),
                       ("/slip/person/12345678901234?sig=abcdef", "/slip/person/12345678901234?…"),
                       ("/healthz", "/healthz")]:
        record = access.makeRecord("uvicorn.access", logging.INFO, __file__, 1,
                                   '%s - "%s %s HTTP/%s" %d',
                                   ("127.0.0.1:5000", "GET", path, "1.1", 200), None)
        assert access.filter(record)
        line = record.getMessage()
        assert f"GET {kept} HTTP" in line
        assert "9876543210" not in line and "abcdef" not in line


async def test_otp_is_never_logged_nor_stored_in_clear(client, world, maker, settings,
                                                       capsys, caplog) -> None:
    mobile = next_mobile()
    txn, code = await send_otp(client, maker, settings, mobile)
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": wrong(code)})
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code})
    assert r.status_code == 200
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text
    assert code not in logged
    assert mobile not in logged  # mobiles are masked in logs
    async with session_scope(maker) as db:
        challenge = await db.get(OtpChallenge, txn)
        assert challenge is not None and code not in challenge.code_hash
        bodies = (await db.execute(select(OutboxMessage.body).where(
            OutboxMessage.sensitive.is_(True)))).scalars().all()
        assert bodies and all(code not in b for b in bodies)


async def test_beneficiaries_capped_at_four_and_id_documents_unique(client, world, maker,
                                                                    settings) -> None:
    h = await login_citizen(client, maker, settings)
    for i in range(4):
        await add_beneficiary(client, h, name=f"Member {i}")
    body = {"name": "Fifth", "birth_year": 1990, "gender": "male", "id_type": "aadhaar",
            "id_number": next_aadhaar()}
    r = await client.post("/api/v1/beneficiaries", headers=h, json=body)
    assert r.status_code == 409 and r.json()["code"] == "TooManyBeneficiaries"
    other = await login_citizen(client, maker, settings)
    number = next_aadhaar()
    body["id_number"] = number
    assert (await client.post("/api/v1/beneficiaries", headers=other, json=body)).status_code == 201
    spaced = f"{number[:4]} {number[4:8]} {number[8:]}"
    r = await client.post("/api/v1/beneficiaries", headers=other, json={**body, "id_number": spaced})
    assert r.status_code == 409 and r.json()["code"] == "DuplicateIdDocument"


async def test_id_number_is_never_stored_or_shown_in_full(client, world, maker, settings) -> None:
    h = await login_citizen(client, maker, settings)
    number = next_aadhaar()
    r = await client.post("/api/v1/beneficiaries", headers=h, json={
        "name": "Ramesh Sahu", "birth_year": 1975, "gender": "male", "id_type": "aadhaar",
        "id_number": number})
    assert r.status_code == 201
    assert number not in r.text and r.json()["id_number_masked"].endswith(number[-4:])
    assert re.fullmatch(r"[1-9]\d{13}", r.json()["reference_id"])
    assert re.fullmatch(r"\d{4}", r.json()["secret_code"])
    async with session_scope(maker) as db:
        for table in ("beneficiary", "audit_entry", "outbox_message"):
            rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
            assert number not in repr(rows)


async def test_bad_beneficiary_input_is_refused_clearly(client, world, maker, settings) -> None:
    h = await login_citizen(client, maker, settings)
    good = {"name": "Sita Bai", "birth_year": 1970, "gender": "female", "id_type": "aadhaar",
            "id_number": next_aadhaar()}
    for bad in ({"birth_year": 1700}, {"gender": "x"}, {"id_type": "library_card"},
                {"id_number": "12ab"}, {"name": "x"}, {"priority_group": "vip"}):
        r = await client.post("/api/v1/beneficiaries", headers=h, json={**good, **bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "Invalid"
    r = await client.post("/api/v1/beneficiaries", headers=h, json={"name": "only"})
    assert r.status_code == 400 and "birth_year" in r.json()["fields"]


async def test_delete_before_any_dose_frees_the_document(client, world, maker, settings) -> None:
    h = await login_citizen(client, maker, settings)
    number = next_aadhaar()
    body = {"name": "Mohan Lal", "birth_year": 1960, "gender": "male", "id_type": "aadhaar",
            "id_number": number}
    ref = (await client.post("/api/v1/beneficiaries", headers=h, json=body)).json()["reference_id"]
    assert (await client.delete(f"/api/v1/beneficiaries/{ref}", headers=h)).status_code == 204
    assert (await client.get("/api/v1/beneficiaries", headers=h)).json() == []
    assert (await client.post("/api/v1/beneficiaries", headers=h, json=body)).status_code == 201
    async with session_scope(maker) as db:
        deleted = (await db.execute(select(Beneficiary).where(Beneficiary.reference_id == ref))
                   ).scalar_one()
        assert deleted.status == "deleted" and deleted.id_hash is None


async def test_assisted_registration_needs_no_mobile(client, world, maker, settings) -> None:
    body = {"name": "Budhiyarin Bai", "birth_year": 1955, "gender": "female",
            "id_type": "ration_card", "id_number": "CG12345678", "priority_group": "aay"}
    r0 = r = await client.post("/api/v1/helpdesk/beneficiaries",
                               headers=world.headers("helpdesk"), json=body)
    assert r.status_code == 201, r.text
    slip = await client.get(r.json()["slip_url"], headers={"Accept-Language": "hi"})
    assert slip.status_code == 200
    assert r.json()["reference_id"] in slip.text and r.json()["secret_code"] in slip.text
    assert "CG12345678" not in slip.text
    # the slip link cannot be forged from the reference id alone
    forged = await client.get(f"/slip/person/{r.json()['reference_id']}?sig=0000")
    assert forged.status_code == 404
    # a vaccinator may not register people; a citizen cannot use the help-desk endpoint
    r = await client.post("/api/v1/helpdesk/beneficiaries", headers=world.headers("vaccinator_a"),
                          json={**body, "id_number": "CG99999999"})
    assert r.status_code == 403
    # another district's desk finds the person (they may have travelled) but does not delete
    # them; their own district does
    ref = r0.json()["reference_id"]
    r = await client.delete(f"/api/v1/beneficiaries/{ref}", headers=world.headers("balod_admin"))
    assert r.status_code == 403 and r.json()["code"] == "RegisteredElsewhere", r.text
    r = await client.delete(f"/api/v1/beneficiaries/{ref}", headers=world.headers("raipur_admin"))
    assert r.status_code == 204, r.text


async def test_devanagari_digits_are_the_same_number_and_code_on_the_api(client, world, maker,
                                                                          settings) -> None:
    """As on the pages: a number and an OTP typed in Devanagari digits are those digits."""
    mobile = next_mobile()
    hindi = str.maketrans("0123456789", "०१२३४५६७८९")
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile.translate(hindi)})
    assert r.status_code == 200, r.text
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))
    assert code
    r = await client.post("/api/v1/auth/otp/confirm",
                          json={"txn_id": r.json()["txn_id"], "otp": code[1].translate(hindi)})
    assert r.status_code == 200, r.text
