"""At the centre, through the JSON API: find, check the code, record once, walk-ins."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka.booking.repository import recount_mismatches
from teeka.kit import clock
from teeka.models import (
    Appointment,
    AuditEntry,
    CapacityBucket,
    DoseRecord,
    OutboxMessage,
    VaccinationSession,
)
from tests.factories import add_beneficiary, login_citizen, next_aadhaar, next_mobile, publish

SLOT = "09:00AM-11:00AM"
Maker = async_sessionmaker[AsyncSession]

# ---------------------------------------------------------------- helpers (see the report:
# `book` and `secret_code_of` would sit well in tests/factories.py)

_keys = iter(range(10**6))


async def book(client: httpx.AsyncClient, headers: dict[str, str], session_id: str,
               refs: list[str], dose: int | None = 1) -> dict[str, Any]:
    r = await client.post("/api/v1/appointments",
                          headers={**headers, "Idempotency-Key": f"vacc-key-{next(_keys):06d}"},
                          json={"session_id": session_id, "slot": SLOT, "beneficiaries": refs,
                                "dose": dose})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def secret_code_of(client: httpx.AsyncClient, citizen: dict[str, str], ref: str) -> str:
    r = await client.get("/api/v1/beneficiaries", headers=citizen)
    assert r.status_code == 200, r.text
    code: str = next(b["secret_code"] for b in r.json() if b["reference_id"] == ref)
    return code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10_000:04d}"


async def scalar(maker: Maker, query: Any) -> Any:
    async with maker() as s:
        return (await s.execute(query)).scalar()


async def dose_rows(maker: Maker) -> int:
    return int(await scalar(maker, select(func.count()).select_from(DoseRecord)))


async def booked_places(maker: Maker, session_id: str) -> int:
    return int(await scalar(maker, select(func.coalesce(func.sum(CapacityBucket.booked), 0))
                            .where(CapacityBucket.session_id == session_id)))


async def audit_count(maker: Maker, action: str) -> int:
    return int(await scalar(maker, select(func.count()).select_from(AuditEntry)
                            .where(AuditEntry.action == action)))


@dataclass(frozen=True)
class Booked:
    session_id: str
    citizen: dict[str, str]
    mobile: str
    ref: str
    appt: str
    code: str


async def booked_today(client: httpx.AsyncClient, maker: Maker, world: Any, settings: Any, *,
                       centre_id: int | None = None, **publish_args: Any) -> Booked:
    """A session today, and a citizen with one beneficiary booked into it."""
    sid = await publish(maker, world, centre_id=centre_id or world.centre_a, day=clock.today(),
                        **publish_args)
    mobile = next_mobile()
    citizen = await login_citizen(client, maker, settings, mobile)
    ref = await add_beneficiary(client, citizen)
    appt = (await book(client, citizen, sid, [ref]))["appointment_ids"][0]
    return Booked(session_id=sid, citizen=citizen, mobile=mobile, ref=ref, appt=appt,
                  code=await secret_code_of(client, citizen, ref))


async def post_dose(client: httpx.AsyncClient, world: Any, appt: str, code: str,
                    who: str = "vaccinator_a", batch: str = "4121Z025") -> httpx.Response:
    return await client.post("/api/v1/centre/doses", headers=world.headers(who),
                             json={"appointment_id": appt, "secret_code": code, "batch": batch})


# ---------------------------------------------------------------- appointments

async def test_vaccinator_finds_the_person_and_records_the_dose(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    sid, citizen, ref, appt, code = b.session_id, b.citizen, b.ref, b.appt, b.code
    outbox_before = int(await scalar(maker, select(func.count()).select_from(OutboxMessage)))

    r = await client.get("/api/v1/centre/appointments", params={"reference_id": ref},
                         headers=world.headers("vaccinator_a"))
    assert r.status_code == 200, r.text
    [found] = r.json()
    assert found["appointment_id"] == appt and found["status"] == "booked"
    assert found["id_number_masked"].startswith("XXXX-XXXX-")
    # the code is in no field (searching the whole text found its four digits by chance in
    # an id or a time now and then)
    assert "secret_code" not in found
    assert code not in [str(v) for v in found.values()]

    r = await post_dose(client, world, appt, code, batch="4121z025")
    assert r.status_code == 201, r.text
    dose = r.json()
    assert dose["already_recorded"] is False
    assert (dose["dose"], dose["vaccine"], dose["batch"]) == (1, "COVISHIELD", "4121Z025")
    assert dose["vaccinator_id"] == world.staff["vaccinator_a"].id
    assert dose["appointment_id"] == appt and dose["walk_in"] is False
    assert "secret_code" not in dose

    # The appointment is completed; its place stays used.
    r = await client.get(f"/api/v1/appointments/{appt}", headers=citizen)
    assert r.json()["status"] == "completed"
    assert await booked_places(maker, sid) == 1
    async with maker() as s:
        assert await recount_mismatches(s) == []
    # The citizen sees the dose; an SMS is queued; the change is audited.
    r = await client.get("/api/v1/beneficiaries", headers=citizen)
    assert next(p for p in r.json() if p["reference_id"] == ref)["doses"] == 1
    texts = (await scalar(maker, select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.recipient == b.mobile, OutboxMessage.body.contains("COVISHIELD"))))
    assert texts == 1  # in the account's language (Hindi by default), so only the code is sure
    assert int(await scalar(maker, select(func.count()).select_from(OutboxMessage))) == \
        outbox_before + 1
    assert await audit_count(maker, "vaccination.dose.recorded") == 1
    # The search now shows it as done.
    r = await client.get("/api/v1/centre/appointments", params={"reference_id": ref},
                         headers=world.headers("vaccinator_a"))
    assert [a["status"] for a in r.json()] == ["completed"]


async def test_repeated_submission_returns_the_first_record(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    sid, appt, code = b.session_id, b.appt, b.code
    first = await post_dose(client, world, appt, code)
    again = await post_dose(client, world, appt, code, batch="OTHER-BATCH")
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["already_recorded"] is True
    assert again.json()["dose_record_id"] == first.json()["dose_record_id"]
    assert again.json()["batch"] == first.json()["batch"] == "4121Z025"
    assert await dose_rows(maker) == 1
    assert await audit_count(maker, "vaccination.dose.recorded") == 1
    assert await booked_places(maker, sid) == 1
    assert int(await scalar(maker, select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.recipient == b.mobile, OutboxMessage.body.contains("COVISHIELD")))) == 1


async def test_simultaneous_double_submission_records_one_dose(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    """Every appointment of a family is submitted twice at the same moment (on PostgreSQL the
    requests really overlap; SQLite runs them one after the other): one dose each."""
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today())
    citizen = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, citizen, name=f"Person {n}") for n in "ABCD"]
    appts = (await book(client, citizen, sid, refs))["appointment_ids"]
    codes = [await secret_code_of(client, citizen, ref) for ref in refs]

    results = await asyncio.gather(*(post_dose(client, world, appt, code)
                                     for appt, code in zip(appts, codes, strict=True)
                                     for _ in range(2)))
    for first, second in zip(results[::2], results[1::2], strict=True):
        assert sorted([first.status_code, second.status_code]) == [200, 201], \
            (first.text, second.text)
        assert first.json()["dose_record_id"] == second.json()["dose_record_id"]
    assert await dose_rows(maker) == 4
    assert await audit_count(maker, "vaccination.dose.recorded") == 4
    async with maker() as s:
        statuses = (await s.execute(select(Appointment.status))).scalars().all()
        assert await recount_mismatches(s) == []
    assert statuses == ["completed"] * 4
    assert await booked_places(maker, sid) == 4


async def test_wrong_secret_code_is_refused_and_audited_without_the_code(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    ref, appt, code = b.ref, b.appt, b.code
    bad = wrong(code)
    r = await post_dose(client, world, appt, bad)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "SecretCodeWrong"
    for shape in ("12a4", "１２３４"):
        r = await post_dose(client, world, appt, shape)
        assert r.status_code == 403, r.text
    assert await dose_rows(maker) == 0
    assert await scalar(maker, select(Appointment.status).where(Appointment.id == appt)) \
        == "booked"
    async with maker() as s:
        entries = (await s.execute(select(AuditEntry).where(
            AuditEntry.action == "vaccination.secret_code.rejected"))).scalars().all()
    assert len(entries) == 3
    assert entries[0].object_id == ref
    assert entries[0].actor == f"staff:{world.staff['vaccinator_a'].id}"
    assert all(bad not in str(e.detail) and code not in str(e.detail) for e in entries)
    # The right code still works afterwards.
    assert (await post_dose(client, world, appt, code)).status_code == 201


async def test_secret_code_guessing_is_locked_after_five_wrong_tries(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    bad = wrong(b.code)
    for _ in range(5):
        assert (await post_dose(client, world, b.appt, bad)).status_code == 403
    # now even the right code is refused for the rest of the day: no brute force of 10,000 codes
    r = await post_dose(client, world, b.appt, b.code)
    assert (r.status_code, r.json()["code"]) == (429, "SecretCodeLocked")
    assert await dose_rows(maker) == 0


async def test_wrong_codes_sent_at_once_count_against_the_same_five_tries(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    """Twelve wrong codes at the same moment (on PostgreSQL they really overlap): five are
    compared and refused, the rest find the day's tries used up. Until 27 Nov each read the
    count before any was written, and all twelve were compared."""
    b = await booked_today(client, maker, world, settings)
    guesses = [f"{(int(b.code) + k) % 10_000:04d}" for k in range(1, 13)]
    results = await asyncio.gather(*(post_dose(client, world, b.appt, g) for g in guesses))
    codes = sorted(r.json()["code"] for r in results)
    assert codes == ["SecretCodeLocked"] * 7 + ["SecretCodeWrong"] * 5, codes
    assert await audit_count(maker, "vaccination.secret_code.rejected") == 5
    r = await post_dose(client, world, b.appt, b.code)
    assert (r.status_code, r.json()["code"]) == (429, "SecretCodeLocked")


async def test_a_dose_recorded_while_the_appointment_moves_stays_with_one_of_them(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    """The vaccinator records the dose of today's appointment while the citizen moves it to
    tomorrow at another centre, for several people at once: either the dose is recorded here
    and the move refused, or the move is made and the dose refused. Until 27 Nov both could
    succeed: the appointment completed at tomorrow's centre, and today's place, used, free to
    book again."""
    from datetime import timedelta

    today = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=10)
    tomorrow = await publish(maker, world, centre_id=world.centre_b,
                             day=clock.today() + timedelta(days=1), dose1=10)
    people = []
    for _ in range(6):
        citizen = await login_citizen(client, maker, settings)
        ref = await add_beneficiary(client, citizen)
        appt = (await book(client, citizen, today, [ref]))["appointment_ids"][0]
        people.append((citizen, appt, await secret_code_of(client, citizen, ref)))

    async def move(citizen: dict[str, str], appt: str) -> httpx.Response:
        return await client.post(f"/api/v1/appointments/{appt}/reschedule", headers=citizen,
                                  json={"session_id": tomorrow, "slot": SLOT})

    results = await asyncio.gather(*(call for citizen, appt, code in people
                                     for call in (move(citizen, appt),
                                                  post_dose(client, world, appt, code))))
    for moved, dosed in zip(results[::2], results[1::2], strict=True):
        assert sorted([moved.status_code, dosed.status_code]) in ([200, 403], [200, 409],
                                                                  [201, 409]), \
            (moved.text, dosed.text)
    async with maker() as s:
        assert await recount_mismatches(s) == []
        rows = (await s.execute(select(Appointment.status, Appointment.session_id))).all()
    done = await dose_rows(maker)
    assert sorted(rows) == sorted([("completed", today)] * done
                                  + [("booked", tomorrow)] * (6 - done))


async def test_vaccinator_of_another_centre_cannot_record(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    citizen, ref, appt, code = b.citizen, b.ref, b.appt, b.code
    r = await post_dose(client, world, appt, code, who="vaccinator_c")
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "WrongCentre"
    r = await client.get("/api/v1/centre/appointments", params={"reference_id": ref},
                         headers=world.headers("vaccinator_c"))
    assert r.status_code == 200 and r.json() == []
    for headers in (world.headers("helpdesk"), world.headers("raipur_admin"), citizen):
        r = await client.post("/api/v1/centre/doses", headers=headers, json={
            "appointment_id": appt, "secret_code": code, "batch": "B1"})
        assert r.status_code == 403, r.text
        r = await client.get("/api/v1/centre/appointments", params={"reference_id": ref},
                             headers=headers)
        assert r.status_code == 403, r.text
    r = await client.post("/api/v1/centre/doses",
                          json={"appointment_id": appt, "secret_code": code, "batch": "B1"})
    assert r.status_code == 401
    assert await dose_rows(maker) == 0
    # No trace of a code check either: the centre was refused before the code was looked at.
    assert await audit_count(maker, "vaccination.secret_code.rejected") == 0


async def test_appointment_of_another_day_is_refused(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a)  # tomorrow
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    appt = (await book(client, citizen, sid, [ref]))["appointment_ids"][0]
    r = await post_dose(client, world, appt, await secret_code_of(client, citizen, ref))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "NotToday"
    assert await dose_rows(maker) == 0
    r = await client.get("/api/v1/centre/appointments", params={"reference_id": ref},
                         headers=world.headers("vaccinator_a"))
    assert r.json() == []


async def test_mobile_search_lists_the_account_people_due_here_today(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today())
    elsewhere = await publish(maker, world, centre_id=world.centre_b, day=clock.today())
    mobile = next_mobile()
    citizen = await login_citizen(client, maker, settings, mobile)
    asha = await add_beneficiary(client, citizen, name="Asha Verma")
    ravi = await add_beneficiary(client, citizen, name="Ravi Verma")
    mina = await add_beneficiary(client, citizen, name="Mina Verma")
    await add_beneficiary(client, citizen, name="Not Booked")
    await book(client, citizen, sid, [asha, ravi])
    await book(client, citizen, elsewhere, [mina])
    other = await login_citizen(client, maker, settings)
    await book(client, other, sid, [await add_beneficiary(client, other)])

    r = await client.get("/api/v1/centre/appointments", params={"mobile": f"+91 {mobile}"},
                         headers=world.headers("vaccinator_a"))
    assert r.status_code == 200, r.text
    assert sorted(a["reference_id"] for a in r.json()) == sorted([asha, ravi])
    assert all("secret_code" not in a and a["id_number_masked"].startswith("XXXX-XXXX-")
               for a in r.json())
    for bad in ({"mobile": "12345"}, {}, {"mobile": mobile, "reference_id": asha},
                {"reference_id": "12AB"}):
        r = await client.get("/api/v1/centre/appointments", params=bad,
                             headers=world.headers("vaccinator_a"))
        assert r.status_code == 400, (bad, r.text)


async def test_batch_is_required_and_checked(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings)
    appt, code = b.appt, b.code
    for batch in ("", "A" * 41, "AB 12", "AB_12"):
        r = await post_dose(client, world, appt, code, batch=batch)
        assert r.status_code == 400, (batch, r.text)
    r = await client.post("/api/v1/centre/doses", headers=world.headers("vaccinator_a"),
                          json={"appointment_id": appt, "secret_code": code})
    assert r.status_code == 400
    assert await dose_rows(maker) == 0


# ---------------------------------------------------------------- the helper desk's person

async def test_assisted_person_is_vaccinated_with_the_slip_alone(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today())
    helpdesk = world.headers("helpdesk")
    r = await client.post("/api/v1/helpdesk/beneficiaries", headers=helpdesk, json={
        "name": "Sukhiya Bai", "birth_year": 1950, "gender": "female", "id_type": "aadhaar",
        "id_number": next_aadhaar()})
    assert r.status_code == 201, r.text
    slip_url = r.json()["slip_url"]
    ref = r.json()["reference_id"]
    await book(client, helpdesk, sid, [ref])

    # The person brings only the printed slip: read the reference id and the code from it.
    page = await client.get(slip_url, headers={"Accept-Language": "en"})
    assert page.status_code == 200, page.text
    slip_ref = re.search(r'id="slip-reference-id">(\d{14})</span>', page.text)
    slip_code = re.search(r'id="slip-secret-code">(\d{4})</span>', page.text)
    assert slip_ref and slip_code, page.text
    assert slip_ref[1] == ref
    outbox_before = int(await scalar(maker, select(func.count()).select_from(OutboxMessage)))

    vaccinator = world.headers("vaccinator_a")
    r = await client.get("/api/v1/centre/appointments", params={"reference_id": slip_ref[1]},
                         headers=vaccinator)
    [found] = r.json()
    r = await post_dose(client, world, found["appointment_id"], slip_code[1])
    assert r.status_code == 201, r.text
    assert r.json()["reference_id"] == ref and r.json()["dose"] == 1
    assert await dose_rows(maker) == 1
    # Nobody to text: no SMS was queued.
    assert int(await scalar(maker, select(func.count()).select_from(OutboxMessage))) \
        == outbox_before


# ---------------------------------------------------------------- walk-ins

async def walkin(client: httpx.AsyncClient, world: Any, sid: str, ref: str, code: str,
                 who: str = "vaccinator_a") -> httpx.Response:
    return await client.post("/api/v1/centre/walkins", headers=world.headers(who), json={
        "session_id": sid, "reference_id": ref, "secret_code": code, "batch": "WB-7"})


async def walkins_used(maker: Maker, sid: str) -> int:
    return int(await scalar(maker, select(VaccinationSession.walkins_used)
                            .where(VaccinationSession.id == sid)))


async def test_walkins_use_the_allowance_never_the_booked_places(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=3,
                        walkins=1)
    citizen = await login_citizen(client, maker, settings)
    first = await add_beneficiary(client, citizen, name="First Walker")
    second = await add_beneficiary(client, citizen, name="Second Walker")

    r = await walkin(client, world, sid, first, await secret_code_of(client, citizen, first))
    assert r.status_code == 201, r.text
    assert r.json()["walk_in"] is True and r.json()["appointment_id"] is None
    assert r.json()["dose"] == 1
    assert await walkins_used(maker, sid) == 1
    assert await booked_places(maker, sid) == 0
    r = await client.get("/api/v1/sessions", params={"centre_id": world.centre_a})
    assert next(s for s in r.json() if s["session_id"] == sid)["available_dose1"] == 3
    assert await audit_count(maker, "vaccination.walkin.recorded") == 1

    # The same walk-in submitted again is recognised, not counted twice.
    r = await walkin(client, world, sid, first, await secret_code_of(client, citizen, first))
    assert r.status_code == 200, r.text
    assert r.json()["already_recorded"] is True
    assert await walkins_used(maker, sid) == 1

    r = await walkin(client, world, sid, second, await secret_code_of(client, citizen, second))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "WalkinsExhausted"
    assert await walkins_used(maker, sid) == 1
    assert await dose_rows(maker) == 1
    assert await booked_places(maker, sid) == 0
    r = await client.get("/api/v1/beneficiaries", headers=citizen)
    assert {b["reference_id"]: b["doses"] for b in r.json()} == {first: 1, second: 0}


async def test_simultaneous_walkin_submissions_count_once(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=5)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    code = await secret_code_of(client, citizen, ref)
    results = await asyncio.gather(*(walkin(client, world, sid, ref, code) for _ in range(2)))
    assert sorted(r.status_code for r in results) == [200, 201], [r.text for r in results]
    assert await dose_rows(maker) == 1
    assert await walkins_used(maker, sid) == 1


async def test_a_walkin_sent_twice_for_the_last_walkin_place_is_recorded_once(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    """One walk-in place left and the same walk-in sent twice at once: the second is told it
    was recorded, not that the walk-ins are used up (it was: by itself)."""
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=1)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    code = await secret_code_of(client, citizen, ref)
    results = await asyncio.gather(*(walkin(client, world, sid, ref, code) for _ in range(2)))
    assert await walkins_used(maker, sid) == 1
    assert sorted(r.status_code for r in results) == [200, 201], [r.text for r in results]
    assert await dose_rows(maker) == 1


async def test_walkin_with_a_booking_elsewhere_is_refused(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    here = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=2)
    b = await booked_today(client, maker, world, settings, centre_id=world.centre_b)
    r = await walkin(client, world, here, b.ref, b.code)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "AlreadyBooked"
    assert await walkins_used(maker, here) == 0
    assert await dose_rows(maker) == 0


async def test_walkin_checks_code_centre_and_day(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    today = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=2)
    tomorrow = await publish(maker, world, centre_id=world.centre_a, walkins=2)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    code = await secret_code_of(client, citizen, ref)
    r = await walkin(client, world, today, ref, wrong(code))
    assert (r.status_code, r.json()["code"]) == (403, "SecretCodeWrong")
    r = await walkin(client, world, today, ref, code, who="vaccinator_c")
    assert (r.status_code, r.json()["code"]) == (403, "WrongCentre")
    r = await walkin(client, world, tomorrow, ref, code)
    assert (r.status_code, r.json()["code"]) == (422, "NotToday")
    r = await walkin(client, world, today, "99999999999999", code)
    assert r.status_code == 404
    assert await walkins_used(maker, today) == 0
    assert await dose_rows(maker) == 0
    assert await audit_count(maker, "vaccination.secret_code.rejected") == 1


async def test_second_dose_before_the_interval_is_refused(
        client: httpx.AsyncClient, world: Any, maker: Maker, settings: Any) -> None:
    b = await booked_today(client, maker, world, settings, walkins=3)
    sid, citizen, ref, appt, code = b.session_id, b.citizen, b.ref, b.appt, b.code
    assert (await post_dose(client, world, appt, code)).status_code == 201
    # Same day, same person, as a walk-in: dose 2 of Covishield is due from day 84 only.
    r = await walkin(client, world, sid, ref, code)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "DoseTooEarly"
    assert await dose_rows(maker) == 1
    assert await walkins_used(maker, sid) == 0
    r = await client.get("/api/v1/beneficiaries", headers=citizen)
    assert next(p for p in r.json() if p["reference_id"] == ref)["doses"] == 1
