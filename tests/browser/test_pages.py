"""Every page a citizen sees, in Hindi and English: no serious or critical axe-core violation, and
at most 30 KB over the wire for the HTML and its CSS (gzip; fonts aside). And the language a
person chooses is remembered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    PHONE,
    TIMEOUT_MS,
    NewContext,
    assert_accessible,
    measure,
    new_mobile,
    otp_login,
)
from tests.browser.steps import (
    Person,
    add_person,
    book_on_page,
    expect_language,
    open_first_session,
    search_district,
)

BUDGET = 30 * 1024  # bytes: HTML + CSS, compressed, headers included

PUBLIC = {"home", "home-raipur", "login", "otp", "slip", "person-slip", "not-found"}
CITIZEN_PAGES = ["home", "home-raipur", "login", "otp", "me", "add", "person", "delete", "book",
                 "booked", "slip", "person-slip", "reschedule", "cancel", "not-found"]


@pytest.fixture(scope="module")
def citizen(browser: Browser, live_server: str) -> Iterator[dict[str, Any]]:
    """One citizen with one person and a booking: the signed-in cookies and the address of each
    page, for fresh contexts to open."""
    context = browser.new_context(base_url=live_server, viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    search_district(page)
    session_id = open_first_session(page, age="45+")
    otp_login(page, live_server, new_mobile())
    page.goto(f"/me/add?next=/book/{session_id}")
    add_person(page, Person(name="Meena Sahu", birth_year=1970))
    number = book_on_page(page)
    slip = page.locator("#slip-link").get_attribute("href")
    ref = page.locator("main .reference-id").first.inner_text().strip()
    page.goto("/me")
    card = page.locator(f"#person-{ref}")
    reschedule = card.locator('a[href$="/reschedule"]').get_attribute("href")
    cancel = card.locator('a[href$="/cancel"]').get_attribute("href")
    page.goto(f"/me/people/{ref}")
    person_slip = page.locator('main a[href^="/slip/person/"]').get_attribute("href")
    urls = {"home": "/", "home-raipur": "/?district_id=109", "login": "/login",
            "otp": "/login/otp?txn=00000000-0000-0000-0000-000000000000", "me": "/me",
            "add": "/me/add", "person": f"/me/people/{ref}", "delete": f"/me/people/{ref}/delete",
            "book": f"/book/{session_id}", "booked": f"/booked/{number}", "slip": slip,
            "person-slip": person_slip, "reschedule": reschedule, "cancel": cancel,
            "not-found": "/slip/NOPE?sig=x"}
    yield {"state": context.storage_state(), "urls": urls, "base": live_server}
    context.close()


def _open(new_context: NewContext, citizen: dict[str, Any], name: str, lang: str) -> Any:
    """A fresh context (cold cache) in `lang`: signed in, unless the page is a public one."""
    context = new_context(**({} if name in PUBLIC else {"storage_state": citizen["state"]}))
    host = urlparse(citizen["base"]).hostname
    context.add_cookies([{"name": "lang", "value": lang, "domain": host, "path": "/"}])
    return context


@pytest.mark.parametrize("lang", ["hi", "en"])
@pytest.mark.parametrize("name", CITIZEN_PAGES)
def test_citizen_page_fits_the_budget_and_has_no_serious_accessibility_problem(
        new_context: NewContext, citizen: dict[str, Any], name: str, lang: str) -> None:
    # Bytes first, with a cold cache: the document (after any redirect) and its stylesheet.
    page, transfers = measure(_open(new_context, citizen, name, lang), citizen["urls"][name])
    assert [t.kind for t in transfers] == ["document", "stylesheet"], transfers
    for t in transfers:
        assert t.body > 0 and t.headers > 0, t
        assert t.encoding == "gzip", f"{t.url} not compressed: {t}"
    total = sum(t.total for t in transfers)
    print(f"\n{name}-{lang}: {total} bytes "
          + ", ".join(f"{t.kind} {t.body}+{t.headers}" for t in transfers))
    assert total <= BUDGET, f"{name} ({lang}): {total} bytes > {BUDGET}: {transfers}"
    # Then axe-core on the same page.
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert_accessible(page, f"{name}-{lang}")


def test_language_choice_is_remembered(page: Page) -> None:
    page.goto("/")
    expect_language(page, "hi")  # Hindi first
    with page.expect_navigation():
        page.locator('header a[hreflang="en"]').click()
    expect_language(page, "en")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies.get("lang") == "en", cookies
    page.goto("/login")  # no ?lang=: the cookie speaks
    expect_language(page, "en")
    expect(page.locator('header a[hreflang="en"]')).to_have_attribute("aria-current", "true")
    with page.expect_navigation():
        page.locator('header a[hreflang="hi"]').click()
    expect_language(page, "hi")
    page.goto("/")
    expect_language(page, "hi")
    assert {c["name"]: c["value"] for c in page.context.cookies()}.get("lang") == "hi"


def test_language_switch_works_with_javascript_off(nojs_page: Page) -> None:
    nojs_page.goto("/login?lang=en")
    expect_language(nojs_page, "en")
    nojs_page.goto("/")
    expect_language(nojs_page, "en")
