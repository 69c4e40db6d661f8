"""Jinja2 pages in the reader's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from teeka.i18n import translate

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render(request: Request, name: str, lang: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    def _(msgid: str, **params: Any) -> str:
        return translate(lang, msgid, **params)

    from teeka.web.session import csrf_token

    context.setdefault("signed_in", None)
    html = env.get_template(name).render(request=request, lang=lang, _=_,
                                         csrf=csrf_token(request), **context)
    return HTMLResponse(html, status_code=status_code,
                        headers={"Content-Language": lang, "Cache-Control": "no-store"})
