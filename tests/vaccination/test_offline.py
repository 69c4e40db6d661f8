"""Vaccinating offline from the day sheet, through the JSON API: the sheet lists the day's
appointments (no secret code, ID numbers masked); the doses given offline are recorded when
the centre is back online, each exactly once however often the sheet is sent; a dose the
server refuses is kept and listed to resolve, never lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from teeka.booking.repository import recount_mismatches
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry, DoseRecord, OfflineDose
from teeka.vaccination import repository as repo
from tests.factories import add_beneficiary, login_citizen, next_mobile, publish

SLOT = "09:00AM-11:00AM"


async def booked(client: httpx.AsyncClient, maker, world, settings, sid: str, n: int
                 ) -> list[dict[str, str]]:
    """`n` citizens, one person each, booked into session `sid`: appointment, code, ref."""
    out = []
    for _ in range(n):
        mobile = next_mobile()
        citizen = await login_citizen(client, maker, settings, mobile)
        ref = await add_beneficiary(client, citizen)
        r = await client.post("/api/v1/appointments",
                              headers={**citizen, "Idempotency-Key": f"offline-{ref}"},
                              json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
        assert r.status_code == 201, r.text
        people = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()
        code = next(b["secret_code"] for b in people if b["reference_id"] == ref)
        out.append({"appointment_id": r.json()["appointment_ids"][0], "code": code, "ref": ref,
                    "citizen": citizen, "mobile": mobile})
    return out


def earlier_today() -> datetime:
    """A moment already past today (local), whatever the time of day the tests run at."""
    return max(clock.local_datetime(clock.today(), 0, 0), clock.now() - timedelta(minutes=2))


def dose(p: dict[str, Any], sid: str, at, *, code: str | None = None,
         batch: str = "4121Z025") -> dict[str, str]:
    return {"appointment_id": p["appointment_id"], "session_id": sid,
            "secret_code": code or p["code"], "batch": batch, "given_at": at.isoformat()}


async def count(maker, query) -> int:
    async with session_scope(maker) as db:
        return int((await db.execute(query)).scalar_one())


async def test_the_day_sheet_lists_the_day_and_nothing_secret(client, world, maker,
                                                             settings) -> None:
    tomorrow = clock.today() + timedelta(days=1)
    sid = await publish(maker, world, centre_id=world.centre_a, day=tomorrow, dose1=5)
    people = await booked(client, maker, world, settings, sid, 2)
    r = await client.get(f"/api/v1/centre/day-sheet?date={tomorrow.isoformat()}",
                         headers=world.headers("vaccinator_a"))
    assert r.status_code == 200, r.text
    sheet = r.json()
    assert sheet["centre_id"] == world.centre_a and sheet["date"] == tomorrow.isoformat()
    assert sorted(a["appointment_id"] for a in sheet["appointments"]) == sorted(
        p["appointment_id"] for p in people)
    assert all(a["id_number_masked"].startswith("X") for a in sheet["appointments"])
    assert "secret_code" not in r.text
    # another centre's vaccinator sees their own centre's day, not this one
    r = await client.get(f"/api/v1/centre/day-sheet?date={tomorrow.isoformat()}",
                         headers=world.headers("vaccinator_c"))
    assert r.status_code == 200 and r.json()["appointments"] == []
    # a citizen, a district officer: refused
    r = await client.get(f"/api/v1/centre/day-sheet?date={tomorrow.isoformat()}",
                         headers=people[0]["citizen"])
    assert r.status_code in (401, 403)
    r = await client.get(f"/api/v1/centre/day-sheet?date={tomorrow.isoformat()}",
                         headers=world.headers("raipur_admin"))
    assert r.status_code == 403
    far = clock.today() + timedelta(days=3)
    r = await client.get(f"/api/v1/centre/day-sheet?date={far.isoformat()}",
                         headers=world.headers("vaccinator_a"))
    assert r.status_code == 422 and r.json()["code"] == "SheetDayOutOfRange"


async def test_doses_given_offline_are_recorded_once_when_the_centre_is_back(
        client, world, maker, settings) -> None:
    """The network was down all day: the doses are sent the next morning, then the same sheet
    again (a retry after a lost answer): each dose is recorded once, at the time it was given,
    and the second sending records nothing new."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    people = await booked(client, maker, world, settings, sid, 3)
    at = clock.local_datetime(today, 10, 15)
    sheet = [dose(p, sid, at) for p in people[:2]]  # the third did not come
    clock.shift(timedelta(days=1))

    # the next morning, signed in again
    url, staff = "/api/v1/centre/day-sheet", world.headers("vaccinator_a")
    r = await client.post(url, headers=staff, json={"doses": sheet})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["recorded"], body["already_recorded"], body["refused"]) == (2, 0, 0)
    r = await client.post(url, headers=staff, json={"doses": sheet + sheet[:1]})
    assert r.status_code == 200, r.text
    assert (r.json()["recorded"], r.json()["already_recorded"]) == (0, 3)
    assert await count(maker, select(func.count()).select_from(DoseRecord)) == 2
    async with session_scope(maker) as db:
        times = (await db.execute(select(DoseRecord.administered_at))).scalars().all()
        assert set(times) == {at}
        assert await recount_mismatches(db) == []
    # typed at the centre as well: the record already made, not a second one
    r = await client.post("/api/v1/centre/doses", headers=staff, json={
        "appointment_id": people[0]["appointment_id"], "secret_code": people[0]["code"],
        "batch": "4121Z025"})
    assert r.status_code in (200, 422), r.text  # the day is over: at most the record made
    assert await count(maker, select(func.count()).select_from(DoseRecord)) == 2


