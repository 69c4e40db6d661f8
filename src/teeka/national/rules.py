"""The national (CoWIN v2) wire formats. Pure: parsing and formatting only."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time

from teeka import errors

_DATE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$", re.ASCII)
_PIN = re.compile(r"^[1-9][0-9]{5}$", re.ASCII)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$", re.ASCII)

ID_TYPES = {1: ("aadhaar", "Aadhaar Card"), 2: ("driving_licence", "Driving License"),
            3: ("pan", "PAN Card"), 4: ("passport", "Passport"), 5: ("voter_id", "Voter ID"),
            6: ("ration_card", "Ration Card")}
GENDERS = {1: ("male", "Male"), 2: ("female", "Female"), 3: ("other", "Others")}


def parse_date(raw: str | None) -> date:
    """'31-05-2021' -> date; anything else (ISO dates, impossible days) is Invalid."""
    m = _DATE.match(raw or "")
    if not m:
        raise errors.Invalid(detail="date must be DD-MM-YYYY")
    try:
        return date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        raise errors.Invalid(detail="date does not exist") from None


def fmt_date(day: date) -> str:
    return day.strftime("%d-%m-%Y")


def fmt_time(t: time) -> str:
    return t.strftime("%H:%M:%S")


def parse_pincode(raw: str | None) -> int:
    if not _PIN.match(raw or ""):
        raise errors.Invalid(detail="pincode must be 6 digits")
    return int(raw or "0")


def parse_int(raw: str | None, name: str) -> int:
    if raw is None or not re.fullmatch(r"[0-9]{1,9}", raw, re.ASCII):
        raise errors.Invalid(detail="{name} must be a number", name=name)
    return int(raw)


def parse_coordinate(raw: str | None, name: str, low: float, high: float) -> float:
    try:
        value = float(raw or "")
    except ValueError:
        raise errors.Invalid(detail="{name} must be a number", name=name) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise errors.Invalid(detail="{name} is out of range", name=name)
    return value


def is_sha256_hex(value: str) -> bool:
    return bool(_SHA256.match(value or ""))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def birth_year(raw: str | int) -> int:
    text = str(raw).strip()
    if not re.fullmatch(r"[0-9]{4}", text, re.ASCII):
        raise errors.Invalid(detail="birth_year must be a 4-digit year")
    return int(text)


def id_type_of(raw: int | str) -> str:
    try:
        return ID_TYPES[int(raw)][0]
    except (KeyError, ValueError):
        raise errors.Invalid(detail="unknown photo_id_type") from None


def gender_of(raw: int | str) -> str:
    try:
        return GENDERS[int(raw)][0]
    except (KeyError, ValueError):
        raise errors.Invalid(detail="unknown gender_id") from None


def gender_label(gender: str) -> str:
    return next((label for key, label in GENDERS.values() if key == gender), "Others")


def id_type_label(id_type: str) -> str:
    return next((label for key, label in ID_TYPES.values() if key == id_type), id_type)


def now_ist_str(moment: datetime) -> str:
    return moment.strftime("%d-%m-%Y %H:%M:%S")


# Stable national error codes for our domain errors (the national service's own code for an
# invalid OTP, USRAUT0014, is kept).
ERROR_CODES = {
    "Invalid": "APPOIN0001", "NotFound": "APPOIN0002", "Unauthenticated": "USRAUT0001",
    "Forbidden": "USRAUT0003", "Busy": "APPOIN0503", "InvalidMobile": "USRAUT0010",
    "OtpInvalid": "USRAUT0014", "OtpExpired": "USRAUT0015", "OtpTooManyTries": "USRAUT0016",
    "OtpResendTooSoon": "USRAUT0017", "OtpDailyLimit": "USRAUT0018",
    "TooManyBeneficiaries": "USRRES0004", "DuplicateIdDocument": "USRRES0005",
    "BeneficiaryHasDoses": "USRRES0006", "AgeNotEligible": "APPOIN0011",
    "WrongDose": "APPOIN0012", "WrongVaccine": "APPOIN0013", "DoseTooEarly": "APPOIN0014",
    "DoseWindowPassed": "APPOIN0015", "ScheduleComplete": "APPOIN0016",
    "AlreadyBooked": "APPOIN0017", "SessionPast": "APPOIN0018", "SlotFull": "APPOIN0040",
    "IdempotencyKeyReused": "APPOIN0041", "NotReschedulable": "APPOIN0042",
    "CertificateNotIssued": "CERT0001", "RateLimited": "APPOIN0429",
}


def national_code(code: str) -> str:
    return ERROR_CODES.get(code, "APPOIN0099")
