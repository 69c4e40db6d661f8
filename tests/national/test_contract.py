"""Contract tests for /api/v2, written from the published national surface
(../shared/context/facts.md §1): paths, status codes, field names, JSON types, date formats,
the Hindi *_l fields and the error shape. They check shapes the national clients rely on,
not whatever our code happens to return."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import time, timedelta

import pytest
from sqlalchemy import select, update

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Beneficiary, Centre, DoseRecord, StaffUser, VaccinationSession
from tests.factories import (
    add_beneficiary,
    latest_sms,
    login_citizen,
    next_aadhaar,
    next_mobile,
    publish,
)

DATE = re.compile(r"^\d{2}-\d{2}-\d{4}$")
HMS = re.compile(r"^\d{2}:\d{2}:\d{2}$")
SLOT = re.compile(r"^\d{2}:\d{2}(AM|PM)-\d{2}:\d{2}(AM|PM)$")
CENTRE_FIELDS = {"center_id": int, "name": str, "address": str, "state_name": str,
                 "district_name": str, "block_name": str, "pincode": int, "lat": (int, float),
                 "long": (int, float), "from": str, "to": str, "fee_type": str}
SESSION_FIELDS = {"session_id": str, "date": str, "available_capacity": int,
                  "available_capacity_dose1": int, "available_capacity_dose2": int,
                  "min_age_limit": int, "vaccine": str, "slots": list}
HINDI = ("name_l", "address_l", "state_name_l", "district_name_l", "block_name_l")


def ddmmyyyy(days: int = 0) -> str:
    return (clock.today() + timedelta(days=days)).strftime("%d-%m-%Y")


def assert_typed(obj: dict, fields: dict) -> None:
    for name, kind in fields.items():
        assert name in obj, f"missing {name} in {sorted(obj)}"
        assert (isinstance(obj[name], kind) and not isinstance(obj[name], bool)) or kind is bool, \
            (name, obj[name])


def assert_session(s: dict) -> None:
    assert_typed(s, SESSION_FIELDS)
    uuid.UUID(s["session_id"])
    assert DATE.match(s["date"])
    assert isinstance(s["allow_all_age"], bool)
    assert all(SLOT.match(x) for x in s["slots"])
    parts = s["available_capacity_dose1"] + s["available_capacity_dose2"] + \
        s.get("available_capacity_precaution", 0)
    assert s["available_capacity"] == parts
    assert min(s["available_capacity_dose1"], s["available_capacity_dose2"]) >= 0
    assert s["vaccine"] in ("COVISHIELD", "COVAXIN")


def assert_centre(c: dict) -> None:
    assert_typed(c, CENTRE_FIELDS)
    assert HMS.match(c["from"]) and HMS.match(c["to"])
    assert c["fee_type"] in ("Free", "Paid")
    assert 100000 <= c["pincode"] <= 999999


@pytest.fixture
async def paid_world(world, maker):
    async with session_scope(maker) as db:
        await db.execute(update(Centre).where(Centre.id == world.centre_b)
                         .values(fee_type="Paid"))
    await publish(maker, world, centre_id=world.centre_a, dose1=5, dose2=2)
    await publish(maker, world, centre_id=world.centre_a, day=clock.today() + timedelta(days=2),
                  dose1=0, dose2=3, min_age=45)
    await publish(maker, world, centre_id=world.centre_b, dose1=4, vaccine="COVAXIN",
                  min_age=18, max_age=44, shares={"aay": 50, "bpl": 50},
                  share_release_time=time(15))
    await publish(maker, world, centre_id=world.centre_c, dose1=0, dose2=0, precaution=2)
    return world


async def test_states_and_districts(client, world) -> None:
    r = await client.get("/api/v2/admin/location/states")
    assert r.status_code == 200
    assert r.json() == {"states": [{"state_id": 7, "state_name": "Chhattisgarh"}], "ttl": 24}
    r = await client.get("/api/v2/admin/location/states", headers={"Accept-Language": "hi_IN"})
    assert r.json()["states"][0]["state_name_l"] == "छत्तीसगढ़"
    r = await client.get("/api/v2/admin/location/districts/7")
    body = r.json()
    assert r.status_code == 200 and body["ttl"] == 24
    assert {"district_id": 109, "district_name": "Raipur"} in body["districts"]
    r = await client.get("/api/v2/admin/location/districts/7",
                         headers={"Accept-Language": "hi_IN"})
    assert {"district_id": 109, "district_name": "Raipur", "district_name_l": "रायपुर"} \
        in r.json()["districts"]


async def test_find_by_pin_and_district_list_only_sessions_with_capacity(client, paid_world
                                                                         ) -> None:
    for path, params in (("findByPin", {"pincode": "492001"}),
                         ("findByDistrict", {"district_id": "109"})):
        r = await client.get(f"/api/v2/appointment/sessions/public/{path}",
                             params={**params, "date": ddmmyyyy(1)})
        assert r.status_code == 200, r.text
        sessions = r.json()["sessions"]
        assert len(sessions) == 2  # centre A (COVISHIELD) and B (COVAXIN); none booked out
        for s in sessions:
            assert_centre(s)
            assert_session(s)
            assert isinstance(s["fee"], str)
            assert s["available_capacity"] > 0
        covaxin = next(s for s in sessions if s["vaccine"] == "COVAXIN")
        assert covaxin["max_age_limit"] == 44 and covaxin["allow_all_age"] is False
        assert covaxin["available_capacity_dose1"] == 4
        assert not any(k.endswith("_l") for k in covaxin)
    r = await client.get("/api/v2/appointment/sessions/public/findByPin",
                         params={"pincode": "492001", "date": ddmmyyyy(2)})
    assert [s["available_capacity_dose2"] for s in r.json()["sessions"]] == [3]


async def test_calendar_lists_seven_days_booked_out_or_not(client, paid_world, maker) -> None:
    await publish(maker, paid_world, centre_id=paid_world.centre_a, dose1=0,
                  day=clock.today() + timedelta(days=3))  # booked out from the start
    await publish(maker, paid_world, centre_id=paid_world.centre_a, dose1=5,
                  day=clock.today() + timedelta(days=8))  # outside the 7 days
    r = await client.get("/api/v2/appointment/sessions/public/calendarByDistrict",
                         params={"district_id": "109", "date": ddmmyyyy(1)},
                         headers={"Accept-Language": "hi_IN"})
    assert r.status_code == 200
    centres = {c["center_id"]: c for c in r.json()["centers"]}
    a, b = centres[paid_world.centre_a], centres[paid_world.centre_b]
    for c in (a, b):
        assert_centre(c)
        assert all(k in c for k in HINDI)
        for s in c["sessions"]:
            assert_session(s)
    assert [s["available_capacity"] for s in a["sessions"]] == [7, 3, 0]
    assert "vaccine_fees" not in a
    assert b["fee_type"] == "Paid" and all(isinstance(f["fee"], str) for f in b["vaccine_fees"])
    assert b["name_l"] == "केंद्र ब" and b["district_name_l"] == "रायपुर"
    r = await client.get("/api/v2/appointment/sessions/public/calendarByPin",
                         params={"pincode": "491226", "date": ddmmyyyy(1)})
    (c,) = r.json()["centers"]
    assert c["sessions"][0]["available_capacity_precaution"] == 2
    assert c["sessions"][0]["available_capacity"] == 2
    r = await client.get("/api/v2/appointment/sessions/public/calendarByCenter",
                         params={"center_id": str(paid_world.centre_a), "date": ddmmyyyy(1)})
    assert r.status_code == 200 and isinstance(r.json()["centers"], dict)
    assert r.json()["centers"]["center_id"] == paid_world.centre_a


async def test_find_by_lat_long_gives_coordinates_as_strings(client, world) -> None:
    r = await client.get("/api/v2/appointment/centers/public/findByLatLong",
                         params={"lat": "21.25", "long": "81.63"})
    assert r.status_code == 200
    centres = r.json()["centers"]
    assert len(centres) == 3 and centres[0]["center_id"] == world.centre_a  # nearest first
    for c in centres:
        assert {"center_id", "name", "district_name", "state_name", "location", "pincode",
                "block_name", "lat", "long"} <= set(c)
        assert isinstance(c["lat"], str) and isinstance(c["long"], str)
        float(c["lat"])


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v2/appointment/sessions/public/findByPin", {"pincode": "492001", "date": "2021-05-31"}),
    ("/api/v2/appointment/sessions/public/findByPin", {"pincode": "492001", "date": "31-02-2021"}),
    ("/api/v2/appointment/sessions/public/findByPin", {"pincode": "49200A", "date": "31-05-2021"}),
    ("/api/v2/appointment/sessions/public/findByPin", {"date": "31-05-2021"}),
    ("/api/v2/appointment/sessions/public/findByDistrict", {"district_id": "999",
                                                             "date": "31-05-2021"}),
    ("/api/v2/appointment/sessions/public/findByDistrict", {"district_id": "x1",
                                                             "date": "31-05-2021"}),
    ("/api/v2/appointment/sessions/public/calendarByDistrict", {"district_id": "109"}),
    ("/api/v2/appointment/sessions/public/calendarByCenter", {"center_id": "99999",
                                                               "date": "31-05-2021"}),
    ("/api/v2/appointment/centers/public/findByLatLong", {"lat": "abc", "long": "81"}),
    ("/api/v2/appointment/centers/public/findByLatLong", {"lat": "nan", "long": "81"}),
    ("/api/v2/admin/location/districts/abc", {}),
    ("/api/v2/admin/location/districts/99", {}),
])
async def test_bad_input_is_a_400_in_the_national_error_shape(client, world, path, params
                                                              ) -> None:
    r = await client.get(path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"errorCode", "error"}
    assert isinstance(body["errorCode"], str) and body["error"]


async def otp_token(client, maker, settings) -> str:
    mobile = next_mobile()
    r = await client.post("/api/v2/auth/public/generateOTP", json={"mobile": mobile})
    assert r.status_code == 200 and set(r.json()) == {"txnId"}
    txn = r.json()["txnId"]
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))[1]
    bad = await client.post("/api/v2/auth/public/confirmOTP",
                            json={"otp": hashlib.sha256(b"000000").hexdigest(), "txnId": txn})
    if code != "000000":
        assert bad.status_code == 401
        assert bad.json() == {"errorCode": "USRAUT0014", "error": bad.json()["error"]}
    r = await client.post("/api/v2/auth/public/confirmOTP",
                          json={"otp": hashlib.sha256(code.encode()).hexdigest(), "txnId": txn})
    assert r.status_code == 200 and set(r.json()) == {"token"}
    assert r.json()["token"].count(".") == 2  # a JWT
    return r.json()["token"]


async def test_protected_surface_needs_a_valid_bearer_token(client, world) -> None:
    for token in (None, "garbage", "a.b.c"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await client.get("/api/v2/appointment/beneficiaries", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"] == "Unauthenticated access!"
        assert set(r.json()) == {"errorCode", "error"}


async def test_partner_registration_booking_and_errors(client, paid_world, maker, settings
                                                       ) -> None:
    h = {"Authorization": f"Bearer {await otp_token(client, maker, settings)}"}
    types = (await client.get("/api/v2/registration/beneficiary/idTypes", headers=h)).json()
    assert {"id": 1, "type": "Aadhaar Card"} in types["types"]
    genders = (await client.get("/api/v2/registration/beneficiary/genders", headers=h)).json()
    assert {"id": 2, "gender": "Female"} in genders["genders"]
    r = await client.post("/api/v2/registration/beneficiary/new", headers=h, json={
        "name": "Lata Sahu", "birth_year": "1985", "gender_id": 2, "photo_id_type": 1,
        "photo_id_number": next_aadhaar(), "comorbidity_ind": "N", "consent_version": "V1"})
    assert r.status_code == 200, r.text
    ref = r.json()["beneficiary_reference_id"]
    assert re.fullmatch(r"\d{14}", ref)
    r = await client.get("/api/v2/appointment/sessions/calendarByPin", headers=h,
                         params={"pincode": "492001", "date": ddmmyyyy(1), "vaccine": "COVAXIN"})
    (centre,) = r.json()["centers"]
    session = centre["sessions"][0]
    assert session["vaccine"] == "COVAXIN"
    body = {"dose": 1, "session_id": session["session_id"], "slot": session["slots"][0],
            "beneficiaries": [ref], "center_id": centre["center_id"]}
    r = await client.post("/api/v2/appointment/schedule", headers=h, json=body)
    # a person with no priority group cannot take AAY/BPL places before they are released
    assert r.status_code == 409 and set(r.json()) == {"errorCode", "error"}
    r = await client.get("/api/v2/appointment/sessions/findByPin", headers=h,
                         params={"pincode": "492001", "date": ddmmyyyy(1),
                                 "vaccine": "COVISHIELD"})
    s = r.json()["sessions"][0]
    body.update(session_id=s["session_id"], slot=s["slots"][0], center_id=s["center_id"])
    r = await client.post("/api/v2/appointment/schedule", headers=h, json=body)
    assert r.status_code == 200 and set(r.json()) == {"appointment_confirmation_no"}
    appt = r.json()["appointment_confirmation_no"]
    listed = (await client.get("/api/v2/appointment/beneficiaries", headers=h)).json()
    (b,) = listed["beneficiaries"]
    assert b["beneficiary_reference_id"] == ref and b["birth_year"] == "1985"
    assert b["vaccination_status"] == "Not Vaccinated"
    assert b["appointments"][0]["appointment_id"] == appt
    assert DATE.match(b["appointments"][0]["date"])
    r = await client.get("/api/v2/appointment/appointmentslip/download", headers=h,
                         params={"appointment_id": appt})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    r = await client.get("/api/v2/registration/certificate/public/download", headers=h,
                         params={"beneficiary_reference_id": ref})
    assert r.status_code == 404 and r.json()["errorCode"] == "CERT0001"
    r = await client.post("/api/v2/appointment/cancel", headers=h,
                          json={"appointment_id": appt, "beneficiariesToCancel": [ref]})
    assert r.status_code == 204
    r = await client.post("/api/v2/registration/beneficiary/delete", headers=h,
                          json={"beneficiary_reference_id": ref})
    assert r.status_code == 204


async def test_full_session_is_409(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1)
    tokens = [await otp_token(client, maker, settings) for _ in range(2)]
    codes = []
    for t in tokens:
        h = {"Authorization": f"Bearer {t}"}
        ref = (await client.post("/api/v2/registration/beneficiary/new", headers=h, json={
            "name": "Racer", "birth_year": 1990, "gender_id": 1, "photo_id_type": 1,
            "photo_id_number": next_aadhaar()})).json()["beneficiary_reference_id"]
        r = await client.post("/api/v2/appointment/schedule", headers=h, json={
            "dose": 1, "session_id": sid, "slot": "09:00AM-11:00AM", "beneficiaries": [ref]})
        codes.append(r.status_code)
    assert codes == [200, 409]


async def test_a_group_booking_works_for_those_left_after_one_is_deleted(
        client, world, maker, settings) -> None:
    """Two people booked under one confirmation number; one deleted (their appointment
    cancelled with them): the other's slip, reschedule and cancel still work by that number
    (they were 404, while the beneficiary list still showed it; a fuzz found it, 29 Nov)."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    later = await publish(maker, world, centre_id=world.centre_a, dose1=5,
                          day=clock.today() + timedelta(days=2))
    h = {"Authorization": f"Bearer {await otp_token(client, maker, settings)}"}
    refs = [(await client.post("/api/v2/registration/beneficiary/new", headers=h, json={
        "name": name, "birth_year": 1990, "gender_id": 2, "photo_id_type": 1,
        "photo_id_number": next_aadhaar()})).json()["beneficiary_reference_id"]
        for name in ("Kept Person", "Gone Person")]
    r = await client.post("/api/v2/appointment/schedule", headers=h, json={
        "dose": 1, "session_id": sid, "slot": "09:00AM-11:00AM", "beneficiaries": refs})
    assert r.status_code == 200, r.text
    appt = r.json()["appointment_confirmation_no"]
    r = await client.post("/api/v2/registration/beneficiary/delete", headers=h,
                          json={"beneficiary_reference_id": refs[1]})
    assert r.status_code == 204
    r = await client.get("/api/v2/appointment/appointmentslip/download", headers=h,
                         params={"appointment_id": appt})
    assert r.status_code == 200 and r.content.startswith(b"%PDF"), r.text
    # the printable slip no longer names the deleted person, nor gives their secret code
    from teeka.booking.pages import slip_signature

    r = await client.get(f"/slip/{appt}",
                         params={"sig": slip_signature(settings, "booking", appt)})
    assert r.status_code == 200 and "Kept Person" in r.text and "Gone Person" not in r.text
    r = await client.get(f"/slip/person/{refs[1]}",
                         params={"sig": slip_signature(settings, "person", refs[1])})
    assert r.status_code == 404
    r = await client.post("/api/v2/appointment/reschedule", headers=h, json={
        "appointment_id": appt, "session_id": later, "slot": "09:00AM-11:00AM"})
    assert r.status_code == 204, r.text
    # the deleted one is no longer of this booking; the one left is cancelled by it
    r = await client.post("/api/v2/appointment/cancel", headers=h,
                          json={"appointment_id": appt, "beneficiariesToCancel": [refs[1]]})
    assert r.status_code == 404
    r = await client.post("/api/v2/appointment/cancel", headers=h,
                          json={"appointment_id": appt, "beneficiariesToCancel": [refs[0]]})
    assert r.status_code == 204, r.text
    # someone else still reaches nothing by that number
    other = {"Authorization": f"Bearer {await otp_token(client, maker, settings)}"}
    r = await client.get("/api/v2/appointment/appointmentslip/download", headers=other,
                         params={"appointment_id": appt})
    assert r.status_code == 404


