"""SMS leave through the outbox: a row written in the same transaction as the change."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import OutboxMessage
from teeka.models.outbox import OutboxStatus

SEND_SMS = "notification.send_sms"
# The table, for writers that insert rows with Core statements (`sms` makes a row).
OUTBOX_TABLE = cast(Table, OutboxMessage.__table__)


async def queue_sms(session: AsyncSession, *, to: str, lang: str, template: str,
                    sensitive: bool = False, **params: Any) -> None:
    """Queue an SMS rendered in the reader's language. `template` is a gettext msgid."""
    now = clock.now()
    session.add(OutboxMessage(kind=SEND_SMS, recipient=to, body=translate(lang, template, **params),
                              sensitive=sensitive, next_attempt_at=now, created_at=now))


def sms(*, to: str, lang: str, template: str, sensitive: bool = False, **params: Any
        ) -> dict[str, Any]:
    """One SMS rendered in the reader's language, as the values of an OUTBOX_TABLE row for a
    Core INSERT (the booking path writes its rows that way). `template` is a gettext msgid."""
    now = clock.now()
    return {"kind": SEND_SMS, "recipient": to, "body": translate(lang, template, **params),
            "sensitive": sensitive, "status": OutboxStatus.PENDING.value, "attempts": 0,
            "next_attempt_at": now, "created_at": now}


OTP_SMS = ("Your Teeka OTP is {otp}. It is valid for {minutes} minutes. Do not share it with "
           "anyone.")
BOOKED_SMS = ("Teeka: appointment {confirmation} confirmed for {names} at {centre} on {date}, "
              "{slot}. Show your secret code at the centre.")
CANCELLED_SMS = "Teeka: appointment {confirmation} for {name} on {date} is cancelled."
RESCHEDULED_SMS = ("Teeka: appointment for {name} moved to {centre} on {date}, {slot}. "
                   "Confirmation {confirmation}.")
# A district cut the capacity of a slot below what was booked (teeka.booking.displace).
DISPLACED_MOVED_SMS = ("Teeka: {old_centre} can vaccinate fewer people on {old_date}, so the "
                       "appointment for {name} is moved to {centre} on {date}, {slot}. "
                       "Confirmation {confirmation}. You may reschedule or cancel it.")
DISPLACED_CANCELLED_SMS = ("Teeka: {old_centre} can vaccinate fewer people on {old_date} and no "
                           "other place was free nearby, so appointment {confirmation} for "
                           "{name} is cancelled. Please book again. We are sorry.")
CLOSED_MOVED_SMS = ("Teeka: {old_centre} cannot hold its session on {old_date}, so the "
                    "appointment for {name} is moved to {centre} on {date}, {slot}. "
                    "Confirmation {confirmation}. You may reschedule or cancel it.")
CLOSED_CANCELLED_SMS = ("Teeka: {old_centre} cannot hold its session on {old_date} and no other "
                        "place was free nearby, so appointment {confirmation} for {name} is "
                        "cancelled. Please book again. We are sorry.")
DOSE_SMS = "Teeka: {name} received dose {dose} of {vaccine} on {date}."
# A dose given offline, recorded by the district, ended the person's other appointment.
OFFLINE_CANCELLED_SMS = ("Teeka: {name} was vaccinated at {centre} on {date}, so appointment "
                         "{confirmation} on {old_date} is cancelled.")
