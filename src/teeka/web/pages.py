"""Plumbing shared by every signed-in page: render with a sliding session, redirect after a
POST, and undo a refused service call before the form is shown again."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.db import AFTER_COMMIT, AFTER_END, run_hooks
from teeka.web import session as websession
from teeka.web.templating import render


def page(request: Request, actor: Actor, name: str, lang: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """A page for a signed-in citizen or staff user; their session slides on every page."""
    response = render(request, name, lang, status_code=status_code, actor=actor,
                      signed_in=actor, **context)
    websession.renew(request, response, actor)
    return response


def see_other(request: Request, actor: Actor, url: str) -> RedirectResponse:
    """The redirect after a successful POST (303), renewing the session."""
    response = RedirectResponse(url, status_code=303)
    websession.renew(request, response, actor)
    return response


async def undo(db: AsyncSession, exc: errors.DomainError) -> None:
    """A refusal answered with a page is not raised through the unit of work, so roll back what
    the service flushed before it refused (a claimed Idempotency-Key, a place taken for the
    first of two people) — unless the error keeps its changes (a counted wrong try). What was to
    follow the commit of the rolled-back work (teeka.db.AFTER_COMMIT) is dropped with it."""
    if not exc.keeps_changes:
        await db.rollback()
        db.info.pop(AFTER_COMMIT, None)
        await run_hooks(db.info.pop(AFTER_END, ()))  # rolled back: what it took goes back now
