"""A citizen on a small phone: search, log in, add a person, book, print the slip, change the
appointment, cancel it — in Hindi and in English; and the booking again with JavaScript off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import new_mobile, otp_login, screenshot
from tests.browser.steps import (
    Person,
    add_person,
    book_on_page,
    expect_language,
    only_reference_id,
    open_first_session,
    search_district,
)


@pytest.mark.parametrize("lang", ["hi", "en"])
def test_citizen_books_prints_reschedules_and_cancels(page: Page, live_server: str,
                                                      lang: str) -> None:
    shots = f"citizen-{lang}"
    # Search: the home page in the chosen language, then the district's free places.
    page.goto(f"/?lang={lang}")
    expect_language(page, lang)
    screenshot(page, f"{shots}-01-home", full_page=False)
    search_district(page)
    expect(page.locator("section.centre").first).to_be_visible()
    session_id = open_first_session(page, age="45+")

    # Booking needs a login: the page sends the person to /login and back after the OTP.
    assert re.search(r"/login\?next=%2Fbook%2F|/login\?next=/book/", page.url), page.url
    expect_language(page, lang)  # remembered in the cookie, no ?lang= on these pages
    otp_login(page, live_server, new_mobile(), shots=f"{shots}-02")
    assert page.url.endswith(f"/book/{session_id}"), page.url
    expect_language(page, lang)

    # Nobody is registered yet: add a person, and come back to the same session.
    with page.expect_navigation():
        page.locator('main a[href^="/me/add?next=/book/"]').first.click()
    add_person(page, Person(name="Sunita Sahu" if lang == "en" else "सुनीता साहू",
                            birth_year=1968), shots=f"{shots}-03")
    assert page.url.endswith(f"/book/{session_id}"), page.url

    number = book_on_page(page, shots=f"{shots}-04")
    expect(page.locator("[role=status]")).to_be_visible()
    screenshot(page, f"{shots}-05-booked")
    reference_id = page.locator("main .reference-id").first.inner_text().strip()
    secret_code = page.locator("main .secret-code").first.inner_text().strip()
    assert re.fullmatch(r"\d{14}", reference_id) and re.fullmatch(r"\d{4}", secret_code)

    # The printable slip: confirmation number, reference id and secret code.
    with page.expect_navigation():
        page.click("#slip-link")
    assert f"/slip/{number}" in page.url
    slip = page.locator("main").inner_text()
    assert number in slip and reference_id in slip and secret_code in slip
    screenshot(page, f"{shots}-06-slip")

    # My appointments: the booking is there.
    page.goto("/me")
    expect_language(page, lang)
    assert only_reference_id(page) == reference_id
    card = page.locator(f"#person-{reference_id}")
    expect(card.locator(".confirmation")).to_have_text(number)
    before = (card.locator(".appointment-date").inner_text(),
              card.locator(".appointment-slot").inner_text())
    screenshot(page, f"{shots}-07-me")

    # Change the date or time: another free place of the same vaccine for the person's age.
    with page.expect_navigation():
        card.locator('a[href$="/reschedule"]').click()
    expect_language(page, lang)
    page.locator('div.check:has(label:has-text("45+")) input[name=place]').first.check()
    screenshot(page, f"{shots}-08-reschedule", full_page=False)
    with page.expect_navigation():
        page.click("#reschedule-button")
    assert "/me?done=rescheduled" in page.url, (
        page.url, page.locator(".error").all_inner_texts())
    expect(page.locator("[role=status]")).to_be_visible()
    card = page.locator(f"#person-{reference_id}")
    after = (card.locator(".appointment-date").inner_text(),
             card.locator(".appointment-slot").inner_text())
    assert after != before, (before, after)
    screenshot(page, f"{shots}-09-rescheduled")

    # Cancel: asked once more, then the place is free again and the card has no appointment.
    with page.expect_navigation():
        card.locator('a[href$="/cancel"]').click()
    expect_language(page, lang)
    screenshot(page, f"{shots}-10-cancel")
    with page.expect_navigation():
        page.locator("main form[method=post] button[type=submit]").click()
    assert "/me?done=cancelled" in page.url, page.url
    expect(page.locator("[role=status]")).to_be_visible()
    expect(page.locator(f"#person-{reference_id} .appointment")).to_have_count(0)
    screenshot(page, f"{shots}-11-cancelled")


def test_booking_works_with_javascript_off(nojs_page: Page, live_server: str) -> None:
    page = nojs_page
    shots = "nojs"
    page.goto("/")
    screenshot(page, f"{shots}-01-home", full_page=False)
    search_district(page)
    session_id = open_first_session(page, age="45+")
    otp_login(page, live_server, new_mobile(), shots=f"{shots}-02")
    assert page.url.endswith(f"/book/{session_id}"), page.url
    with page.expect_navigation():
        page.locator('main a[href^="/me/add?next=/book/"]').first.click()
    add_person(page, Person(name="रमेश वर्मा", birth_year=1955, gender="male"),
               shots=f"{shots}-03")
    number = book_on_page(page, shots=f"{shots}-04")
    screenshot(page, f"{shots}-05-booked")
    with page.expect_navigation():
        page.click("#slip-link")
    assert number in page.locator("main").inner_text()
    screenshot(page, f"{shots}-06-slip")
    page.goto("/me")
    expect(page.locator("main .confirmation")).to_have_text(number)
