"""Written as a third-party app against the national API would be: plain HTTP against a
running server, no Teeka imports. The OTP comes from the development outbox (in production
it would arrive by SMS)."""

from __future__ import annotations

import hashlib
import random
import re
from datetime import date, timedelta

import httpx


def ddmmyyyy(d: date) -> str:
    return d.strftime("%d-%m-%Y")


def login(api: httpx.Client, mobile: str) -> str:
    txn = api.post("/api/v2/auth/public/generateOTP", json={"mobile": mobile}).json()["txnId"]
    otp = None
    for _ in range(50):  # the SMS worker delivers within a moment
        for m in api.get("/dev/outbox.json").json():
            found = re.search(r"\b(\d{6})\b", m["text"])
            if m["to"] == mobile and found:
                otp = found[1]
                break
        if otp:
            break
        import time

        time.sleep(0.1)
    assert otp, "no OTP arrived"
    r = api.post("/api/v2/auth/public/confirmOTP",
                 json={"otp": hashlib.sha256(otp.encode()).hexdigest(), "txnId": txn})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def free(api: httpx.Client, pincode: int, day: str, session_id: str,
         expect: tuple[int, int] | None = None) -> tuple[int, int]:
    """The session's (available_capacity, available_capacity_dose1). With `expect`, wait for the
    figures to get there: public answers are snapshots, at most a couple of seconds old."""
    import time

    deadline = time.monotonic() + 3
    while True:
        now = _free_once(api, pincode, day, session_id)
        if expect is None or now == expect or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def _free_once(api: httpx.Client, pincode: int, day: str, session_id: str) -> tuple[int, int]:
    r = api.get("/api/v2/appointment/sessions/public/calendarByPin",
                params={"pincode": str(pincode), "date": day})
    assert r.status_code == 200
    for c in r.json()["centers"]:
        for s in c["sessions"]:
            if s["session_id"] == session_id:
                return s["available_capacity"], s["available_capacity_dose1"]
    raise AssertionError("session vanished")


def test_a_partner_app_books_reschedules_and_cancels(live_server: str) -> None:
    api = httpx.Client(base_url=live_server, timeout=30)
    state = api.get("/api/v2/admin/location/states").json()["states"][0]
    districts = api.get(f"/api/v2/admin/location/districts/{state['state_id']}").json()
    district_id = districts["districts"][0]["district_id"]
    tomorrow = ddmmyyyy(date.today() + timedelta(days=1))
    cal = api.get("/api/v2/appointment/sessions/public/calendarByDistrict",
                  params={"district_id": str(district_id), "date": tomorrow}).json()
    pincode = cal["centers"][0]["pincode"]
    sessions = api.get("/api/v2/appointment/sessions/public/findByPin",
                       params={"pincode": str(pincode), "date": tomorrow}).json()["sessions"]
    usable = [s for s in sessions if s["available_capacity_dose1"] >= 1
              and len(s["slots"]) >= 2 and s["min_age_limit"] >= 18]
    assert usable, sessions

    token = login(api, f"9{random.randrange(10**8, 10**9)}")
    auth = {"Authorization": f"Bearer {token}"}
    r = api.post("/api/v2/registration/beneficiary/new", headers=auth, json={
        "name": "Third Party", "birth_year": str(date.today().year - 50), "gender_id": 1,
        "photo_id_type": 1, "photo_id_number": str(random.randrange(2 * 10**11, 10**12)),
        "comorbidity_ind": "N", "consent_version": "V1"})
    assert r.status_code == 200, r.text
    ref = r.json()["beneficiary_reference_id"]

    # Some places may be kept for priority groups; a client tries the sessions in turn.
    for session in usable:
        before, before1 = free(api, pincode, tomorrow, session["session_id"])
        r = api.post("/api/v2/appointment/schedule", headers=auth, json={
            "dose": 1, "session_id": session["session_id"], "slot": session["slots"][0],
            "beneficiaries": [ref], "center_id": session["center_id"]})
        if r.status_code == 200:
            break
        assert r.status_code in (409, 422) and set(r.json()) == {"errorCode", "error"}
        assert free(api, pincode, tomorrow, session["session_id"],
                expect=(before, before1)) == (before, before1)
    assert r.status_code == 200, r.text
    appointment_id = r.json()["appointment_confirmation_no"]
    assert free(api, pincode, tomorrow, session["session_id"],
                expect=(before - 1, before1 - 1)) == (before - 1, before1 - 1)

    pdf = api.get("/api/v2/appointment/appointmentslip/download", headers=auth,
                  params={"appointment_id": appointment_id})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:4] == b"%PDF"

    r = api.post("/api/v2/appointment/reschedule", headers=auth, json={
        "appointment_id": appointment_id, "session_id": session["session_id"],
        "slot": session["slots"][1]})
    assert r.status_code == 204, r.text
    assert free(api, pincode, tomorrow, session["session_id"],
                expect=(before - 1, before1 - 1)) == (before - 1, before1 - 1)
    booked = api.get("/api/v2/appointment/beneficiaries", headers=auth).json()
    assert booked["beneficiaries"][0]["appointments"][0]["slot"] == session["slots"][1]

    r = api.post("/api/v2/appointment/cancel", headers=auth, json={
        "appointment_id": appointment_id, "beneficiariesToCancel": [ref]})
    assert r.status_code == 204, r.text
    assert free(api, pincode, tomorrow, session["session_id"],
                expect=(before, before1)) == (before, before1)
    assert api.get("/api/v2/appointment/beneficiaries",
                   headers=auth).json()["beneficiaries"][0]["appointments"] == []
