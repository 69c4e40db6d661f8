"""Telling the operators on call: when the watch finds trouble (teeka.watch.signals), each
state operator on call with a mobile number gets an SMS naming it, once per kind of trouble
per PAGE_REPEAT while it lasts, so that trouble at night reaches someone before a district
phones in (docs/watch.md). Run by the outbox worker every PAGE_EVERY; several workers at once
page once (PostgreSQL: an advisory lock; SQLite has one writer). What was paged is an audit
entry (`watch.paged`, the trouble's code and how many were told: never a number)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.audit.service import log_action
from teeka.kit import clock
from teeka.models import AuditEntry, StaffUser
from teeka.models.staff import Role
from teeka.notification.service import queue_sms
from teeka.watch import signals

PAGE_EVERY = timedelta(minutes=1)  # how often the worker looks
PAGE_TIMEOUT_S = 20.0  # a look that takes longer is given up (the SMS delivery goes on)
# The same trouble, still there, is paged again after this: within the hour for what stops
# vaccination or people's SMS now; twice a day for what waits for someone's desk.
PAGE_REPEAT = timedelta(hours=1)
PAGE_REPEAT_SLOW = timedelta(hours=12)
SLOW = frozenset({"problem_overdue", "offline_to_resolve"})
PAGER_LOCK = 0x7E4A_9A6E  # pg_try_advisory_xact_lock key: one pager at a time

PAGE_SMS = "Teeka watch: {what} Open the operators' view: /staff/watch"


async def page_on_call(session: AsyncSession) -> list[str]:
    """Page the operators on call for the trouble not paged within its repeat time, all of it
    in one SMS each; return the codes paged (none when nobody is on call: the trouble stays
    on the page; none when another worker is paging right now)."""
    on_call = (await session.execute(select(StaffUser).where(
        StaffUser.on_call.is_(True), StaffUser.active.is_(True),
        StaffUser.role == Role.STATE_ADMIN.value, StaffUser.mobile.is_not(None))
        .order_by(StaffUser.id))).scalars().all()
    if not on_call:  # nobody to tell: the watch is not even read
        return []
    if session.get_bind().dialect.name == "postgresql" and not (await session.execute(
            select(func.pg_try_advisory_xact_lock(PAGER_LOCK)))).scalar_one():
        return []  # another worker pages now; never wait for it (SMS would wait too)
    trouble = (await signals.collect(session)).trouble
    if not trouble:
        return []
    now = clock.now()
    last: dict[str, datetime] = dict((await session.execute(
        select(AuditEntry.object_id, func.max(AuditEntry.at))
        .where(AuditEntry.action == "watch.paged", AuditEntry.at > now - PAGE_REPEAT_SLOW)
        .group_by(AuditEntry.object_id))).all())
    due = [code for code in trouble if code not in last or (
        code not in SLOW and signals.aware(last[code]) <= now - PAGE_REPEAT)]
    if not due:
        return []
    for staff in on_call:
        assert staff.mobile is not None
        await queue_sms(session, to=staff.mobile, lang=staff.language, template=PAGE_SMS,
                        what=" ".join(_what(code, staff.language) for code in due))
    for code in due:
        await log_action(session, actor="system", action="watch.paged", object_type="trouble",
                         object_id=code, told=len(on_call))
    return due


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
        "server_silent": translate(lang, "A server stopped reporting."),
        "no_worker": translate(lang, "No outbox worker is running."),
        "servers_refusing": translate(lang, "Servers are refusing requests (503)."),
        "server_errors": translate(lang, "Servers are answering with errors (500)."),
        "servers_saturated": translate(lang, "Servers are saturated."),
    }
    return texts.get(code, code)
