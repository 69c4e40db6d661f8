"""Indian mobile numbers: normalise and mask."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"^[6-9]\d{9}$", re.ASCII)


DEVANAGARI_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")


def normalise_mobile(raw: str) -> str | None:
    """Return the 10-digit number, or None when it is not an Indian mobile number."""
    # Devanagari digits typed on a phone are the same number, on every front end
    digits = re.sub(r"[\s\-()]", "", (raw or "").translate(DEVANAGARI_DIGITS))
    if digits.startswith("+91"):
        digits = digits[3:]
    elif digits.startswith("91") and len(digits) == 12:
        digits = digits[2:]
    elif digits.startswith("0") and len(digits) == 11:
        digits = digits[1:]
    return digits if _MOBILE.match(digits) else None


def mask_mobile(mobile: str | None) -> str:
    if not mobile:
        return "-"
    return "XXXXXX" + mobile[-4:]


def mask_id_number(last4: str) -> str:
    return "XXXX-XXXX-" + last4
