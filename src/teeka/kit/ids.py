"""Identifiers people read: reference ids, secret codes, confirmation numbers."""

from __future__ import annotations

import secrets
import uuid


def reference_id() -> str:
    """A 14-digit beneficiary reference id (first digit never 0)."""
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(13))


def secret_code() -> str:
    """The 4-digit code printed on the slip and checked at the centre."""
    return f"{secrets.randbelow(10_000):04d}"


def otp() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def confirmation_no() -> str:
    """Ten characters from an alphabet without look-alikes (no 0/O, 1/I/L)."""
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def new_uuid() -> str:
    return str(uuid.uuid4())
