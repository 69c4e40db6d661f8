"""Staff sign-in: password (argon2) then TOTP; CSRF on forms; sessions that expire."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
from sqlalchemy import select

from teeka.db import session_scope
from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import AuditEntry, StaffUser
from tests.factories import PASSWORD

LOCKED = "Too many wrong codes. Please try again in 15 minutes."
WRONG_WAY = ("This address cannot be opened this way. Go back to the previous page and try "
             "again.")


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m[1]


def code_for(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(clock.now().timestamp()) + 30 * steps_ahead)


async def sign_in(client, username: str, secret: str | None = None) -> tuple[str, object]:
    page = await client.get("/staff/login")
    r = await client.post("/staff/login", data={"csrf": csrf_of(page.text), "username": username,
                                                 "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    if secret is None:
        secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)[1]
    r = await client.post("/staff/second-factor", data={"csrf": csrf_of(page.text),
                                                         "code": code_for(secret)})
    return secret, r


async def test_first_sign_in_enrols_the_second_factor(client, world, maker) -> None:
    secret, r = await sign_in(client, "vaccinator_a")
    assert r.status_code == 303 and r.headers["location"] == "/staff/centre"
    assert "teeka_staff" in r.headers.get("set-cookie", "")
    async with session_scope(maker) as db:
        staff = (await db.execute(select(StaffUser).where(StaffUser.username == "vaccinator_a"))
                 ).scalar_one()
        assert staff.totp_secret == secret
        actions = (await db.execute(select(AuditEntry.action))).scalars().all()
    assert "auth.staff.second_factor_passed" in actions
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"] == "/staff/centre"


async def test_a_code_is_accepted_once_and_a_wrong_one_not_at_all(client, world) -> None:
    now = clock.now().timestamp()
    clock.shift(timedelta(seconds=30 - now % 30 + 1))  # start of a 30 s step: no step change below
    secret, r = await sign_in(client, "helpdesk")
    assert r.status_code == 303
    client.cookies.clear()
    # the same code again (same 30-second step): refused
    _, r = await sign_in(client, "helpdesk", secret)
    assert r.status_code == 401
    assert "teeka_staff" not in r.headers.get("set-cookie", "")
    page = await client.get("/staff/second-factor")
    r = await client.post("/staff/second-factor", data={"csrf": csrf_of(page.text),
                                                         "code": "000000"})
    assert r.status_code == 401
    clock.shift(timedelta(seconds=31))
    _, r = await sign_in(client, "helpdesk", secret)
    assert r.status_code == 303


async def test_wrong_password_and_missing_csrf(client, world) -> None:
    page = await client.get("/staff/login", headers={"Accept-Language": "en"})
    r = await client.post("/staff/login", data={"csrf": csrf_of(page.text),
                                                 "username": "helpdesk", "password": "nope"},
                          headers={"Accept-Language": "en"})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    r = await client.post("/staff/login", data={"username": "helpdesk", "password": PASSWORD})
    assert r.status_code == 403
    r = await client.post("/staff/login", data={"csrf": "forged", "username": "helpdesk",
                                                 "password": PASSWORD})
    assert r.status_code == 403


async def test_staff_pages_need_both_factors_and_expire(client, world) -> None:
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"] == "/staff/login?next=/staff"
    page = await client.get("/staff/login")
    await client.post("/staff/login", data={"csrf": csrf_of(page.text),
                                            "username": "vaccinator_a", "password": PASSWORD})
    # password alone is not enough
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    client.cookies.clear()
    await sign_in(client, "vaccinator_a")
    assert (await client.get("/staff")).status_code == 303
    assert (await client.get("/staff")).headers["location"] == "/staff/centre"
    clock.shift(timedelta(minutes=61))
    r = await client.get("/staff")
    assert r.headers["location"].startswith("/staff/login")


async def test_api_login_needs_the_second_factor(client, world) -> None:
    body = {"username": "raipur_admin", "password": PASSWORD}
    r = await client.post("/api/v1/staff/login", json=body)
    assert r.status_code == 403 and r.json()["code"] == "SecondFactorNotSetUp"
    secret, _ = await sign_in(client, "raipur_admin")
    clock.shift(timedelta(seconds=31))
    r = await client.post("/api/v1/staff/login", json={**body, "totp": "123456"})
    assert r.status_code == 401 and r.json()["code"] == "SecondFactorWrong"
    r = await client.post("/api/v1/staff/login", json={**body, "totp": code_for(secret)})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    r = await client.post("/api/v1/admin/sessions", headers={"Authorization": f"Bearer {token}"},
                          json={})
    assert r.status_code == 400  # authenticated; the empty body is what is wrong


async def test_wrong_second_factor_codes_lock_it_for_a_while(client, world) -> None:
    """A stolen password does not buy unlimited guesses of the six-digit code: after five wrong
    codes in 15 minutes even the right one is refused (API and page), until the window ends."""
    body = {"username": "raipur_admin", "password": PASSWORD}
    secret, _ = await sign_in(client, "raipur_admin")
    clock.shift(timedelta(seconds=31))
    accepted = {code_for(secret, step) for step in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in accepted)
    for _ in range(5):
        r = await client.post("/api/v1/staff/login", json={**body, "totp": wrong})
        assert r.status_code == 401 and r.json()["code"] == "SecondFactorWrong"
    r = await client.post("/api/v1/staff/login", json={**body, "totp": code_for(secret)})
    assert r.status_code == 429 and r.json()["code"] == "SecondFactorLocked"
    assert r.headers["Retry-After"] == "900"
    client.cookies.clear()
    _, r = await sign_in(client, "raipur_admin", secret)
    assert r.status_code == 429
    assert translate("hi", LOCKED) in r.text or LOCKED in r.text
    clock.shift(timedelta(minutes=15))
    r = await client.post("/api/v1/staff/login", json={**body, "totp": code_for(secret)})
    assert r.status_code == 200, r.text


async def test_open_redirects_are_refused(client, world) -> None:
    page = await client.get("/staff/login?next=//evil.example/x")
    assert "//evil.example" not in page.text
    r = await client.post("/staff/login", data={"csrf": csrf_of(page.text), "username": "helpdesk",
                                                 "password": PASSWORD, "next": "https://evil.example"})
    assert "evil" not in r.headers["location"]


async def test_a_form_sent_after_the_session_ended_comes_back_to_its_page(client, world) -> None:
    """Signing in again after a form was refused for want of a session leads back to the page
    the form was sent from, not to the form's POST-only address; opened by GET, such an
    address answers 405 in both languages, not the framework's English."""
    page = f"{client.base_url}/staff/helpdesk?tab=register"
    r = await client.post("/staff/helpdesk/register", data={"name": "x"},
                          headers={"Referer": page})
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/login?next=/staff/helpdesk%3Ftab%3Dregister"
    # from another site, or not known: no way back is offered
    r = await client.post("/staff/helpdesk/register", data={"name": "x"},
                          headers={"Referer": "https://evil.example/staff/helpdesk"})
    assert r.headers["location"] == "/staff/login?next="
    r = await client.get("/staff/logout")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    assert translate("hi", WRONG_WAY) in r.text and WRONG_WAY in r.text
    r = await client.put("/api/v1/auth/otp", headers={"Accept-Language": "en"})
    assert r.status_code == 405 and r.json() == {"code": "MethodNotAllowed", "message": WRONG_WAY}


