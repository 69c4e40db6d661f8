"""Security headers on every response; the language chosen for the request.

A plain ASGI middleware (not starlette's BaseHTTPMiddleware, which runs every request through a
task group and a stream: ~9 % of a booking's CPU, measured by bench/costs.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from teeka.i18n import LANGUAGES, pick_language

STATIC = Path(__file__).resolve().parent.parent / "static"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
}


def _cookie(name: str, value: str, **options: object) -> str:
    """A Set-Cookie value, formatted exactly as starlette's Response.set_cookie does."""
    response = Response()
    response.set_cookie(name, value, **options)  # type: ignore[arg-type]
    return response.headers["set-cookie"]


class SecurityHeaders:
    """Chooses the request's language (`?lang=`, then the cookie, then Accept-Language) into
    `request.state.lang`; adds the security headers to every response, the CSRF seed cookie when
    a page made one, and the language cookie when `?lang=` chose."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        chosen = request.query_params.get("lang")
        state = scope.setdefault("state", {})
        state["lang"] = chosen if chosen in LANGUAGES else pick_language(
            request.cookies.get("lang"), request.headers.get("accept-language"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                seed = state.get("csrf_seed")
                if seed and not request.cookies.get("teeka_csrf"):
                    # over HTTPS only outside development, like the session cookies: a seed
                    # planted over plain HTTP would let a page forge this person's forms
                    settings = getattr(scope["app"].state, "settings", None)
                    headers.append("set-cookie", _cookie(
                        "teeka_csrf", seed, max_age=7 * 86400, httponly=True, samesite="lax",
                        path="/", secure=not getattr(settings, "is_development", False)))
                for k, v in HEADERS.items():
                    headers.setdefault(k, v)
                if chosen in LANGUAGES:
                    headers.append("set-cookie", _cookie(
                        "lang", chosen, max_age=365 * 86400, samesite="lax"))
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)
