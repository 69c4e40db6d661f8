"""SMS leave through the outbox: a row written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import OutboxMessage

SEND_SMS = "notification.send_sms"


async def queue_sms(session: AsyncSession, *, to: str, lang: str, template: str,
                    sensitive: bool = False, **params: Any) -> None:
    """Queue an SMS rendered in the reader's language. `template` is a gettext msgid."""
    now = clock.now()
    session.add(OutboxMessage(kind=SEND_SMS, recipient=to, body=translate(lang, template, **params),
                              sensitive=sensitive, next_attempt_at=now, created_at=now))


OTP_SMS = "Your Teeka OTP is {otp}. It is valid for 3 minutes. Do not share it with anyone."
BOOKED_SMS = ("Teeka: appointment {confirmation} confirmed for {names} at {centre} on {date}, "
              "{slot}. Show your secret code at the centre.")
CANCELLED_SMS = "Teeka: appointment {confirmation} for {name} on {date} is cancelled."
RESCHEDULED_SMS = ("Teeka: appointment for {name} moved to {centre} on {date}, {slot}. "
                   "Confirmation {confirmation}.")
DOSE_SMS = "Teeka: {name} received dose {dose} of {vaccine} on {date}."
