"""Security headers on every response; the language chosen for the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response

from teeka.i18n import LANGUAGES, pick_language

STATIC = Path(__file__).resolve().parent.parent / "static"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
}


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        chosen = request.query_params.get("lang")
        request.state.lang = chosen if chosen in LANGUAGES else pick_language(
            request.cookies.get("lang"), request.headers.get("accept-language"))
        response = await call_next(request)
        seed = getattr(request.state, "csrf_seed", None)
        if seed and not request.cookies.get("teeka_csrf"):
            response.set_cookie("teeka_csrf", seed, max_age=7 * 86400, httponly=True,
                                samesite="lax", path="/")
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if chosen in LANGUAGES:
            response.set_cookie("lang", chosen, max_age=365 * 86400, samesite="lax")
        return response
