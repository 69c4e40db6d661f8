"""Tokens for citizens and staff, staff passwords (argon2)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.actor import Actor
from teeka.config import Settings
from teeka.kit import clock, signing
from teeka.models import Account, StaffUser
from teeka.models.staff import Role

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def citizen_token(settings: Settings, account_id: int) -> str:
    return signing.issue_token(settings.resolved_secret(), subject=str(account_id), kind="citizen",
                               now=clock.now(),
                               ttl=timedelta(minutes=settings.citizen_token_minutes))


def staff_token(settings: Settings, staff: StaffUser) -> str:
    """A staff API token: a shift long (staff_token_minutes), and ended by the user's logout
    like their page sessions (it carries its issue time to the millisecond, `si`, which
    `actor_from_token` compares with `signed_out_at`: the staff user's row is read anyway)."""
    now = clock.now()
    return signing.issue_token(settings.resolved_secret(), subject=str(staff.id), kind="staff",
                               now=now, ttl=timedelta(minutes=settings.staff_token_minutes),
                               extra={"si": sign_in_moment(now.timestamp())})


def sign_in_moment(now: float) -> float:
    """A sign-in's time as a token carries it (`si`): epoch seconds, cut to the millisecond
    (never later than the sign-in, so that a logout after it always ends it)."""
    return math.floor(now * 1000) / 1000


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# A browser's session cookie holds a token of its own kind (teeka.web.session): a copy of it
# is not a bearer token for the APIs (where a logout could not end it).
CITIZEN_PAGE, STAFF_PAGE = "citizen_page", "staff_page"


def citizen_actor(secret: str, token: str, *, kind: str = "citizen") -> Actor | None:
    """The citizen of a valid citizen token (no database needed), else None."""
    claims = signing.read_token(secret, token, kind=kind, now=clock.now())
    return None if claims is None else Actor(kind="citizen", id=int(claims["sub"]))


async def actor_from_token(session: AsyncSession, settings: Settings, token: str, *,
                           page: bool = False) -> Actor:
    """Who a bearer token (or, `page`, a browser session's token) names; Unauthenticated."""
    secret = settings.resolved_secret()
    citizen = citizen_actor(secret, token, kind=CITIZEN_PAGE if page else "citizen")
    if citizen is not None:
        return citizen
    claims = signing.read_token(secret, token, kind=STAFF_PAGE if page else "staff",
                                now=clock.now())
    if claims is not None:
        staff = await session.get(StaffUser, int(claims["sub"]))
        if staff is not None and staff.active and (page or not session_ended(
                token_signed_in(claims, issued=True), staff.signed_out_at)):
            return Actor.for_staff(staff)
    raise errors.Unauthenticated()


def token_signed_in(claims: dict[str, Any] | None, *, issued: bool = False) -> float | None:
    """When the session a token belongs to began (its `si`, epoch seconds), None when it
    carries none; `issued`: else when the token was issued (its `iat`, for a staff API token
    made before tokens carried `si`: one issued after a logout still works)."""
    began = claims.get("si") if claims else None
    if began is None and issued and claims:
        began = claims.get("iat")
    return float(began) if isinstance(began, int | float) and not isinstance(began, bool) \
        else None


def session_ended(signed_in: float | None, signed_out_at: datetime | None) -> bool:
    """Whether a browser session that began at `signed_in` (epoch seconds; None: unknown) has
    been ended by a logout at `signed_out_at` (None: never logged out). A logout ends every
    session begun before it, or at the same moment."""
    if signed_out_at is None:
        return False
    return signed_in is None or signed_in <= signed_out_at.timestamp()


async def signed_out_at(session: AsyncSession, actor: Actor) -> datetime | None:
    """When `actor` last logged out (a primary-key read; a staff user is usually in the unit
    of work's identity map already)."""
    if actor.is_citizen:
        return (await session.execute(select(Account.signed_out_at).where(
            Account.id == actor.id))).scalar_one_or_none()
    staff = await session.get(StaffUser, actor.id)
    return staff.signed_out_at if staff is not None else None


async def sign_out(session: AsyncSession, actor: Actor) -> None:
    """Log out: every browser session of this account or staff user begun until now ends, on
    every device (the cookie is removed by the page; a copy of it is refused from now on)."""
    model: type[Account] | type[StaffUser] = Account if actor.is_citizen else StaffUser
    await session.execute(update(model).where(model.id == actor.id)
                          .values(signed_out_at=clock.now())
                          .execution_options(synchronize_session=False))
    await log_action(session, actor=actor.label, action="auth.signed_out",
                     object_type="account" if actor.is_citizen else "staff_user",
                     object_id=actor.id)


# ---------------------------------------------------------------- a citizen's own device

DEVICE_DAYS = 180
DEVICE_NUMBERS = 4  # numbers one device vouches for (a family's phone)


def _number_key(secret: str, mobile: str) -> str:
    return signing.keyed_hash(secret, "otp-device", mobile)[:32]


def _device_numbers(claims: dict[str, object]) -> list[str]:
    found = claims.get("nums")
    return [n for n in found if isinstance(n, str)] if isinstance(found, list) else []


def trusted_device_id(secret: str, token: str | None, mobile: str | None) -> str | None:
    """The id of the device whose token (`teeka_device` cookie, or the app's `device_token`)
    vouches for `mobile` (normalised), that is: that signed in to it by OTP before; else None.
    Its OTP requests are limited on their own (teeka.surge.limits.otp_send_limit), not with
    everyone's for the number. The token names numbers by keyed hashes, never a number."""
    if not token or mobile is None:
        return None
    claims = signing.read_token(secret, token, kind="device", now=clock.now())
    if claims is None or _number_key(secret, mobile) not in _device_numbers(claims):
        return None
    device = claims.get("dev")
    return device if isinstance(device, str) else None


def device_token(secret: str, earlier: str | None, mobile: str) -> str:
    """After a sign-in by OTP: a device token vouching for `mobile` besides the numbers the
    device's `earlier` token knew (the latest DEVICE_NUMBERS kept), with the device's id kept
    (signing in again must not give it fresh limits)."""
    import secrets as random

    claims = signing.read_token(secret, earlier, kind="device", now=clock.now()) \
        if earlier else None
    device = claims.get("dev") if claims else None
    key = _number_key(secret, mobile)
    numbers = [n for n in (_device_numbers(claims) if claims else []) if n != key] + [key]
    return signing.issue_token(secret, subject="device", kind="device", now=clock.now(),
                               ttl=timedelta(days=DEVICE_DAYS),
                               extra={"dev": device if isinstance(device, str)
                                      else random.token_hex(12),
                                      "nums": numbers[-DEVICE_NUMBERS:]})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def staff_login(session: AsyncSession, *, username: str, password: str) -> StaffUser:
    staff = (await session.execute(select(StaffUser).where(StaffUser.username == username))
             ).scalar_one_or_none()
    try:
        _hasher.verify(staff.password_hash if staff else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        staff = None
    if staff is None or not staff.active:
        raise errors.Unauthenticated()
    await log_action(session, actor=f"staff:{staff.id}", action="auth.staff.logged_in",
                     object_type="staff_user", object_id=staff.id)
    return staff


async def create_staff(session: AsyncSession, *, username: str, password: str, name: str,
                       role: Role, district_id: int | None = None, centre_id: int | None = None,
                       actor: str = "system") -> StaffUser:
    if role in (Role.DISTRICT_ADMIN, Role.HELPDESK) and district_id is None:
        raise errors.Invalid(detail="this role needs a district")
    if role == Role.VACCINATOR and centre_id is None:
        raise errors.Invalid(detail="a vaccinator needs a centre")
    if len(password) < 10:
        raise errors.Invalid(detail="password must have at least 10 characters")
    staff = StaffUser(username=username, name=name, password_hash=hash_password(password),
                      role=role, district_id=district_id, centre_id=centre_id, active=True,
                      created_at=clock.now())
    session.add(staff)
    await session.flush()
    await log_action(session, actor=actor, action="auth.staff.created", object_type="staff_user",
                     object_id=staff.id, role=str(role))
    return staff


# Wrong second-factor codes a staff user may send in a window before every code is refused
# until the window has passed (a stolen password must not buy unlimited guesses of a six-digit
# code: three steps are accepted at a time, so each guess has about 3 chances in a million).
SECOND_FACTOR_TRIES = 5
SECOND_FACTOR_WINDOW = timedelta(minutes=15)


async def verify_second_factor(session: AsyncSession, staff: StaffUser, code: str, *,
                               enrol_secret: str | None = None) -> bool:
    """Check a TOTP code (against the enrolled secret, or the one being enrolled). A code is
    accepted once: the accepted step only moves forward, by a guarded update. Every outcome is
    audited; after SECOND_FACTOR_TRIES failures within SECOND_FACTOR_WINDOW (counted from the
    audit) every code is refused with SecondFactorLocked, unchecked."""
    from sqlalchemy import func

    from teeka.auth import totp
    from teeka.models import AuditEntry

    # One check at a time per user: a burst of guesses sent at once cannot all read the count
    # before any failure is written (as the OTP's guarded count and the secret code's person
    # lock). FOR NO KEY UPDATE: rows that only refer to the user do not wait for it.
    await session.execute(select(StaffUser.id).where(StaffUser.id == staff.id)
                          .with_for_update(key_share=True))
    failed = (await session.execute(
        select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "auth.staff.second_factor_failed",
            AuditEntry.object_type == "staff_user", AuditEntry.object_id == str(staff.id),
            AuditEntry.at > clock.now() - SECOND_FACTOR_WINDOW))).scalar_one()
    if failed >= SECOND_FACTOR_TRIES:
        raise errors.SecondFactorLocked()

    secret = staff.totp_secret or enrol_secret
    step = totp.accepted_step(secret, code, staff.totp_last_step) if secret else None
    moved = 0
    if step is not None:
        result = await session.execute(update(StaffUser).where(
            StaffUser.id == staff.id, StaffUser.totp_last_step < step).values(
            totp_last_step=step, totp_secret=secret).execution_options(synchronize_session=False))
        moved = result.rowcount  # type: ignore[attr-defined]
    ok = moved == 1
    await log_action(session, actor=f"staff:{staff.id}",
                     action="auth.staff.second_factor_passed" if ok
                     else "auth.staff.second_factor_failed",
                     object_type="staff_user", object_id=staff.id,
                     enrolled=bool(enrol_secret) and ok)
    return ok
