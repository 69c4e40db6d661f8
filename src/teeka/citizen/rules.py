"""Checks on what a citizen types. Pure."""

from __future__ import annotations

import re

from teeka import errors

ID_TYPES = ("aadhaar", "pan", "passport", "voter_id", "driving_licence", "ration_card")
GENDERS = ("male", "female", "other")
PRIORITY_GROUPS = ("none", "frontline", "aay", "bpl", "apl")

_ID_PATTERNS = {
    "aadhaar": re.compile(r"^[2-9]\d{11}$", re.ASCII),
    "pan": re.compile(r"^[A-Z]{5}\d{4}[A-Z]$", re.ASCII),
    "passport": re.compile(r"^[A-Z]\d{7}$", re.ASCII),
    "voter_id": re.compile(r"^[A-Z]{3}\d{7}$", re.ASCII),
    "driving_licence": re.compile(r"^[A-Z]{2}\d{2}[0-9A-Z]{9,12}$", re.ASCII),
    "ration_card": re.compile(r"^[0-9A-Z]{8,16}$", re.ASCII),
}


def normalise_id_number(id_type: str, raw: str) -> str:
    """Upper-case, without spaces or dashes; raise Invalid when the shape is wrong.
    The message never repeats the number."""
    if id_type not in ID_TYPES:
        raise errors.Invalid(detail="unknown photo-ID type")
    value = re.sub(r"[\s\-]", "", raw or "").upper()
    if not _ID_PATTERNS[id_type].match(value):
        raise errors.Invalid(detail="photo-ID number has the wrong format")
    return value


def check_person(*, name: str, birth_year: int, gender: str, priority_group: str,
                 this_year: int) -> str:
    clean = " ".join((name or "").split())
    if not 2 <= len(clean) <= 120:
        raise errors.Invalid(detail="name must have 2 to 120 characters")
    if not this_year - 120 <= birth_year <= this_year:
        raise errors.Invalid(detail="birth year is out of range")
    if gender not in GENDERS:
        raise errors.Invalid(detail="unknown gender")
    if priority_group not in PRIORITY_GROUPS:
        raise errors.Invalid(detail="unknown priority group")
    return clean