async def test_logging_out_ends_a_copied_staff_cookie(client, world, app) -> None:
    """A staff cookie copied before the logout (a shared computer at the centre) is refused at
    once; a later sign-in works."""
    import httpx

    secret, r = await sign_in(client, "vaccinator_a")
    assert r.headers["location"] == "/staff/centre"
    copied = client.cookies.get("teeka_staff")
    page = await client.get("/staff/centre")
    assert page.status_code == 200
    r = await client.post("/staff/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/staff/login"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://teeka.test",
                                 cookies={"teeka_staff": copied}) as other:
        r = await other.get("/staff/centre")
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    clock.shift(timedelta(seconds=30))  # a TOTP code is accepted once: the next step's
    _, r = await sign_in(client, "vaccinator_a", secret)
    assert r.headers["location"] == "/staff/centre"
    assert (await client.get("/staff/centre")).status_code == 200


async def test_the_page_asked_for_comes_back_whole_after_signing_in(client, world) -> None:
    """A `next` with a query of several fields and a fragment survives the second factor
    (its `&` and `#` cut it short before)."""
    wanted = "/staff/problems?show=all&x=1#history"
    page = await client.get("/staff/login", params={"next": wanted})
    r = await client.post("/staff/login", data={"csrf": csrf_of(page.text), "username": "state",
                                                 "password": PASSWORD, "next": wanted})
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)[1]
    r = await client.post("/staff/second-factor", data={
        "csrf": csrf_of(page.text), "code": code_for(secret),
        "next": re.search(r'name="next" value="([^"]*)"', page.text)[1].replace("&amp;", "&")})
    assert r.status_code == 303 and r.headers["location"] == wanted, r.headers["location"]
