"""The waiting-room page: join, then a page that refreshes itself (no JavaScript) and shows the
position, an honest estimated wait, and the hold once admitted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeka import errors
from teeka.surge.api import room
from teeka.surge.service import read_ticket, said
from teeka.web import session as websession
from teeka.web.deps import CitizenPage, Db, Form, Lang
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)


def _cookie(opening_id: int) -> str:
    return f"teeka_queue_{opening_id}"


@router.get("/queue/{opening_id}", response_class=HTMLResponse)
async def queue_page(opening_id: int, request: Request, db: Db, lang: Lang,
                     actor: CitizenPage) -> Response:
    opening = await room(request).opening(db, opening_id)
    token = request.cookies.get(_cookie(opening_id))
    status = None
    if token:
        try:
            status = await room(request).status(db, opening, actor, token)
        except errors.QueueTokenInvalid:
            status = None
        # A reload before the time the last answer named: the same ticket, refreshed a little
        # later, without asking the room (the page never shows an error for coming too early).
        except errors.RateLimited as early:
            # A ticket whose answer left nothing to wait for (their turn, booked, closed...):
            # that answer again, read from the ticket itself.
            again = said(room(request).secret, token, opening_id, actor)
            if again is not None:
                return render(request, "queue.html", lang, opening=opening, status=again,
                              signed_in=True)
            index, _ = read_ticket(room(request).secret, token, opening_id, actor)
            return render(request, "queue.html", lang, opening=opening, status=None,
                          signed_in=True, early_s=early.params.get("seconds", 2),
                          early_position=index + 1 if index >= 0 else None)
    response = render(request, "queue.html", lang, opening=opening, status=status,
                      signed_in=True)
    if status is not None:
        websession.set_cookie(request, response, _cookie(opening_id), status.token, 6 * 60)
    websession.renew(request, response, actor)
    return response


@router.post("/queue/{opening_id}/join")
async def join(opening_id: int, request: Request, db: Db, actor: CitizenPage,
               form: Form) -> Response:
    wr = room(request)
    status = await wr.join(db, await wr.opening(db, opening_id), actor)
    response = RedirectResponse(f"/queue/{opening_id}", status_code=303)
    websession.set_cookie(request, response, _cookie(opening_id), status.token, 6 * 60)
    return response
