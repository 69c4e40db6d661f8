"""Problems raised by districts and centres, tracked to resolution, over the JSON API: who may
raise and see which, the moves an operator makes (take, resolve with a note), reopening,
overdue ones, hostile input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry

URL = "/api/v1/problems"


def problem(**fields) -> dict:
    return {"title": "Cold chain fridge failed", "details": "Since 9:00; 200 doses at risk.",
            "severity": "urgent", **fields}


async def test_a_district_raises_an_operator_takes_and_resolves_it(client, world, maker) -> None:
    r = await client.post(URL, headers=world.headers("raipur_admin"),
                          json=problem(centre_id=world.centre_a))
    assert r.status_code == 201, r.text
    raised = r.json()
    assert (raised["status"], raised["district_id"], raised["centre_id"]) == (
        "open", 109, world.centre_a)
    pid = raised["id"]

    # the district cannot take or resolve it; the operator sees it and takes it
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("raipur_admin"),
                          json={"text": "done", "status": "resolved"})
    assert r.status_code == 403, r.text
    r = await client.get(URL, headers=world.headers("state"))
    assert [p["id"] for p in r.json()] == [pid]
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("state"),
                          json={"status": "acknowledged"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text
    # resolving needs a note saying what was done
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("state"),
                          json={"text": "  ", "status": "resolved"})
    assert r.status_code == 400 and r.json()["code"] == "Invalid", r.text
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("state"),
                          json={"text": "Spare fridge sent from the district store.",
                                "status": "resolved"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "resolved" and done["resolved_at"] and done["acknowledged_at"]
    assert [n["status_to"] for n in done["notes"]] == ["acknowledged", "resolved"]
    # the district reopens it (not fixed after all), with a reason
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("raipur_admin"),
                          json={"text": "The spare fridge does not cool either.",
                                "status": "open"})
    assert r.status_code == 200 and r.json()["status"] == "open", r.text
    assert r.json()["resolved_at"] is None
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("raipur_admin"),
                          json={"text": "again", "status": "open"})
    assert r.status_code == 409 and r.json()["code"] == "ProblemMoveRefused"
    async with session_scope(maker) as db:
        actions = (await db.execute(select(AuditEntry.action).where(
            AuditEntry.object_type == "problem").order_by(AuditEntry.id))).scalars().all()
    assert actions == ["watch.problem.raised", "watch.problem.acknowledged",
                       "watch.problem.resolved", "watch.problem.reopened"]


async def test_who_sees_what(client, world) -> None:
    mine = (await client.post(URL, headers=world.headers("vaccinator_a"),
                              json=problem(title="No vaccine vials delivered"))).json()
    assert mine["centre_id"] == world.centre_a and mine["district_id"] == 109
    other = (await client.post(URL, headers=world.headers("balod_admin"),
                               json=problem(severity="normal"))).json()
    assert other["district_id"] == 110
    # a district admin cannot raise for another district, nor for another district's centre
    r = await client.post(URL, headers=world.headers("raipur_admin"),
                          json=problem(centre_id=world.centre_c))
    assert r.status_code == 403, r.text

    def ids(r) -> set[int]:
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json()}

    assert ids(await client.get(URL, headers=world.headers("state"))) == {mine["id"],
                                                                          other["id"]}
    assert ids(await client.get(URL, headers=world.headers("raipur_admin"))) == {mine["id"]}
    assert ids(await client.get(URL, headers=world.headers("helpdesk"))) == {mine["id"]}
    assert ids(await client.get(URL, headers=world.headers("vaccinator_c"))) == set()
    # another district's problem does not exist for them
    r = await client.get(f"{URL}/{other['id']}", headers=world.headers("raipur_admin"))
    assert r.status_code == 404
    r = await client.post(f"{URL}/{other['id']}/notes", headers=world.headers("vaccinator_a"),
                          json={"text": "me too"})
    assert r.status_code == 404
    r = await client.get(URL, headers=world.headers("state") | {"Authorization": "Bearer x"})
    assert r.status_code == 401


async def test_the_most_urgent_and_oldest_come_first_and_late_ones_are_overdue(
        client, world) -> None:
    normal = (await client.post(URL, headers=world.headers("raipur_admin"),
                                json=problem(severity="normal"))).json()
    clock.shift(timedelta(minutes=10))
    urgent = (await client.post(URL, headers=world.headers("raipur_admin"),
                                json=problem(severity="urgent"))).json()
    high = (await client.post(URL, headers=world.headers("raipur_admin"),
                              json=problem(severity="high"))).json()
    r = await client.get(URL, headers=world.headers("state"))
    assert [p["id"] for p in r.json()] == [urgent["id"], high["id"], normal["id"]]
    assert not any(p["overdue"] for p in r.json())
    clock.shift(timedelta(minutes=31))  # urgent ones wait at most 30 minutes
    r = await client.get(URL, headers=world.headers("state"))
    assert {p["id"]: p["overdue"] for p in r.json()} == {
        urgent["id"]: True, high["id"]: False, normal["id"]: False}
    await client.post(f"{URL}/{urgent['id']}/notes", headers=world.headers("state"),
                      json={"status": "acknowledged"})
    r = await client.get(URL, headers=world.headers("state"))
    assert not any(p["overdue"] for p in r.json())  # taken: no longer waiting


@pytest.mark.parametrize("fields, field", [
    ({"title": ""}, "title"), ({"title": "x" * 121}, "title"), ({"details": "\x00\x01 "}, "details"),
    ({"severity": "panic"}, "severity"), ({"district_id": 2**40}, "district"),
    ({"centre_id": 999999}, "centre"),
])
async def test_bad_input_is_a_clear_error(client, world, fields, field) -> None:
    r = await client.post(URL, headers=world.headers("state") | {"Accept-Language": "en"},
                          json=problem(district_id=109) | fields)
    assert r.status_code == 400 and r.json()["code"] == "Invalid", r.text
    assert field in r.json()["message"].lower() or field in str(r.json()), r.text


async def test_a_citizen_cannot_reach_problems(client, world, maker, settings) -> None:
    from tests.factories import login_citizen
    citizen = await login_citizen(client, maker, settings)
    assert (await client.get(URL, headers=citizen)).status_code == 403
    assert (await client.post(URL, headers=citizen, json=problem())).status_code == 403
    r = await client.get(f"{URL}/99999999999", headers=world.headers("state"))
    assert r.status_code == 404
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.object_type == "problem"))).scalar_one() == 0


async def test_reopened_it_waits_for_an_operator_again_and_a_stale_page_cannot_move_it(
        client, world) -> None:
    pid = (await client.post(URL, headers=world.headers("raipur_admin"),
                             json=problem(severity="urgent"))).json()["id"]
    op = world.headers("state")
    r = await client.post(f"{URL}/{pid}/notes", headers=op, json={"status": "acknowledged"})
    seen = r.json()["updated_at"]
    r = await client.post(f"{URL}/{pid}/notes", headers=op,
                          json={"text": "fixed", "status": "resolved", "seen": seen})
    assert r.status_code == 200, r.text
    stale = r.json()["updated_at"]
    clock.shift(timedelta(hours=5))
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("raipur_admin"),
                          json={"text": "Still broken.", "status": "open"})
    reopened = r.json()
    assert reopened["acknowledged_at"] is None and not reopened["overdue"], reopened
    # an operator acting on the page they read before it was reopened is told to look again
    r = await client.post(f"{URL}/{pid}/notes", headers=op,
                          json={"text": "fixed", "status": "resolved", "seen": stale})
    assert r.status_code == 409 and r.json()["code"] == "ProblemChanged", r.text
    clock.shift(timedelta(minutes=31))  # waiting counts from the reopening
    r = await client.get(f"{URL}/{pid}", headers=op)
    assert r.json()["overdue"] and r.json()["status"] == "open"


def test_text_keeps_hindi_joiners_and_turns_odd_spaces_into_spaces() -> None:
    from teeka.watch import rules
    assert rules.title("शौच\u200cालय\u00a0बंद") == "शौच\u200cालय बंद"
    assert rules.details("a\u2028b\x07c") == "a\nbc"


def test_an_alarm_needs_more_than_one_wrong_number_or_one_no_show() -> None:
    from teeka.watch.signals import FAIL_MIN, SILENT_ALARM, Signals
    now = clock.now()
    assert Signals(at=now, sms_failed=1, sms_failed_hour=1, sms_sent_hour=50,
                   silent_count=3, silent_alarm=0).trouble == []
    assert Signals(at=now, sms_failed_hour=FAIL_MIN, sms_sent_hour=100 * FAIL_MIN).trouble == []
    assert Signals(at=now, sms_failed_hour=FAIL_MIN, sms_sent_hour=10).trouble == [
        "sms_failing"]
    assert SILENT_ALARM > 1 and Signals(at=now, silent_alarm=1).trouble == ["silent_centres"]


async def test_the_raiser_is_told_by_sms_when_an_operator_takes_and_resolves_it(
        client, world, maker) -> None:
    """Whoever raised a problem and keeps a mobile number (`teeka user mobile`) gets an SMS, in
    their language, when an operator takes it and when it is resolved: its number, never its
    text; nothing when they move it themselves or keep no number."""
    from sqlalchemy import update

    from teeka.models import OutboxMessage, StaffUser

    async with session_scope(maker) as db:  # as `teeka user mobile raipur --mobile …` keeps it
        await db.execute(update(StaffUser).where(
            StaffUser.id == world.staff["raipur_admin"].id).values(
            mobile="9000000009", language="hi"))

    async def sms() -> list[tuple[str, str]]:
        async with session_scope(maker) as db:
            return [tuple(r) for r in (await db.execute(
                select(OutboxMessage.recipient, OutboxMessage.body)
                .order_by(OutboxMessage.id))).all()]

    pid = (await client.post(URL, headers=world.headers("raipur_admin"),
                             json=problem())).json()["id"]
    quiet = (await client.post(URL, headers=world.headers("balod_admin"),
                               json=problem())).json()["id"]
    for which in (pid, quiet):
        r = await client.post(f"{URL}/{which}/notes", headers=world.headers("state"),
                              json={"status": "acknowledged"})
        assert r.status_code == 200, r.text
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("state"),
                          json={"text": "Just a note"})
    assert r.status_code == 200, r.text
    for which in (pid, quiet):
        r = await client.post(f"{URL}/{which}/notes", headers=world.headers("state"),
                              json={"text": "Spare fridge sent.", "status": "resolved"})
        assert r.status_code == 200, r.text
    r = await client.post(f"{URL}/{pid}/notes", headers=world.headers("raipur_admin"),
                          json={"text": "Still warm.", "status": "open"})
    assert r.status_code == 200, r.text
    sent = await sms()
    assert [to for to, _ in sent] == ["9000000009", "9000000009"], sent
    taken, resolved = (body for _, body in sent)
    assert f"समस्या {pid}" in taken and "ऑपरेटर ने ले ली" in taken
    assert f"/staff/problems/{pid}" in resolved and "हल कर दी गई" in resolved
    assert all("fridge" not in body and "Cold chain" not in body for _, body in sent)
    # an operator's own problem: they are not told of their own moves
    own = (await client.post(URL, headers=world.headers("state"),
                             json=problem(district_id=109))).json()["id"]
    async with session_scope(maker) as db:
        await db.execute(update(StaffUser).where(StaffUser.id == world.staff["state"].id)
                         .values(mobile="9000000008"))
    r = await client.post(f"{URL}/{own}/notes", headers=world.headers("state"),
                          json={"status": "acknowledged"})
    assert r.status_code == 200 and len(await sms()) == 2


async def test_the_same_problem_sent_twice_is_one_problem(client, world) -> None:
    """A double click, a second tab or a resend after a lost answer: one problem (two were
    raised, and paged), whether one after the other or at once; the same words a few minutes
    later, or with another severity, are a new one."""
    import asyncio

    h = world.headers("raipur_admin")
    first = (await client.post(URL, headers=h, json=problem())).json()
    again = await client.post(URL, headers=h, json=problem())
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    burst = await asyncio.gather(*(client.post(URL, headers=h, json=problem(title="Both tabs"))
                                   for _ in range(20)))
    assert len({r.json()["id"] for r in burst}) == 1, [r.text for r in burst]
    escalated = (await client.post(URL, headers=h, json=problem(severity="high"))).json()
    assert escalated["id"] != first["id"]
    clock.shift(timedelta(minutes=3))
    later = (await client.post(URL, headers=h, json=problem())).json()
    assert later["id"] not in (first["id"], escalated["id"])
    r = await client.get(URL, headers=world.headers("state"))
    assert len(r.json()) == 4
