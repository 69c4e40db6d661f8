"""Telling the operators on call (teeka.watch.pager, run by the outbox worker): trouble the
watch sees reaches each state operator on call with a mobile number by SMS, in their language,
once per kind of trouble per hour while it lasts; nobody else is paged; nothing when all is
well."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry, OutboxMessage, StaffUser
from teeka.worker import deliver_due, page_due


async def on_call(maker, world, username: str, mobile: str, *, lang: str = "en",
                  active: bool = True) -> None:
    async with session_scope(maker) as db:
        staff = await db.get(StaffUser, world.staff[username].id)
        assert staff is not None
        staff.mobile, staff.on_call, staff.language, staff.active = mobile, True, lang, active


async def sms_to(maker, mobile: str) -> list[str]:
    async with session_scope(maker) as db:
        return list((await db.execute(select(OutboxMessage.body).where(
            OutboxMessage.recipient == mobile).order_by(OutboxMessage.id))).scalars())


async def test_the_operator_on_call_is_told_once_an_hour_while_trouble_lasts(
        client, world, maker, settings) -> None:
    assert await page_due(maker) == []  # nobody on call: the watch is not even read
    await on_call(maker, world, "state", "9000000001", lang="hi")
    await on_call(maker, world, "raipur_admin", "9000000002")  # not an operator
    assert await page_due(maker) == []  # all is well
    r = await client.post("/api/v1/problems", headers=world.headers("raipur_admin"),
                          json={"title": "Cold chain fridge failed", "severity": "urgent",
                                "details": "Since 9:00; 200 doses at risk.",
                                "centre_id": world.centre_a})
    assert r.status_code == 201, r.text
    assert await page_due(maker) == ["urgent_problem"]
    told = await sms_to(maker, "9000000001")
    assert len(told) == 1 and "एक अति आवश्यक समस्या खुली है।" in told[0] and "/staff/watch" in told[0]
    assert await sms_to(maker, "9000000002") == []
    assert await page_due(maker) == []  # told already: not again within the hour
    await deliver_due(maker, settings)  # the SMS leave (else they would be late, an alarm)
    clock.shift(timedelta(minutes=61))  # still open, and now overdue too: one SMS for both
    assert await page_due(maker) == ["urgent_problem", "problem_overdue"]
    told = await sms_to(maker, "9000000001")
    assert len(told) == 2 and "एक अति आवश्यक समस्या खुली है।" in told[1]
    assert "समस्याएँ अपनी गंभीरता की अनुमति से अधिक समय से प्रतीक्षा में हैं।" in told[1]
    await deliver_due(maker, settings)
    clock.shift(timedelta(minutes=61))  # the urgent one again; the overdue one waits 12 hours
    assert await page_due(maker) == ["urgent_problem"]
    async with session_scope(maker) as db:
        paged = (await db.execute(select(AuditEntry).where(
            AuditEntry.action == "watch.paged").order_by(AuditEntry.id))).scalars().all()
        assert [p.object_id for p in paged] == ["urgent_problem", "urgent_problem",
                                                "problem_overdue", "urgent_problem"]
        assert "9000000001" not in str([p.detail for p in paged])  # never a number
    # resolved: nothing more to tell
    r = await client.post(f"/api/v1/problems/{r.json()['id']}/notes", headers=world.headers("state"),
                           json={"text": "Spare fridge sent.", "status": "resolved"})
    assert r.status_code == 200, r.text
    await deliver_due(maker, settings)
    clock.shift(timedelta(minutes=61))
    assert await page_due(maker) == []


async def test_an_operator_off_call_or_inactive_is_not_paged(client, world, maker) -> None:
    await on_call(maker, world, "state", "9000000003", active=False)
    r = await client.post("/api/v1/problems", headers=world.headers("raipur_admin"),
                          json={"title": "No vaccine", "severity": "urgent",
                                "details": "Stock ran out.", "centre_id": world.centre_a})
    assert r.status_code == 201, r.text
    assert await page_due(maker) == []
    assert await sms_to(maker, "9000000003") == []
