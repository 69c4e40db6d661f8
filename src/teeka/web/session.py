"""Browser sessions (signed cookies) and CSRF protection for the HTML pages.

* Citizens: after OTP login the cookie `teeka_citizen` holds a citizen token (15 minutes,
  renewed on every page they open).
* Staff: password, then TOTP; the cookie `teeka_staff` holds a staff token (60 minutes, renewed
  on every page). Between the two steps `teeka_2fa` holds a 5-minute token naming the user (and,
  at enrolment, the new secret).
* Renewal never takes a session past 12 hours from its sign-in (SESSION_MAX; the page tokens
  carry the sign-in time, `si`, to the millisecond). Logging out removes the cookie and ends
  every session of that account or staff user begun before it, on every device
  (`signed_out_at`; teeka.auth.service.sign_out): a copy of the cookie is refused at once.
  Each page therefore reads one row by its key (the staff user's is read anyway). A logout
  with a cookie that lapsed (idle) still ends its session. The cookie's token is of a kind of
  its own (`citizen_page`, `staff_page`): a copy is no bearer token for the APIs. A staff
  user's API tokens (a shift long, `staff_token_minutes`) end at their logout too (they carry
  `si`; the user's row is read for every staff request anyway); a citizen's API tokens are
  not sessions: they live their 15 minutes (no extra read on the crowd's busiest path).
* CSRF: every form carries `csrf`, an HMAC of the random `teeka_csrf` cookie; every POST from a
  page is checked (double submit, signed). SameSite=Lax cookies add a second line.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.auth.service import (
    CITIZEN_PAGE,
    DEVICE_DAYS,
    STAFF_PAGE,
    actor_from_token,
    device_token,
    session_ended,
    sign_in_moment,
    sign_out,
    signed_out_at,
    token_signed_in,
    trusted_device_id,
)
from teeka.config import Settings
from teeka.kit import clock, signing

CITIZEN = "teeka_citizen"
STAFF = "teeka_staff"
SECOND_FACTOR = "teeka_2fa"
CSRF = "teeka_csrf"
STAFF_PAGE_MINUTES = 60
# However often its pages are opened, a browser session ends this long after its sign-in: a
# cookie copied from a shared or lost phone cannot be kept alive by renewal for ever.
SESSION_MAX = timedelta(hours=12)


class LoginRequired(errors.DomainError):
    code = "LoginRequired"
    status = 401
    message = "Please log in to continue."

    def __init__(self, login_path: str, next_path: str) -> None:
        super().__init__()
        self.location = f"{login_path}?next={quote(next_path)}"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def set_cookie(request: Request, response: Response, name: str, value: str, minutes: int) -> None:
    """A cookie for `minutes`; a session's (CITIZEN, STAFF) is kept for SESSION_MAX, its token
    deciding how long it works (`minutes` from the last page): a lapsed one still tells a
    logout which session to end."""
    seconds = int(SESSION_MAX.total_seconds()) if name in (CITIZEN, STAFF) else minutes * 60
    response.set_cookie(name, value, max_age=seconds, httponly=True, samesite="lax",
                        secure=not _settings(request).is_development, path="/")


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/")


def _session_ttl(minutes: int, signed_in: float, now: float) -> timedelta:
    """A page token's life: `minutes`, never past the session's end (SESSION_MAX)."""
    end = signed_in + SESSION_MAX.total_seconds()
    return timedelta(seconds=max(min(minutes * 60, end - now), 1))


def _page_token(request: Request, kind: str, subject: int, minutes: int,
                signed_in: float | None) -> str:
    now = clock.now()
    began = sign_in_moment(now.timestamp()) if signed_in is None else signed_in
    return signing.issue_token(_settings(request).resolved_secret(), subject=str(subject),
                               kind=kind, now=now, extra={"si": began},
                               ttl=_session_ttl(minutes, began, now.timestamp()))


def citizen_cookie_token(request: Request, account_id: int, signed_in: float | None = None
                         ) -> str:
    """A citizen page token; `signed_in`: when the session began (None: now, a sign-in)."""
    return _page_token(request, CITIZEN_PAGE, account_id,
                       _settings(request).citizen_token_minutes, signed_in)


def staff_cookie_token(request: Request, staff_id: int, signed_in: float | None = None) -> str:
    """A staff page token; `signed_in`: when the session began (None: now, a sign-in)."""
    return _page_token(request, STAFF_PAGE, staff_id, STAFF_PAGE_MINUTES, signed_in)


def _signed_in(request: Request, name: str, kind: str) -> float | None:
    """When the session of the page cookie `name` began (None: no such cookie, or a token
    made before sessions carried it)."""
    return token_signed_in(signing.read_token(_settings(request).resolved_secret(),
                                     request.cookies.get(name, ""), kind=kind, now=clock.now()))


# ---------------------------------------------------------------- a citizen's own browser

DEVICE = "teeka_device"


def trusted_device(request: Request, mobile: str | None) -> str | None:
    """This browser's id when its `teeka_device` cookie (signed, 180 days, sent only to the
    sign-in pages) vouches for `mobile` (teeka.auth.service.trusted_device_id)."""
    return trusted_device_id(_settings(request).resolved_secret(), request.cookies.get(DEVICE),
                             mobile)


def remember_device(request: Request, response: Response, mobile: str) -> None:
    """After a sign-in by OTP: this browser vouches for `mobile` from now on."""
    token = device_token(_settings(request).resolved_secret(), request.cookies.get(DEVICE),
                         mobile)
    response.set_cookie(DEVICE, token, max_age=DEVICE_DAYS * 86400, httponly=True,
                        samesite="lax", secure=not _settings(request).is_development,
                        path="/login")


def second_factor_token(request: Request, staff_id: int, enrol_secret: str | None) -> str:
    extra = {"enrol": enrol_secret} if enrol_secret else None
    return signing.issue_token(_settings(request).resolved_secret(), subject=str(staff_id),
                               kind="staff2fa", now=clock.now(), ttl=timedelta(minutes=5),
                               extra=extra)


def read_second_factor(request: Request) -> dict[str, Any] | None:
    token = request.cookies.get(SECOND_FACTOR, "")
    return signing.read_token(_settings(request).resolved_secret(), token, kind="staff2fa",
                              now=clock.now()) if token else None


async def page_actor(request: Request, session: AsyncSession, *, staff: bool) -> Actor | None:
    token = request.cookies.get(STAFF if staff else CITIZEN, "")
    if not token:
        return None
    try:
        actor = await actor_from_token(session, _settings(request), token, page=True)
    except errors.Unauthenticated:
        return None
    if actor.is_citizen == staff:
        return None
    if session_ended(_signed_in(request, STAFF if staff else CITIZEN,
                                STAFF_PAGE if staff else CITIZEN_PAGE),
                     await signed_out_at(session, actor)):
        return None
    return actor


async def end_sessions(request: Request, session: AsyncSession, *, staff: bool) -> None:
    """A logout: the session of this browser's page cookie (live, or lapsed within
    SESSION_MAX) ends, and with it every session of its owner begun before now."""
    actor = (await page_actor(request, session, staff=staff)
             or await lapsed_actor(request, session, staff=staff))
    if actor is not None:
        await sign_out(session, actor)


async def lapsed_actor(request: Request, session: AsyncSession, *, staff: bool
                       ) -> Actor | None:
    """For a logout only: whose session the page cookie names when its token lapsed (left idle)
    but the session has not reached SESSION_MAX: logging out still ends it, and with it any
    copy of the cookie that renewal kept alive elsewhere."""
    claims = signing.read_lapsed_token(
        _settings(request).resolved_secret(), request.cookies.get(STAFF if staff else CITIZEN, ""),
        kind=STAFF_PAGE if staff else CITIZEN_PAGE, now=clock.now())
    began = token_signed_in(claims)
    if claims is None or began is None \
            or clock.now().timestamp() - began > SESSION_MAX.total_seconds():
        return None
    subject = str(claims.get("sub", ""))
    if not subject.isdigit() or len(subject) > 12:
        return None
    actor: Actor | None = Actor(kind="citizen", id=int(subject))
    if staff:
        from teeka.models import StaffUser

        found = await session.get(StaffUser, int(subject))
        actor = Actor.for_staff(found) if found is not None and found.active else None
    # a session already ended (logged out since) ends nothing more: a copy of its cookie
    # cannot log its owner out of their later sessions
    if actor is None or session_ended(began, await signed_out_at(session, actor)):
        return None
    return actor


def renew(request: Request, response: Response, actor: Actor) -> None:
    """Sliding expiry: every page a signed-in person opens extends their session, up to
    SESSION_MAX after they signed in (the renewed token keeps the sign-in time)."""
    if actor.is_citizen:
        began = _signed_in(request, CITIZEN, CITIZEN_PAGE)
        set_cookie(request, response, CITIZEN, citizen_cookie_token(request, actor.id, began),
                   _settings(request).citizen_token_minutes)
    else:
        began = _signed_in(request, STAFF, STAFF_PAGE)
        set_cookie(request, response, STAFF, staff_cookie_token(request, actor.id, began),
                   STAFF_PAGE_MINUTES)


# ---------------------------------------------------------------- CSRF


def csrf_seed(request: Request) -> str:
    seed = request.cookies.get(CSRF) or getattr(request.state, "csrf_seed", None)
    if not seed:
        seed = secrets.token_urlsafe(24)
        request.state.csrf_seed = seed
    return str(seed)


def csrf_token(request: Request) -> str:
    return signing.keyed_hash(_settings(request).resolved_secret(), "csrf", csrf_seed(request))


def check_csrf(request: Request, submitted: str | None) -> None:
    seed = request.cookies.get(CSRF)
    if not seed or not submitted or not signing.constant_time_equal(
            signing.keyed_hash(_settings(request).resolved_secret(), "csrf", seed), submitted):
        raise CsrfFailed()


class CsrfFailed(errors.DomainError):
    code = "CsrfFailed"
    status = 403
    message = "This form has expired. Please go back, reload the page and try again."