async def test_a_refused_dose_is_kept_to_resolve_and_a_corrected_sheet_records_it(
        client, world, maker, settings) -> None:
    """A code copied wrong is refused (and counts towards the person's daily wrong tries, as
    one typed at the centre); the others on the sheet are recorded all the same; the dose
    refused is listed to resolve until a corrected sheet records it. A dose for a person
    moved to another session after the sheet was downloaded is refused and kept too."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    people = await booked(client, maker, world, settings, sid, 3)
    at = earlier_today()
    wrong = f"{(int(people[0]['code']) + 1) % 10_000:04d}"
    url, staff = "/api/v1/centre/day-sheet", world.headers("vaccinator_a")
    # the third person cancelled after the sheet was downloaded
    r = await client.post(f"/api/v1/appointments/{people[2]['appointment_id']}/cancel",
                          headers=people[2]["citizen"])
    assert r.status_code == 204, r.text

    r = await client.post(url, headers=staff, json={"doses": [
        dose(people[0], sid, at, code=wrong), dose(people[1], sid, at),
        dose(people[2], sid, at)]})
    assert r.status_code == 200, r.text
    rows = {d["appointment_id"]: d for d in r.json()["doses"]}
    assert rows[people[0]["appointment_id"]]["code"] == "SecretCodeWrong"
    assert rows[people[1]["appointment_id"]]["outcome"] == "recorded"
    assert rows[people[2]["appointment_id"]]["code"] == "AppointmentChanged"
    assert await count(maker, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "vaccination.secret_code.rejected")) == 1
    async with session_scope(maker) as db:
        listed = await repo.offline_to_resolve(db, world.centre_a)
        assert {v.appointment_id for v in listed} == {people[0]["appointment_id"],
                                                      people[2]["appointment_id"]}
    assert await count(maker, select(func.count()).select_from(OfflineDose)) == 3

    r = await client.post(url, headers=staff, json={"doses": [dose(people[0], sid, at)]})
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    async with session_scope(maker) as db:
        listed = await repo.offline_to_resolve(db, world.centre_a)
        assert [v.appointment_id for v in listed] == [people[2]["appointment_id"]]


async def test_what_a_sheet_may_not_do(client, world, maker, settings) -> None:
    """Another centre's vaccinator cannot record this centre's doses; a time later than now,
    on another day, or without a time zone is refused; a sheet older than the sync days is
    refused."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    [p] = await booked(client, maker, world, settings, sid, 1)
    url = "/api/v1/centre/day-sheet"
    r = await client.post(url, headers=world.headers("vaccinator_c"),
                          json={"doses": [dose(p, sid, clock.local_datetime(today, 9, 0))]})
    assert r.status_code == 200 and r.json()["doses"][0]["code"] == "WrongCentre", r.text
    staff = world.headers("vaccinator_a")
    for at in (clock.now() + timedelta(hours=1), clock.local_datetime(today, 9, 0)
               - timedelta(days=1)):
        r = await client.post(url, headers=staff, json={"doses": [dose(p, sid, at)]})
        assert r.json()["doses"][0]["code"] == "Invalid", r.text
    naive = {**dose(p, sid, clock.now()), "given_at": "2026-01-01T10:00:00"}
    r = await client.post(url, headers=staff, json={"doses": [naive]})
    assert r.status_code == 400 and r.json()["fields"] == ["doses.0.given_at"], r.text
    clock.shift(timedelta(days=8))
    r = await client.post(url, headers=world.headers("vaccinator_a"),
                          json={"doses": [dose(p, sid, clock.local_datetime(today, 9, 0))]})
    assert r.json()["doses"][0]["code"] == "SheetDayOutOfRange", r.text
    assert await count(maker, select(func.count()).select_from(DoseRecord)) == 0


