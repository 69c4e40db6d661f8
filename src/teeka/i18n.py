"""Hindi and English. Catalogues are gettext .po files under teeka/locale, read with Babel."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from babel.messages.pofile import read_po
from starlette.requests import cookie_parser

LANGUAGES = ("hi", "en")
DEFAULT_LANGUAGE = "hi"
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache
def _catalogue(lang: str) -> dict[str, str]:
    """All catalogues of a language merged (messages.po, plus one .po per area of pages)."""
    out: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            catalog = read_po(f)
        out.update({str(m.id): str(m.string) for m in catalog if m.id and m.string})
    return out


def is_msgid(text: str) -> bool:
    """Whether `text` is a msgid of the code (every one has its Hindi translation: tests)."""
    return text in _catalogue("hi")


def translate(lang: str, msgid: str, **params: Any) -> str:
    text = _catalogue(lang).get(msgid, msgid) if lang != "en" else msgid
    return text.format(**params) if params else text


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie wins; then the first supported language in Accept-Language; then Hindi."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower().replace("_", "-")
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def request_language(scope: Mapping[str, Any], *, national: bool = False) -> str:
    """The language of a request from its raw scope, as the routes choose it: `?lang=`, then
    the `lang` cookie, then Accept-Language (teeka.web.security); for the national API
    (`national`) Hindi only when Accept-Language asks for it first (teeka.web.errors)."""
    headers = scope.get("headers", [])
    accept = next((v for k, v in headers if k == b"accept-language"), b"").decode("latin-1")
    if national:
        return "hi" if accept.lower().startswith("hi") else "en"
    query: bytes = scope.get("query_string", b"")
    # As Starlette reads it: decoded, the last `lang` wins. Parsed only when it may hold one
    # (a poll's query is a ticket: this runs for every refusal on the fast path).
    if b"lang" in query or b"%" in query:
        chosen = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                  if k == "lang"]
        if chosen and chosen[-1] in LANGUAGES:
            return chosen[-1]
    cookie = next((v for k, v in headers if k == b"cookie"), b"").decode("latin-1")
    return pick_language(cookie_parser(cookie).get("lang") if "lang=" in cookie else None,
                         accept or None)
