"""Checks made at the centre before a dose is recorded. Pure: plain values in and out.

Eligibility itself (age band, dose number, interval) is teeka.booking.rules: the same rules
decide a booking and a dose, so that a dose refused at booking is refused at the centre too.
"""

from __future__ import annotations

import hmac
import re
from datetime import date, datetime, timedelta

from teeka import errors
from teeka.kit import clock

# ASCII only: str.isalnum() and \w would let other scripts' letters and digits through.
_BATCH = re.compile(r"[A-Za-z0-9-]{1,40}")
_SECRET_CODE = re.compile(r"[0-9]{4}")
_REFERENCE_ID = re.compile(r"[0-9]{14}")


def clean_batch(raw: str) -> str:
    """The vaccine batch number as printed on the vial: 1-40 letters, digits or dashes.
    Surrounding spaces are dropped and letters upper-cased (batch numbers are not case
    sensitive, and one spelling keeps the records comparable)."""
    value = (raw or "").strip()
    if not _BATCH.fullmatch(value):  # checked before upper(): "ß".upper() is "SS"
        raise errors.Invalid(detail="batch must have 1 to 40 letters, digits or dashes")
    return value.upper()


def secret_code_matches(given: str, expected: str) -> bool:
    """True when `given` is the 4-digit code on the slip. Compared in constant time."""
    if not _SECRET_CODE.fullmatch(given or ""):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def is_reference_id(value: str) -> bool:
    return bool(_REFERENCE_ID.fullmatch(value or ""))


def check_today(session_day: date, today: date) -> None:
    """A dose is recorded only on the day of its session."""
    if session_day != today:
        raise errors.NotToday()


# A dose given offline from a day sheet is recorded when the centre is back online: up to this
# many days after its session's day. Older ones are the district's to record.
SYNC_DAYS = 7
# A device's clock may run a little ahead of the server's.
CLOCK_SKEW = timedelta(minutes=5)


def check_sheet_day(session_day: date, today: date) -> None:
    """Doses from a day sheet are recorded for today's sessions or those of the last
    SYNC_DAYS days."""
    if not today - timedelta(days=SYNC_DAYS) <= session_day <= today:
        raise errors.SheetDayOutOfRange(days=SYNC_DAYS)


def check_given_offline(session_day: date, given_at: datetime, *, now: datetime) -> None:
    """A dose given offline: on its session's day (local time), not later than now."""
    check_sheet_day(session_day, now.astimezone(clock.LOCAL_TZ).date())
    if given_at.tzinfo is None:
        raise errors.Invalid(detail="the time of the dose needs a time zone")
    if given_at.astimezone(clock.LOCAL_TZ).date() != session_day or given_at > now + CLOCK_SKEW:
        raise errors.Invalid(detail="the time of the dose must be on the session's day and "
                                    "not later than now")