async def test_a_sheet_reveals_nothing_of_another_centre_and_counts_nothing_twice(
        client, world, maker, settings) -> None:
    """Another centre's appointment on this centre's sheet: refused, nobody named, and kept
    apart from the other centre's own record of it. A dose resent after it was recorded (even
    with a code copied wrong) stays recorded; a corrected second line for a refused one is
    tried; a moment out of range or an id with a NUL is one refused line, not a failed upload."""
    today = clock.today()
    here = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    there = await publish(maker, world, centre_id=world.centre_c, day=today, dose1=5)
    a1, a2, a3 = await booked(client, maker, world, settings, here, 3)
    at = earlier_today()
    url = "/api/v1/centre/day-sheet"
    staff_a, staff_c = world.headers("vaccinator_a"), world.headers("vaccinator_c")

    # centre C puts centre A's appointment on its own session
    r = await client.post(url, headers=staff_c, json={"doses": [dose(a1, there, at)]})
    assert r.status_code == 200, r.text
    [row] = r.json()["doses"]
    assert row["code"] == "AppointmentChanged" and a1["ref"] not in r.text
    async with session_scope(maker) as db:
        assert [v.name for v in await repo.offline_to_resolve(db, world.centre_c)] == [""]

    wrong = f"{(int(a1['code']) + 1) % 10_000:04d}"
    r = await client.post(url, headers=staff_a, json={"doses": [
        dose(a1, here, at, code=wrong), dose(a1, here, at),  # corrected on a second line
        dose(a2, here, at), {**dose(a3, here, at), "given_at": "0001-01-01T00:10:00+05:30"},
        {**dose(a3, here, at), "appointment_id": "x\u0000y"}]})
    assert r.status_code == 200, r.text
    outcomes = [(d["outcome"], d["code"]) for d in r.json()["doses"]]
    assert outcomes == [("refused", "SecretCodeWrong"), ("recorded", None), ("recorded", None),
                        ("refused", "Invalid"), ("refused", "NotFound")], outcomes
    async with session_scope(maker) as db:
        listed = await repo.offline_to_resolve(db, world.centre_a)
        assert listed == []  # the wrong code's line was answered by its corrected copy
        assert [v.appointment_id for v in await repo.offline_to_resolve(
            db, world.centre_c)] == [a1["appointment_id"]]  # two centres, two records

    # the same dose sent again with the code copied wrong: it stays recorded, no wrong try
    tries = select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "vaccination.secret_code.rejected")
    before = await count(maker, tries)
    r = await client.post(url, headers=staff_a, json={"doses": [dose(a2, here, at, code=wrong)]})
    assert r.json()["doses"][0]["outcome"] == "already_recorded", r.text
    assert await count(maker, tries) == before
    async with session_scope(maker) as db:
        kept = (await db.execute(select(OfflineDose.outcome).where(
            OfflineDose.appointment_id == a2["appointment_id"]))).scalar_one()
        assert kept == "recorded"
    assert await count(maker, select(func.count()).select_from(DoseRecord)) == 2


