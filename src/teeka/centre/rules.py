"""Checks on what a district officer publishes. Pure."""

from __future__ import annotations

import re
from datetime import time

from teeka import errors
from teeka.models.schedule import Share

_SLOT = re.compile(r"^(0[1-9]|1[0-2]):([0-5]\d)(AM|PM)-(0[1-9]|1[0-2]):([0-5]\d)(AM|PM)$")


def _to_time(hour: str, minute: str, half: str) -> time:
    h = int(hour) % 12 + (12 if half == "PM" else 0)
    return time(h, int(minute))


def parse_slot(label: str) -> tuple[time, time]:
    """'09:00AM-11:00AM' -> (09:00, 11:00); start must be before end."""
    m = _SLOT.match(label.strip().upper())
    if not m:
        raise errors.Invalid(detail="slot '{slot}' is not like 09:00AM-11:00AM", slot=label[:20])
    start, end = _to_time(*m.group(1, 2, 3)), _to_time(*m.group(4, 5, 6))
    if start >= end:
        raise errors.Invalid(detail="slot '{slot}' ends before it starts", slot=label[:20])
    return start, end


def slot_label(start: time, end: time) -> str:
    return f"{start.strftime('%I:%M%p')}-{end.strftime('%I:%M%p')}"


def parse_shares(raw: str) -> dict[Share, int]:
    """'frontline:20;aay:12;bpl:52;apl:16' -> shares; '' -> none."""
    shares: dict[Share, int] = {}
    for part in filter(None, (p.strip() for p in raw.replace(",", ";").split(";"))):
        name, _, pct = part.partition(":")
        try:
            share = Share(name.strip().lower())
            value = int(pct)
        except ValueError:
            raise errors.Invalid(detail="share '{share}' is not like bpl:52",
                                 share=part[:30]) from None
        if share in shares:
            raise errors.Invalid(detail="share '{share}' given twice", share=share[:30])
        shares[share] = value
    if shares and sum(shares.values()) != 100:
        raise errors.Invalid(detail="priority shares must add up to 100")
    return shares


def check_age_band(min_age: int, max_age: int | None) -> None:
    if not 0 <= min_age <= 120 or (max_age is not None and not min_age <= max_age <= 120):
        raise errors.Invalid(detail="age band is not valid")
