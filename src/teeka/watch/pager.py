"""Telling the operators on call: when the watch finds trouble (teeka.watch.signals), each
state operator on call with a mobile number gets an SMS naming it, once per kind of trouble
per PAGE_REPEAT while it lasts, so that trouble at night reaches someone before a district
phones in (docs/watch.md). Run by the outbox worker every PAGE_EVERY; several workers at once
page once (PostgreSQL: an advisory lock; SQLite has one writer). What was paged is an audit
entry (`watch.paged`, the trouble's code and how many were told: never a number)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.audit.service import log_action
from teeka.kit import clock
from teeka.models import AuditEntry, StaffUser
from teeka.models.staff import Role
from teeka.notification.service import queue_sms
from teeka.watch import signals

PAGE_EVERY = timedelta(minutes=1)  # how often the worker looks
PAGE_REPEAT = timedelta(hours=1)  # the same trouble, still there, is paged again after this
PAGER_LOCK = 0x7E4A_9A6E  # pg_advisory_xact_lock key: one pager at a time

PAGE_SMS = "Teeka watch: {what} Open the operators' view: /staff/watch"


async def page_on_call(session: AsyncSession) -> list[str]:
    """Page the operators on call for every trouble not paged within PAGE_REPEAT; return the
    codes paged (none when nobody is on call: the trouble stays on the page)."""
    on_call = (await session.execute(select(StaffUser).where(
        StaffUser.on_call.is_(True), StaffUser.active.is_(True),
        StaffUser.role == Role.STATE_ADMIN.value, StaffUser.mobile.is_not(None))
        .order_by(StaffUser.id))).scalars().all()
    if not on_call:  # nobody to tell: the watch is not even read
        return []
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(PAGER_LOCK)))
    trouble = (await signals.collect(session)).trouble
    if not trouble:
        return []
    since = clock.now() - PAGE_REPEAT
    recent = set((await session.execute(select(AuditEntry.object_id).where(
        AuditEntry.action == "watch.paged", AuditEntry.at > since))).scalars())
    paged = []
    for code in trouble:
        if code in recent:
            continue
        for staff in on_call:
            assert staff.mobile is not None
            await queue_sms(session, to=staff.mobile, lang=staff.language, template=PAGE_SMS,
                            what=_what(code, staff.language))
        await log_action(session, actor="system", action="watch.paged", object_type="trouble",
                         object_id=code, told=len(on_call))
        paged.append(code)
    return paged


def _what(code: str, lang: str) -> str:
    """What a trouble code says in the SMS (the watch page says the same, with counts)."""
    from teeka.i18n import translate

    texts = {
        "urgent_problem": translate(lang, "An urgent problem is open."),
        "problem_overdue": translate(
            lang, "Problems are waiting longer than their severity allows."),
        "silent_centres": translate(lang, "Centres with slots over have recorded no dose today."),
        "sms_late": translate(lang, "SMS are late."),
        "sms_failing": translate(lang, "SMS are failing."),
        "offline_to_resolve": translate(lang, "Doses given offline could not be recorded."),
    }
    return texts.get(code, code)