async def test_the_beneficiary_list_reports_the_vaccine_and_a_finished_schedule(
        client, world, maker, settings) -> None:
    """`vaccine` is the course's vaccine, and `Vaccinated` means its schedule is done: after
    the first of two doses `Partially Vaccinated`, after the second `Vaccinated`."""
    sid = await publish(maker, world, centre_id=world.centre_a, vaccine="COVAXIN")
    h = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, h)

    async def given(number: int) -> None:
        async with session_scope(maker) as db:
            person = (await db.execute(select(Beneficiary).where(
                Beneficiary.reference_id == ref))).scalar_one()
            vs = await db.get(VaccinationSession, sid)
            vaccinator = (await db.execute(select(StaffUser.id).limit(1))).scalar_one()
            db.add(DoseRecord(beneficiary_id=person.id, session_id=sid, centre_id=vs.centre_id,
                              vaccine_id=vs.vaccine_id, dose_number=number, batch="B-1",
                              administered_at=clock.now() - timedelta(days=40 - 30 * number),
                              vaccinator_id=vaccinator, created_at=clock.now()))

    def listed(r) -> dict:
        (b,) = r.json()["beneficiaries"]
        return {"status": b["vaccination_status"], "vaccine": b["vaccine"]}

    r = await client.get("/api/v2/appointment/beneficiaries", headers=h)
    assert listed(r) == {"status": "Not Vaccinated", "vaccine": ""}
    await given(1)
    r = await client.get("/api/v2/appointment/beneficiaries", headers=h)
    assert listed(r) == {"status": "Partially Vaccinated", "vaccine": "COVAXIN"}
    await given(2)
    r = await client.get("/api/v2/appointment/beneficiaries", headers=h)
    assert listed(r) == {"status": "Vaccinated", "vaccine": "COVAXIN"}
