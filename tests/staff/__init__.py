"""Staff pages, through real HTTP as a person in a browser with JavaScript off would use them.

`sign_in` goes through the real sign-in pages: the password form, then the TOTP second factor
(enrolled at first sign-in from the key the page shows)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pyotp

from teeka.kit import clock
from tests.factories import PASSWORD, next_aadhaar


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:800]
    return m[1]


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, (name, html[:800])
    return m[1]


def inner(html: str, element_id: str) -> str:
    """The HTML inside the element with this id (no nested element of the same tag)."""
    m = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', html, re.S)
    assert m, (element_id, html[:2000])
    return m[2]


def by_id(html: str, element_id: str) -> str:
    """The text inside the element with this id."""
    return re.sub(r"<[^>]+>", "", inner(html, element_id)).strip()


def totp_now(secret: str) -> str:
    return pyotp.TOTP(secret).at(int(clock.now().timestamp()))


async def sign_in(client: httpx.AsyncClient, username: str, secret: str | None = None) -> str:
    """Password, then the second factor; returns the TOTP secret (enrolled on first sign-in)."""
    page = await client.get("/staff/login")
    r = await client.post("/staff/login", data={"csrf": csrf_of(page.text), "username": username,
                                                 "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert page.status_code == 200, page.text
    if secret is None:
        m = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)
        assert m, page.text[:800]
        secret = m[1]
    r = await client.post("/staff/second-factor", data={"csrf": csrf_of(page.text),
                                                         "code": totp_now(secret)})
    assert r.status_code == 303, r.text
    return secret


@asynccontextmanager
async def staff_client(app: Any, username: str, lang: str = "en"
                       ) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (its own cookies), signed in as `username`."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://teeka.test",
                                 headers={"Accept-Language": lang}) as client:
        await sign_in(client, username)
        yield client


async def submit(client: httpx.AsyncClient, page_url: str, action: str,
                 data: dict[str, Any]) -> httpx.Response:
    """Open the page holding the form (for its CSRF token), then post the form."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf": csrf_of(page.text), **data})


PERSON = {"name": "Sukhiya Bai", "birth_year": "1950", "gender": "female", "id_type": "aadhaar",
          "priority_group": "none"}


async def register(client: Any, **fields: str) -> Any:
    """Register a person at the help desk (no mobile phone), through its form."""
    return await submit(client, "/staff/helpdesk", "/staff/helpdesk/register",
                        {**PERSON, "id_number": next_aadhaar(), **fields})