async def test_walkins_given_offline_count_once_against_the_allowance(
        client, world, maker, settings) -> None:
    """A session with two walk-in places: three registered people without appointments were
    vaccinated offline. Two are recorded (once, however often the sheet is sent); the third
    finds the allowance used up: refused, kept and listed to resolve, never lost. The CSV
    offers blank walk-in lines for the session."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5, walkins=2)
    people = []
    for _ in range(3):
        citizen = await login_citizen(client, maker, settings, next_mobile())
        ref = await add_beneficiary(client, citizen)
        listed = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()
        people.append((ref, next(b["secret_code"] for b in listed if b["reference_id"] == ref)))
    at = earlier_today()
    sheet = {"doses": [{"reference_id": ref, "session_id": sid, "secret_code": code,
                        "batch": "4121Z025", "given_at": at.isoformat()} for ref, code in people]}
    url, staff = "/api/v1/centre/day-sheet", world.headers("vaccinator_a")
    r = await client.post(url, headers=staff, json=sheet)
    assert r.status_code == 200, r.text
    codes = sorted((d["outcome"], d["code"] or "") for d in r.json()["doses"])
    assert codes == [("recorded", ""), ("recorded", ""), ("refused", "WalkinsExhausted")], codes
    r = await client.post(url, headers=staff, json=sheet)
    assert sorted(d["outcome"] for d in r.json()["doses"]) == [
        "already_recorded", "already_recorded", "refused"]
    assert await count(maker, select(func.count()).select_from(DoseRecord)) == 2
    async with session_scope(maker) as db:
        listed = await repo.offline_to_resolve(db, world.centre_a)
        assert len(listed) == 1 and listed[0].reason == "WalkinsExhausted"
        assert listed[0].reference_id in {ref for ref, _code in people}
        assert await recount_mismatches(db) == []


async def test_a_walkin_line_names_nobody_until_their_code_is_right(
        client, world, maker, settings) -> None:
    """A reference id typed on a walk-in line does not tell the centre whose it is unless the
    person's secret code is right; a line naming nobody known is still kept; a recorded
    walk-in sent again with its code copied wrong stays recorded and costs no wrong try."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5, walkins=3)
    citizen = await login_citizen(client, maker, settings, next_mobile())
    ref = await add_beneficiary(client, citizen, name="Stranger Person")
    listed = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()
    code = next(b["secret_code"] for b in listed if b["reference_id"] == ref)
    wrong = f"{(int(code) + 1) % 10_000:04d}"
    at = earlier_today().isoformat()
    url, staff = "/api/v1/centre/day-sheet", world.headers("vaccinator_a")

    def line(**fields) -> dict:
        return {"reference_id": ref, "session_id": sid, "secret_code": code, "batch": "B1",
                "given_at": at} | fields

    r = await client.post(url, headers=staff, json={"doses": [
        line(batch="!!"), line(reference_id="", secret_code="1234")]})
    assert r.status_code == 200, r.text
    assert "Stranger" not in r.text and ref not in r.text
    async with session_scope(maker) as db:
        assert all(not v.name for v in await repo.offline_to_resolve(db, world.centre_a))

    r = await client.post(url, headers=staff, json={"doses": [line()]})
    assert r.json()["doses"][0]["outcome"] == "recorded", r.text
    tries = select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "vaccination.secret_code.rejected")
    before = await count(maker, tries)
    r = await client.post(url, headers=staff, json={"doses": [line(secret_code=wrong)]})
    assert r.json()["doses"][0]["outcome"] == "already_recorded", r.text
    assert await count(maker, tries) == before
