"""Request-scoped dependencies: the unit of work, the actor, the language."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Header, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.auth.service import actor_from_token, bearer_token
from teeka.config import Settings
from teeka.db import (
    AFTER_COMMIT,
    AFTER_END,
    WROTE,
    busy_on_database_trouble,
    run_hooks,
    session_scope,
)
from teeka.i18n import pick_language

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_WAL_MARK = text("SELECT pg_logical_emit_message(true, 'teeka', '')")


async def get_settings_dep(request: Request) -> Settings:  # async: no thread hop
    settings: Settings = request.app.state.settings
    return settings


async def db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit once at the end (before the response is sent),
    or roll back. A lost race the database resolved (deadlock, serialization) or an exhausted
    pool becomes a retryable Busy (503 + Retry-After), never a 500; so does a failover in
    progress (no primary reachable, a connection lost, a commit not yet on a standby).

    On PostgreSQL a write request's transaction always writes a (logical message) WAL record, so
    its commit waits for a synchronous standby even when the request only read (an idempotent
    replay of a booking that may so far exist on this node alone): what we acknowledge is
    replicated. A service that has certainly written sets `session.info[WROTE]` and saves the
    round trip.

    At most the pool's connections plus `db_max_waiting` units of work are let in at once
    (teeka.db.Door); beyond that the request is Busy at once, not after the pool's timeout."""
    door = request.app.state.db_door
    if not door.enter():
        raise errors.Busy()
    session: AsyncSession | None = None
    try:
        async with busy_on_database_trouble():
            async with session_scope(request.app.state.sessionmaker) as session:
                yield session
                if (request.method not in _SAFE_METHODS and not session.info.get(WROTE)
                        and session.get_bind().dialect.name == "postgresql"):
                    # A transactional WAL record: the commit then waits for a synchronous
                    # standby even when nothing else was written (a replayed idempotent
                    # booking). Taking a transaction id alone writes no WAL and does not wait
                    # (found by make drill).
                    conn = await session.connection()  # Core: no ORM execution path
                    await conn.execute(_WAL_MARK)
    except Exception:
        if session is not None:
            await run_hooks(session.info.get(AFTER_END, ()))
        raise
    except BaseException:  # cancelled: the hooks still run to their end (run_hooks)
        if session is not None:
            await run_hooks(session.info.get(AFTER_END, ()))
        raise
    finally:
        door.leave()
    assert session is not None
    await run_hooks(session.info.get(AFTER_COMMIT, ()), session.info.get(AFTER_END, ()))
    if session.info.get("capacity_changed"):
        request.app.state.capacity_changed()


# scope="function": the unit of work ends (commit, or the Busy/rollback it may raise) when the
# route returns, *before* the response is sent. FastAPI's default ("request") runs it after the
# response went out: a 201 for a booking not yet committed, or never.
UNIT_OF_WORK = Depends(db, scope="function")
Db = Annotated[AsyncSession, UNIT_OF_WORK]


async def language(request: Request) -> str:
    lang: str = getattr(request.state, "lang", None) or pick_language(
        request.cookies.get("lang"), request.headers.get("accept-language"))
    return lang


async def actor(request: Request, session: Db,
                authorization: Annotated[str | None, Header()] = None) -> Actor:
    token = bearer_token(authorization)
    if token is None:
        raise errors.Unauthenticated()
    return await actor_from_token(session, request.app.state.settings, token)


def _here(request: Request) -> str:
    """Where to come back after signing in: the path and its query (a GET's search). For a form
    sent after the session ended, the page it was sent from (on this site), whose form can be
    sent again — the form's own address may answer only POST; none when that is not known."""
    if request.method in ("GET", "HEAD"):
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    sent_from = urlsplit(request.headers.get("referer", ""))
    if sent_from.netloc == request.url.netloc and sent_from.path.startswith("/"):
        return sent_from.path + (f"?{sent_from.query}" if sent_from.query else "")
    return ""


async def citizen_page(request: Request, session: Db) -> Actor:
    """A signed-in citizen (cookie), or a redirect to the login page."""
    from teeka.web.session import LoginRequired, page_actor

    found = await page_actor(request, session, staff=False)
    if found is None:
        raise LoginRequired("/login", _here(request))
    return found


async def staff_page(request: Request, session: Db) -> Actor:
    """A signed-in staff user (password and second factor), or a redirect to staff login."""
    from teeka.web.session import LoginRequired, page_actor

    found = await page_actor(request, session, staff=True)
    if found is None:
        raise LoginRequired("/staff/login", _here(request))
    return found


async def csrf_form(request: Request) -> dict[str, str]:
    """The submitted form, after its CSRF token was checked. Files are not expected here."""
    from teeka.web.session import check_csrf

    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    return {k: v for k, v in form.items() if isinstance(v, str)}


CitizenPage = Annotated[Actor, Depends(citizen_page)]
StaffPage = Annotated[Actor, Depends(staff_page)]
Form = Annotated[dict[str, str], Depends(csrf_form)]
CurrentActor = Annotated[Actor, Depends(actor)]
Lang = Annotated[str, Depends(language)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
