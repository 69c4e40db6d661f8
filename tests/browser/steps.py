"""What a person does on the pages, step by step, as the journeys share them. Each step acts
through the page (labels, ids and form fields of the templates), never through the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from playwright.sync_api import Page, expect

from tests.browser.conftest import new_aadhaar, screenshot, submit

RAIPUR = "109"


def dmy(day: date) -> str:
    return day.strftime("%d-%m-%Y")


def expect_language(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)
    heading = page.locator("main h1").first.inner_text()
    has_devanagari = bool(re.search(r"[\u0900-\u097F]", heading))
    if lang == "hi":
        assert has_devanagari or re.search(r"\d", heading), f"not Hindi: {heading!r}"
    else:
        assert not has_devanagari, f"not English: {heading!r}"


def search_district(page: Page, district_id: str = RAIPUR, day: date | None = None) -> None:
    """On the home page: choose a district (and a first date), press Search."""
    page.select_option("#district", district_id)
    if day is not None:
        page.fill("#date", day.isoformat())
    with page.expect_navigation():
        page.locator("form.search button[type=submit]").click()


def open_first_session(page: Page, *, age: str = "45+") -> str:
    """Follow the first Book link of a session for the age band; return its session id."""
    link = page.locator(f'section.centre tr:has-text("{age}") a[href^="/book/"]').first
    href = link.get_attribute("href") or ""
    with page.expect_navigation():
        link.click()
    return href.rsplit("/", 1)[-1]


@dataclass
class Person:
    name: str
    birth_year: int
    gender: str = "female"
    id_type: str = "aadhaar"
    id_number: str = ""
    priority_group: str = "none"
    reference_id: str = ""
    secret_code: str = ""

    def __post_init__(self) -> None:
        self.id_number = self.id_number or new_aadhaar()


def fill_add_form(page: Page, person: Person) -> None:
    page.fill("#name", person.name)
    page.fill("#birth_year", str(person.birth_year))
    page.select_option("#gender", person.gender)
    page.select_option("#id_type", person.id_type)
    page.fill("#id_number", person.id_number)
    page.select_option("#priority_group", person.priority_group)


def add_person(page: Page, person: Person, *, shots: str | None = None) -> None:
    """On /me/add (perhaps with ?next=): fill the form and send it."""
    assert "/me/add" in page.url, page.url
    fill_add_form(page, person)
    if shots:
        screenshot(page, f"{shots}-add-person")
    submit(page, "/me/add")
    assert "/me/add" not in page.url, f"add refused: {page.locator('.error').all_inner_texts()}"


def book_on_page(page: Page, person_ref: str | None = None, *, slot_index: int = 0,
                 shots: str | None = None) -> str:
    """On /book/{session}: choose a slot and the person (the first one offered if not named),
    confirm; return the confirmation number (on /booked/{no})."""
    assert "/book/" in page.url, page.url
    page.locator("input[name=slot]").nth(slot_index).check()
    box = (page.locator(f'input[name=beneficiary][value="{person_ref}"]') if person_ref
           else page.locator("input[name=beneficiary]").first)
    box.check()
    if shots:
        screenshot(page, f"{shots}-book")
    with page.expect_navigation():
        page.click("#book-button")
    assert "/booked/" in page.url, f"booking refused: {page.locator('.error').all_inner_texts()}"
    number = page.locator("#confirmation-no").inner_text().strip()
    assert number and page.url.rstrip("/").endswith(number), (number, page.url)
    return number


def only_reference_id(page: Page) -> str:
    """The one person on /me: their reference id."""
    refs = page.locator("main .reference-id").all_inner_texts()
    assert len(refs) == 1, refs
    return refs[0].strip()
