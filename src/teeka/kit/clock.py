"""The one clock. Times are timezone-aware UTC; calendar dates are the state's local (IST) dates.

Tests move time with `shift()`; nothing else may read the wall clock directly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Kolkata")
_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset


def today() -> date:
    return now().astimezone(LOCAL_TZ).date()


def local_datetime(day: date, hour: int, minute: int = 0) -> datetime:
    """An IST wall-clock moment on `day`, as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


def shift(delta: timedelta) -> None:
    """Move the clock (tests and demo rehearsal only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)
