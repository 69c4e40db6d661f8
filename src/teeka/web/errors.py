"""One handler for domain errors: JSON for the APIs, a bilingual page for people."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response

from teeka import errors
from teeka.db import count_busy
from teeka.i18n import pick_language, translate
from teeka.web.templating import render


def _lang(request: Request) -> str:
    chosen = getattr(request.state, "lang", None)  # ?lang=, cookie, Accept-Language (middleware)
    return str(chosen) if chosen else pick_language(request.cookies.get("lang"),
                                                    request.headers.get("accept-language"))


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith(".json")


def domain_response(request: Request, exc: errors.DomainError) -> Response:
    if exc.status == 503:  # the backend is struggling: the waiting room admits more slowly
        room = getattr(request.app.state, "waiting_room", None)
        if room is not None:
            room.note_busy()
    from teeka.web.session import LoginRequired

    if isinstance(exc, LoginRequired) and not _is_api(request):
        return RedirectResponse(exc.location, status_code=303)
    lang = _lang(request)
    retry = exc.params.get("seconds") or exc.retry_after
    headers = {"Retry-After": str(retry)} if retry else {}
    if request.url.path.startswith("/api/v2/"):
        from teeka.national.rules import national_code

        # The national error shape; Hindi only when asked for (hi_IN), as the national API.
        v2_lang = "hi" if request.headers.get("accept-language", "").lower().startswith("hi") else "en"
        return JSONResponse({"errorCode": national_code(exc.code), "error": exc.text(v2_lang)},
                            status_code=exc.status, headers=headers)
    if _is_api(request):
        return JSONResponse({"code": exc.code, "message": exc.text(lang)},
                            status_code=exc.status, headers=headers)
    response = render(request, "error.html", lang, status_code=exc.status,
                      message_hi=exc.text("hi"), message_en=exc.text("en"), code=exc.code)
    response.headers.update(headers)
    return response


def install(app: FastAPI) -> None:
    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DomainError)
        return domain_response(request, exc)

    async def on_bad_request(request: Request, exc: Exception) -> Response:
        # The framework's own 400 (a body that is not JSON, a form it cannot parse): in the
        # user's language like every other refusal.
        return domain_response(request,
                               errors.Invalid(detail="the request's body could not be read"))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return await on_bad_request(request, exc)  # its "field" is a position in the text
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) or "body" for e in exc.errors()})
        err = errors.Invalid(detail=", ".join(fields))
        if request.url.path.startswith("/api/v2/"):
            return domain_response(request, err)
        if _is_api(request):
            lang = _lang(request)
            return JSONResponse({"code": err.code, "message": err.text(lang),
                                 "fields": fields}, status_code=400)
        return domain_response(request, err)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return domain_response(request, errors.NotFound())

    async def on_method(request: Request, exc: Exception) -> Response:
        response = domain_response(request, errors.MethodNotAllowed())
        allowed = getattr(exc, "headers", None) or {}
        if "Allow" in allowed:
            response.headers["Allow"] = allowed["Allow"]
        return response

    async def on_redis(request: Request, exc: Exception) -> Response:
        # The shared fast state (waiting room, limits) is unreachable or out of connections:
        # a retryable 503 with Retry-After, never a 500.
        count_busy("redis")
        return domain_response(request, errors.Busy())

    from redis.exceptions import RedisError

    app.add_exception_handler(RedisError, on_redis)
    app.add_exception_handler(errors.DomainError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(404, on_not_found)
    app.add_exception_handler(405, on_method)
    app.add_exception_handler(400, on_bad_request)
    _ = translate  # re-exported for templates
