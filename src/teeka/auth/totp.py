"""The staff second factor: TOTP (RFC 6238) through pyotp. A code is accepted once."""

from __future__ import annotations

import pyotp

from teeka.kit import clock

STEP = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Teeka")


def current_code(secret: str) -> str:
    return pyotp.TOTP(secret).at(int(clock.now().timestamp()))


def accepted_step(secret: str, code: str, last_step: int) -> int | None:
    """The time step the code belongs to (this one or the one before or after), if it is valid
    and later than the last accepted step; else None."""
    code = (code or "").strip()
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(clock.now().timestamp()) // STEP
    for step in (now_step, now_step - 1, now_step + 1):
        if step > last_step and totp.at(step * STEP) == code:
            return step
    return None
