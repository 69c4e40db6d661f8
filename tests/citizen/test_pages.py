"""The citizen pages, driven by forms only (no JavaScript), over real HTTP and a real database.

A person searches, signs in with an OTP, adds a beneficiary, books, gets a confirmation and a
slip, reschedules and cancels, in Hindi and in English. Around that journey: CSRF, another
account's people, a double-submitted booking, a booking that fails half-way, form errors in the
reader's language, the dose-2 reminder, and the weight of every page on the wire.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import re
from collections.abc import AsyncIterator
from datetime import date, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka import errors
from teeka.booking import repository as booking_repo
from teeka.citizen import rules as citizen_rules
from teeka.citizen.pages import choice_labels
from teeka.config import Settings
from teeka.db import session_scope
from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import Appointment, AppointmentStatus, Beneficiary, Booking, Centre, CentreFee
from teeka.vaccination import service as vaccination_service
from teeka.web.session import CsrfFailed
from tests.factories import (
    World,
    add_beneficiary,
    latest_sms,
    login_citizen,
    next_aadhaar,
    next_mobile,
    publish,
)

Maker = async_sessionmaker[AsyncSession]
SLOTS = ("09:00AM-11:00AM", "11:00AM-01:00PM")
PAGE_LIMIT = 30 * 1024  # HTML + CSS, gzip-compressed, per page

WORDS = {  # a few words of each language that each page must show
    "hi": {"me": "मेरे लाभार्थी", "add": "व्यक्ति जोड़ें", "book": "टीकाकरण बुक करें",
           "booked": "बुकिंग पक्की हो गई", "reschedule": "अपॉइंटमेंट बदलें",
           "cancel": "यह अपॉइंटमेंट रद्द करें?", "home": "टीकाकरण केंद्र खोजें",
           "secret": "गुप्त कोड", "centre_a": "केंद्र अ", "centre_b": "केंद्र ब",
           "rescheduled": "अपॉइंटमेंट बदल दिया गया है", "cancelled": "अपॉइंटमेंट रद्द हो गया है",
           "removed": "व्यक्ति हटा दिया गया है", "free": "निःशुल्क"},
    "en": {"me": "My beneficiaries", "add": "Add a person", "book": "Book a vaccination",
           "booked": "Booking confirmed", "reschedule": "Change the appointment",
           "cancel": "Cancel this appointment?", "home": "Find a vaccination centre",
           "secret": "Secret code", "centre_a": "Centre A", "centre_b": "Centre B",
           "rescheduled": "The appointment has been changed", "cancelled":
           "The appointment has been cancelled", "removed": "The person has been removed",
           "free": "Free"},
}


# ---------------------------------------------------------------- reading pages as a browser would


def text_of(r: httpx.Response) -> str:
    return html.unescape(r.text)


def main_of(r: httpx.Response) -> str:
    """The page's own content (the header repeats the address in its language links)."""
    return r.text.split('<main id="main">', 1)[-1]


def hidden(r: httpx.Response, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', r.text)
    assert m, f"no hidden field {name!r} in {r.request.url}"
    return html.unescape(m[1])


def first(pattern: str, r: httpx.Response) -> str:
    m = re.search(pattern, r.text)
    assert m, f"{pattern!r} not in {r.request.url}:\n{r.text[:3000]}"
    return html.unescape(m[1])


def location(r: httpx.Response) -> str:
    assert r.status_code == 303, (r.status_code, r.text[:2000])
    return r.headers["location"]


async def submit(client: httpx.AsyncClient, page: httpx.Response, action: str,
                 data: dict[str, Any]) -> httpx.Response:
    """POST a form of `page` with its CSRF token, as the browser does."""
    return await client.post(action, data={"csrf": hidden(page, "csrf"), **data})


async def page_login(client: httpx.AsyncClient, maker: Maker, settings: Settings,
                     mobile: str | None = None, next_path: str = "") -> str:
    """Sign in through the pages (mobile, SMS, OTP); return where the site sends the person."""
    mobile = mobile or next_mobile()
    form = await client.get("/login", params={"next": next_path} if next_path else None)
    assert form.status_code == 200 and 'id="mobile"' in form.text
    sent = await submit(client, form, "/login", {"mobile": mobile, "next": hidden(form, "next")})
    otp_page = await client.get(location(sent))
    assert otp_page.status_code == 200 and 'id="otp"' in otp_page.text
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))
    assert code
    done = await submit(client, otp_page, "/login/otp", {
        "txn": hidden(otp_page, "txn"), "next": hidden(otp_page, "next"), "otp": code[1]})
    return location(done)


@pytest.fixture
async def other_client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser (its own cookies), for another account."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test") as c:
        yield c


def person_form(**changes: str) -> dict[str, str]:
    return {"name": "Asha Verma", "birth_year": "1980", "gender": "female",
            "id_type": "aadhaar", "id_number": next_aadhaar(), "priority_group": "none",
            **changes}


async def add_person(client: httpx.AsyncClient, **changes: str) -> str:
    form = await client.get("/me/add")
    r = await submit(client, form, "/me/add", person_form(**changes))
    assert location(r) == "/me?done=added"
    me = await client.get("/me")
    return str(re.findall(r'class="reference-id">(\d{14})<', me.text)[-1])


async def book_through_form(client: httpx.AsyncClient, session_id: str, refs: list[str],
                            slot: str = SLOTS[0]) -> httpx.Response:
    form = await client.get(f"/book/{session_id}")
    assert form.status_code == 200, form.text[:2000]
    return await client.post(f"/book/{session_id}", data={
        "csrf": hidden(form, "csrf"), "idempotency_key": hidden(form, "idempotency_key"),
        "slot": slot, "beneficiary": refs})


async def count(maker: Maker, query: Any) -> int:
    async with maker() as s:
        return int((await s.execute(query)).scalar_one())


async def mismatches(maker: Maker) -> list[tuple[int, int, int]]:
    async with maker() as s:
        return list(await booking_repo.recount_mismatches(s))


def day(offset: int) -> date:
    today: date = clock.today()
    return today + timedelta(days=offset)


def dmy(d: date) -> str:
    return d.strftime("%d-%m-%Y")


# ---------------------------------------------------------------- the whole journey, by forms


@pytest.mark.parametrize("lang", ["hi", "en"])
async def test_the_whole_journey_by_forms_only(client: httpx.AsyncClient, world: World,
                                               maker: Maker, settings: Settings,
                                               lang: str) -> None:
    words = WORDS[lang]
    first_day, later_day = day(1), day(3)
    sid = await publish(maker, world, centre_id=world.centre_a, day=first_day, dose1=5,
                        slots=SLOTS)
    other = await publish(maker, world, centre_id=world.centre_b, day=later_day, dose1=5,
                          slots=SLOTS)
    too_young = await publish(maker, world, centre_id=world.centre_b, day=day(2), dose1=5,
                              max_age=30, slots=SLOTS)

    # Search: the language chosen once sticks (cookie); the week shows both sessions.
    home = await client.get("/", params={"lang": lang, "district_id": world.raipur,
                                         "date": first_day.isoformat()})
    assert home.status_code == 200 and f'lang="{lang}"' in home.text
    assert words["home"] in text_of(home) and words["centre_a"] in text_of(home)
    assert words["centre_b"] in text_of(home) and dmy(later_day) in home.text
    assert words["free"] in text_of(home)
    assert f'href="/book/{sid}"' in home.text

    # Booking needs a signed-in person: the login comes back to the booking form.
    r = await client.get(f"/book/{sid}")
    assert location(r) == f"/login?next=/book/{sid}"
    assert await page_login(client, maker, settings, next_path=f"/book/{sid}") == f"/book/{sid}"

    # Nobody is registered yet: the booking form sends the person to add someone first.
    form = await client.get(f"/book/{sid}")
    assert f'href="/me/add?next=/book/{sid}"' in form.text
    add_form = await client.get("/me/add", params={"next": f"/book/{sid}"})
    assert words["add"] in text_of(add_form)
    r = await submit(client, add_form, "/me/add",
                     person_form(name="Kamla Devi", next=f"/book/{sid}"))
    assert location(r) == f"/book/{sid}"

    # Book: a slot (radio) and the people (checkboxes); then the confirmation.
    form = await client.get(f"/book/{sid}")
    assert words["book"] in text_of(form)
    ref = first(r'id="person-(\d{14})"', form)
    assert 'type="radio" id="slot-2" name="slot" value="11:00AM-01:00PM"' in form.text
    r = await client.post(f"/book/{sid}", data={
        "csrf": hidden(form, "csrf"), "idempotency_key": hidden(form, "idempotency_key"),
        "slot": SLOTS[1], "beneficiary": [ref]})
    confirmation = location(r).removeprefix("/booked/")
    booked = await client.get(f"/booked/{confirmation}")
    assert booked.status_code == 200 and words["booked"] in text_of(booked)
    assert first(r'id="confirmation-no"[^>]*>([^<]+)<', booked) == confirmation
    slip_url = first(r'id="slip-link" href="([^"]+)"', booked)

    # The slip shows what the centre needs.
    me = await client.get("/me")
    assert words["me"] in text_of(me)
    code = first(r'class="secret-code">(\d{4})<', me)
    assert first(r'class="reference-id">(\d{14})<', me) == ref
    assert dmy(first_day) in me.text and SLOTS[1] in me.text and words["centre_a"] in text_of(me)
    slip = await client.get(slip_url)
    assert slip.status_code == 200
    for shown in (ref, code, confirmation, dmy(first_day), SLOTS[1], words["centre_a"],
                  words["secret"], "Kamla Devi"):
        assert shown in text_of(slip), shown

    # Reschedule to the other centre (same vaccine), by a radio button.
    change = first(r'href="(/me/appointments/[^"]+/reschedule)"', me)
    page = await client.get(change)
    assert page.status_code == 200 and words["reschedule"] in text_of(page)
    assert f'value="{sid}|{SLOTS[1]}"' not in page.text  # the present slot is not offered
    assert f'value="{other}|{SLOTS[0]}"' in page.text
    assert f'value="{too_young}|' not in page.text  # not of the person's age band
    r = await submit(client, page, change, {"place": f"{other}|{SLOTS[0]}",
                                            "district_id": str(world.raipur), "pincode": "",
                                            "date": first_day.isoformat(), "page": "1"})
    assert location(r) == "/me?done=rescheduled"
    me = await client.get("/me?done=rescheduled")
    assert words["rescheduled"] in text_of(me)
    assert dmy(later_day) in me.text and words["centre_b"] in text_of(me)

    # Cancel, after a confirm step.
    cancel = first(r'href="(/me/appointments/[^"]+/cancel)"', me)
    page = await client.get(cancel)
    assert words["cancel"] in text_of(page)
    r = await submit(client, page, cancel, {})
    assert location(r) == "/me?done=cancelled"
    me = await client.get("/me?done=cancelled")
    assert words["cancelled"] in text_of(me) and "/cancel" not in me.text
    assert await count(maker, select(func.count()).select_from(Appointment).where(
        Appointment.status == AppointmentStatus.BOOKED)) == 0
    assert await mismatches(maker) == []

    # Remove the person (no dose yet), after a confirm step.
    remove = first(r'href="(/me/people/\d{14}/delete)"', me)
    page = await client.get(remove)
    r = await submit(client, page, remove, {})
    assert location(r) == "/me?done=deleted"
    me = await client.get("/me?done=deleted")
    assert words["removed"] in text_of(me) and ref not in me.text

    # Log out: the pages ask to sign in again.
    r = await submit(client, me, "/logout", {})
    assert location(r) == "/"
    assert location(await client.get("/me")) == "/login?next=/me"


# ---------------------------------------------------------------- search


async def test_search_by_pin_code_shows_a_week_fees_and_full_sessions(
        client: httpx.AsyncClient, world: World, maker: Maker) -> None:
    for offset in range(8):
        await publish(maker, world, centre_id=world.centre_c, day=day(offset), dose1=offset)
    await publish(maker, world, centre_id=world.centre_a, day=day(1), dose1=4)
    async with session_scope(maker) as s:
        centre = await s.get(Centre, world.centre_c)
        assert centre is not None
        centre.fee_type = "Paid"
        s.add(CentreFee(centre_id=world.centre_c, vaccine_id=world.covishield, fee=780))

    r = await client.get("/", params={"pincode": "491226", "date": dmy(day(0)), "lang": "en"})
    assert r.status_code == 200
    assert "Centre C" in r.text and "Centre A" not in r.text
    assert "₹ 780" in r.text and ">Full<" in r.text  # today: no place at all
    shown = re.findall(r"<td>(\d\d-\d\d-\d{4})</td>", r.text)
    assert shown == [dmy(day(i)) for i in range(7)]  # seven days, not eight

    r = await client.get("/", params={"district_id": "", "pincode": "", "lang": "en"})
    assert "Choose a district or enter a PIN code." in r.text and 'class="centre"' not in r.text
    r = await client.get("/", params={"pincode": "12", "lang": "hi"})
    assert "6 अंकों का पिन कोड दर्ज करें।" in text_of(r) and 'value="12"' in r.text
    r = await client.get("/", params={"district_id": world.raipur, "date": "31-02-2020"})
    assert "दिनांक DD-MM-YYYY के रूप में दर्ज करें।" in text_of(r)
    # A past date shows from today; Devanagari digits are read.
    r = await client.get("/", params={"pincode": "४९१२२६", "date": "2001-01-01", "lang": "en"})
    assert f"Free places from {dmy(day(0))}" in text_of(r) and "Centre C" in r.text


async def test_a_big_district_is_shown_a_page_of_centres_at_a_time(
        client: httpx.AsyncClient, world: World, maker: Maker) -> None:
    centres = await more_centres(maker, world, 12)
    for c in centres:
        await publish(maker, world, centre_id=c, day=day(1))
    r = await client.get("/", params={"district_id": world.raipur, "lang": "en"})
    assert r.text.count('class="centre"') == 10 and "page=2" in r.text
    r = await client.get("/", params={"district_id": world.raipur, "lang": "en", "page": "2"})
    assert r.text.count('class="centre"') == 2 and "page=1" in r.text and "page=3" not in r.text


async def more_centres(maker: Maker, world: World, n: int, district: int = 109) -> list[int]:
    async with session_scope(maker) as s:
        template = await s.get(Centre, world.centre_a)
        assert template is not None
        made = [Centre(district_id=district, block_id=template.block_id,
                       name_en=f"Community Health Centre Number {i:02d}",
                       name_hi=f"सामुदायिक स्वास्थ्य केंद्र क्रमांक {i:02d}",
                       address_en="Near the bus stand, Main Road",
                       address_hi="बस स्टैंड के पास, मुख्य मार्ग", pincode=492001 + i,
                       lat=21.2, long=81.6, fee_type="Free", opens_at=time(9),
                       closes_at=time(17), active=True) for i in range(n)]
        s.add_all(made)
        await s.flush()
        return [c.id for c in made]


# ---------------------------------------------------------------- safety


async def test_a_post_without_the_csrf_token_is_refused(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, slots=SLOTS)
    r = await client.post("/login", data={"mobile": next_mobile()})
    assert r.status_code == 403
    await page_login(client, maker, settings)
    ref = await add_person(client)
    form = await client.get(f"/book/{sid}")
    fields = {"idempotency_key": hidden(form, "idempotency_key"), "slot": SLOTS[0],
              "beneficiary": ref}
    for token in (None, "forged"):
        data = {**fields, **({"csrf": token} if token else {})}
        r = await client.post(f"/book/{sid}", data=data)
        assert r.status_code == 403
        assert CsrfFailed().text("en") in r.text and CsrfFailed().text("hi") in r.text
    r = await client.post("/me/add", data=person_form())
    assert r.status_code == 403
    r = await client.post(f"/me/people/{ref}/delete", data={})
    assert r.status_code == 403
    assert await count(maker, select(func.count()).select_from(Appointment)) == 0
    assert await count(maker, select(func.count()).select_from(Beneficiary)) == 1


async def test_another_accounts_people_cannot_be_seen_booked_or_changed(
        client: httpx.AsyncClient, other_client: httpx.AsyncClient, world: World, maker: Maker,
        settings: Settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5, slots=SLOTS)
    spare = await publish(maker, world, centre_id=world.centre_b, dose1=5, slots=SLOTS)
    await page_login(client, maker, settings)
    mine = await add_person(client, name="Owner Person")
    confirmation = location(await book_through_form(client, sid, [mine])).removeprefix("/booked/")
    me = await client.get("/me")
    appointment = first(r'href="/me/appointments/([^/"]+)/cancel"', me)

    await page_login(other_client, maker, settings)
    theirs = await add_person(other_client, name="Other Person")
    r = await other_client.get("/me")
    assert mine not in r.text and "Owner Person" not in r.text

    for url in (f"/me/people/{mine}", f"/me/people/{mine}/delete", f"/booked/{confirmation}",
                f"/me/appointments/{appointment}/cancel",
                f"/me/appointments/{appointment}/reschedule"):
        r = await other_client.get(url)
        assert r.status_code == 404, url
        assert "Owner Person" not in r.text and mine not in main_of(r)
    page = await other_client.get("/me")
    for url, data in ((f"/me/people/{mine}/delete", {}),
                      (f"/me/appointments/{appointment}/cancel", {}),
                      (f"/me/appointments/{appointment}/reschedule",
                       {"place": f"{spare}|{SLOTS[0]}"})):
        r = await submit(other_client, page, url, data)
        assert r.status_code == 404, url
    # Booking someone else's reference id: refused, nothing booked, the form kept.
    r = await book_through_form(other_client, spare, [mine, theirs])
    assert r.status_code == 404 and 'class="error"' in r.text
    assert f'id="person-{theirs}" name="beneficiary" value="{theirs}" checked' in r.text

    async with maker() as s:
        owner = (await s.execute(select(Beneficiary).where(Beneficiary.reference_id == mine))
                 ).scalar_one()
        assert owner.status == "active"
        appt = await s.get(Appointment, appointment)
        assert appt is not None and appt.status == "booked" and appt.session_id == sid
    assert await count(maker, select(func.count()).select_from(Appointment)) == 1


async def test_a_double_submitted_booking_form_books_once(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5, slots=SLOTS)
    await page_login(client, maker, settings)
    a = await add_person(client, name="First Person")
    b = await add_person(client, name="Second Person")
    form = await client.get(f"/book/{sid}")
    data = {"csrf": hidden(form, "csrf"), "idempotency_key": hidden(form, "idempotency_key"),
            "slot": SLOTS[0], "beneficiary": [a, b]}
    first_try = await client.post(f"/book/{sid}", data=data)
    again = await client.post(f"/book/{sid}", data=data)  # the impatient second tap
    assert location(first_try) == location(again)
    # Two taps at the same moment, on a fresh form.
    await client.post(f"/me/appointments/"
                      f"{first(r'/me/appointments/([^/]+)/cancel', await client.get('/me'))}"
                      "/cancel", data={"csrf": data["csrf"]})
    form = await client.get(f"/book/{sid}")
    data = {**data, "idempotency_key": hidden(form, "idempotency_key"), "beneficiary": [a]}
    both = await asyncio.gather(*(client.post(f"/book/{sid}", data=data) for _ in range(2)))
    assert location(both[0]) == location(both[1])
    assert await count(maker, select(func.count()).select_from(Appointment).where(
        Appointment.status == AppointmentStatus.BOOKED)) == 2
    assert await count(maker, select(func.count()).select_from(Booking)) == 2
    assert await mismatches(maker) == []


async def test_a_booking_that_fails_half_way_leaves_nothing_and_keeps_the_choice(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings) -> None:
    """Two people, one place: the first place taken is given back with the rest."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1, slots=SLOTS)
    await page_login(client, maker, settings)
    a = await add_person(client, name="First Person")
    b = await add_person(client, name="Second Person")
    r = await book_through_form(client, sid, [a, b], slot=SLOTS[1])
    assert r.status_code == 409
    assert errors.SlotFull().text("hi") in text_of(r)
    for ref in (a, b):
        assert f'value="{ref}" checked' in r.text
    assert f'value="{SLOTS[1]}" checked' in r.text
    assert await count(maker, select(func.count()).select_from(Booking)) == 0
    assert await mismatches(maker) == []
    # The same form, corrected, books (its key was not used up by the failure).
    r = await client.post(f"/book/{sid}", data={
        "csrf": hidden(r, "csrf"), "idempotency_key": hidden(r, "idempotency_key"),
        "slot": SLOTS[1], "beneficiary": [a]})
    assert location(r).startswith("/booked/")
    # Without any person or slot chosen: a clear message, not an error page.
    r = await book_through_form(client, sid, [])
    assert r.status_code == 400 and "1 से 4 लोग चुनें" in text_of(r)


# ---------------------------------------------------------------- adding a person


@pytest.mark.parametrize(("lang", "change", "field", "message"), [
    ("hi", {"birth_year": "19x0"}, "birth_year", "जन्म वर्ष 4 अंकों में दर्ज करें"),
    ("hi", {"birth_year": "1850"}, "birth_year", "सही जन्म वर्ष दर्ज करें"),
    ("hi", {"name": "A"}, "name", "पूरा नाम दर्ज करें"),
    ("hi", {"id_number": "12345"}, "id_number", "यह संख्या चुने गए फ़ोटो पहचान पत्र"),
    ("en", {"id_type": "pan", "id_number": "1234"}, "id_number",
     "This number does not look like the chosen photo ID"),
    ("en", {"gender": "robot"}, "gender", "Choose the gender."),
    ("en", {"id_type": "library_card"}, "id_type", "Choose the type of photo ID."),
    ("en", {"priority_group": "vip"}, "priority_group", "Choose a priority group."),
])
async def test_bad_input_is_explained_on_the_field_and_what_was_typed_is_kept(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings, lang: str,
        change: dict[str, str], field: str, message: str) -> None:
    await client.get("/", params={"lang": lang})
    await page_login(client, maker, settings)
    form = await client.get("/me/add")
    typed = person_form(**{"name": "Ramesh Kumar Sahu", **change})
    r = await submit(client, form, "/me/add", typed)
    assert r.status_code in (400, 422)
    assert first(rf'id="{field}-error">([^<]+)<', r).startswith(message)
    assert f'id="{field}" name="{field}"' in r.text
    assert re.search(rf'id="{field}" name="{field}"[^>]*aria-invalid="true"', r.text)
    for name in ("name", "birth_year", "id_number"):
        assert f'value="{html.escape(typed[name])}"' in r.text, name
    assert await count(maker, select(func.count()).select_from(Beneficiary)) == 0


async def test_a_refusal_of_the_service_is_shown_in_the_readers_language(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings) -> None:
    await page_login(client, maker, settings)
    number = next_aadhaar()
    await add_person(client, id_number=number)
    form = await client.get("/me/add?lang=hi")
    r = await submit(client, form, "/me/add", person_form(name="Twice", id_number=number))
    assert r.status_code == 409
    assert first(r'id="id_number-error">([^<]+)<', r) == errors.DuplicateIdDocument().text("hi")
    for _ in range(3):
        await add_person(client)
    r = await submit(client, form, "/me/add", person_form(name="Fifth Person"))
    assert r.status_code == 409 and 'class="error" role="alert"' in r.text
    assert "4" in text_of(r) and 'value="Fifth Person"' in r.text


async def test_choices_have_words_for_every_code_in_both_languages() -> None:
    for lang in ("hi", "en"):
        labels = choice_labels(lang)
        assert tuple(labels["gender"]) == citizen_rules.GENDERS
        assert tuple(labels["id_type"]) == citizen_rules.ID_TYPES
        assert tuple(labels["priority_group"]) == citizen_rules.PRIORITY_GROUPS


# ---------------------------------------------------------------- sign-in


async def test_sign_in_pages(client: httpx.AsyncClient, world: World, maker: Maker,
                             settings: Settings) -> None:
    assert location(await client.get("/me")) == "/login?next=/me"
    form = await client.get("/login?lang=en")
    r = await submit(client, form, "/login", {"mobile": "12345"})
    assert r.status_code == 400 and "valid 10-digit mobile" in r.text and 'value="12345"' in r.text
    mobile = next_mobile()
    r = await submit(client, form, "/login", {"mobile": mobile, "next": "//evil.example/"})
    otp_page = await client.get(location(r))
    r = await submit(client, otp_page, "/login/otp",
                     {"txn": hidden(otp_page, "txn"), "otp": "000000"})
    assert r.status_code == 401 and "Invalid OTP" in r.text
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))
    assert code
    r = await submit(client, otp_page, "/login/otp", {
        "txn": hidden(otp_page, "txn"), "otp": code[1], "next": hidden(otp_page, "next")})
    assert location(r) == "/me"  # never somewhere else
    me = await client.get("/me")
    assert me.status_code == 200 and "teeka_citizen=" in me.headers.get("set-cookie", "")
    assert location(await client.get("/login")) == "/me"
    assert 'action="/logout"' in me.text


# ---------------------------------------------------------------- the dose-2 reminder


async def dose_given(client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings,
                     mobile: str, days_ago: int) -> str:
    """A Covaxin dose 1 given `days_ago` days ago (window for dose 2: 28 to 42 days after)."""
    clock.shift(-timedelta(days=days_ago))
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(),
                        vaccine="COVAXIN")
    citizen = await login_citizen(client, maker, settings, mobile)
    ref = await add_beneficiary(client, citizen, name="Dose Person")
    r = await client.post("/api/v1/appointments", headers={**citizen, "Idempotency-Key": ref},
                          json={"session_id": sid, "slot": SLOTS[0], "beneficiaries": [ref]})
    assert r.status_code == 201, r.text
    code = next(p["secret_code"] for p in (await client.get("/api/v1/beneficiaries",
                                                            headers=citizen)).json())
    async with session_scope(maker) as s:
        await vaccination_service.record_dose(s, actor=world.actor("vaccinator_a"),
                                              appointment_id=r.json()["appointment_ids"][0],
                                              secret_code=code, batch="B-1")
    clock.reset()
    return ref


@pytest.mark.parametrize(("days_ago", "kind", "msgid"), [
    (10, "soon", "Dose {dose} of {vaccine} can be booked from {earliest} to {latest}."),
    (30, "due", "Dose {dose} of {vaccine} is due now. Book it by {latest}."),
    (50, "closed", errors.DoseWindowPassed.message),
])
async def test_the_dose_2_reminder_follows_the_window(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings,
        days_ago: int, kind: str, msgid: str) -> None:
    mobile = next_mobile()
    ref = await dose_given(client, world, maker, settings, mobile, days_ago)
    given = day(-days_ago)
    window = {"dose": 2, "vaccine": "COVAXIN", "earliest": dmy(given + timedelta(days=28)),
              "latest": dmy(given + timedelta(days=42))}
    await page_login(client, maker, settings, mobile)
    for lang in ("en", "hi"):
        me = await client.get("/me", params={"lang": lang})
        reminder = first(rf'class="reminder reminder-{kind}">([^<]+)<', me)
        assert reminder.startswith(translate(lang, msgid, **window)), reminder
    assert "आंशिक टीकाकरण" in text_of(me)  # partly vaccinated
    assert f"/me/people/{ref}/delete" not in me.text  # a person with a dose stays
    person = await client.get(f"/me/people/{ref}")
    assert f"<td>{dmy(given)}</td>" in person.text and "COVAXIN" in person.text


# ---------------------------------------------------------------- weight on the wire


async def gzipped_size(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        assert r.status_code == 200, url
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
        if len(raw) > 500:
            assert r.headers.get("content-encoding") == "gzip", url
            assert b"</html>" in gzip.decompress(raw) or url.endswith(".css")
        return len(raw)


async def test_every_citizen_page_is_under_30_kb_on_the_wire(
        client: httpx.AsyncClient, other_client: httpx.AsyncClient, world: World, maker: Maker,
        settings: Settings) -> None:
    """A full page of a big district: ten centres, a week, two vaccines, four slots each;
    four people, each with an appointment."""
    slots = ("09:00AM-11:00AM", "11:00AM-01:00PM", "01:00PM-03:00PM", "03:00PM-05:00PM")
    centres = await more_centres(maker, world, 11)
    sessions = []
    for c in centres:
        for offset in range(7):
            for vaccine in ("COVISHIELD", "COVAXIN"):
                sessions.append(await publish(maker, world, centre_id=c, day=day(offset + 1),
                                              vaccine=vaccine, slots=slots, dose1=50,
                                              dose2=20))
    await page_login(client, maker, settings)
    refs = [await add_person(client, name=f"Family Member Number {i}") for i in range(4)]
    confirmation = location(await book_through_form(client, sessions[0], refs[:3],
                                                    slot=slots[0])).removeprefix("/booked/")
    location(await book_through_form(client, sessions[2], refs[3:], slot=slots[1]))
    me = await client.get("/me")
    appointment = first(r'/me/appointments/([^/"]+)/cancel', me)
    booked = await client.get(f"/booked/{confirmation}")
    slip = first(r'id="slip-link" href="([^"]+)"', booked)
    css = await gzipped_size(client, "/static/teeka.css")
    sizes = {}
    for lang in ("hi", "en"):
        for browser in (client, other_client):
            await browser.get("/", params={"lang": lang})
        for url in ("/login", "/login/otp?txn=x"):  # signed out
            sizes[lang, url] = await gzipped_size(other_client, url) + css
        for url in ("/", f"/?district_id={world.raipur}", "/me",
                    "/me/add", f"/me/people/{refs[0]}", f"/me/people/{refs[0]}/delete",
                    f"/book/{sessions[0]}", f"/booked/{confirmation}", slip,
                    f"/me/appointments/{appointment}/cancel",
                    f"/me/appointments/{appointment}/reschedule"):
            sizes[lang, url] = await gzipped_size(client, url) + css
    heaviest = max(sizes.values())
    assert heaviest < PAGE_LIMIT, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    print(f"\ncss {css} B gzip; heaviest page + css {heaviest} B;",
          {f"{lang} {url.split('?')[0].rsplit('/', 1)[-1][:12]}": size for (lang, url), size in sizes.items()})


async def test_pages_carry_no_inline_script_or_style_and_label_every_input(
        client: httpx.AsyncClient, world: World, maker: Maker, settings: Settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5, slots=SLOTS)
    signed_out = [await client.get(url) for url in ("/login", "/login/otp?txn=x")]
    await page_login(client, maker, settings)
    ref = await add_person(client)
    confirmation = location(await book_through_form(client, sid, [ref])).removeprefix("/booked/")
    appointment = first(r'/me/appointments/([^/"]+)/cancel', await client.get("/me"))
    signed_in = [await client.get(url) for url in (
        "/", "/me", "/me/add", f"/me/people/{ref}", f"/me/people/{ref}/delete", f"/book/{sid}",
        f"/booked/{confirmation}", f"/me/appointments/{appointment}/cancel",
        f"/me/appointments/{appointment}/reschedule")]
    for r in signed_out + signed_in:
        url = str(r.request.url)
        assert r.status_code == 200, url
        page = r.text
        assert "<script" not in page and "style=" not in page and "<style" not in page, url
        assert "http://" not in page and "https://" not in page, url  # no CDN, no web fonts
        ids = set(re.findall(r'<label for="([^"]+)"', page))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
            if 'type="hidden"' in tag:
                continue
            field = re.search(r'id="([^"]+)"', tag)
            assert field and field[1] in ids, (url, tag)
        for form in re.findall(r'<form method="post".*?</form>', page, re.S):
            assert 'name="csrf"' in form, (url, form[:200])


async def test_a_session_kept_alive_by_its_pages_still_ends_twelve_hours_after_sign_in(
        client: httpx.AsyncClient, maker: Maker, settings: Settings) -> None:
    """Every page renews the 15-minute cookie, but not past 12 hours from the sign-in: a cookie
    copied from a shared phone cannot be kept alive for ever by opening a page now and then."""
    from datetime import timedelta

    from teeka.kit import clock

    assert await page_login(client, maker, settings) == "/me"
    for _ in range(12 * 6 - 1):  # a page every ten minutes for 11 h 50 min
        clock.shift(timedelta(minutes=10))
        r = await client.get("/me")
        assert r.status_code == 200, location(r)
    clock.shift(timedelta(minutes=10))  # 12 h after the sign-in
    assert location(await client.get("/me")) == "/login?next=/me"
    # signing in again starts a new session
    assert await page_login(client, maker, settings) == "/me"
    assert (await client.get("/me")).status_code == 200


async def test_logging_out_ends_a_copied_cookie_and_every_earlier_session(
        app: object, client: httpx.AsyncClient, other_client: httpx.AsyncClient, maker: Maker,
        settings: Settings) -> None:
    """A cookie copied before the logout (a shared or lost phone) is refused at once, and so is
    the same account's session on another device; a sign-in after the logout works."""
    from teeka.models import Account, AuditEntry

    mobile = next_mobile()
    assert await page_login(client, maker, settings, mobile) == "/me"
    assert await page_login(other_client, maker, settings, mobile) == "/me"  # a second phone
    copied = client.cookies.get("teeka_citizen")
    assert copied
    me = await client.get("/me")
    r = await submit(client, me, "/logout", {})
    assert location(r) == "/"
    assert location(await client.get("/me")) == "/login?next=/me"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://teeka.test",
                                 cookies={"teeka_citizen": copied}) as thief:
        assert location(await thief.get("/me")) == "/login?next=/me"
    assert location(await other_client.get("/me")) == "/login?next=/me"
    async with session_scope(maker) as s:
        account = (await s.execute(select(Account).where(Account.mobile == mobile))).scalar_one()
        assert account.signed_out_at is not None
        assert await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "auth.signed_out",
            AuditEntry.object_id == str(account.id))) == 1
    # signing in again starts a session the old logout does not touch
    assert await page_login(client, maker, settings, mobile) == "/me"
    assert (await client.get("/me")).status_code == 200


async def test_a_session_cookie_is_no_api_token_and_a_lapsed_one_still_logs_out(
        app: object, client: httpx.AsyncClient, maker: Maker, settings: Settings) -> None:
    """A copy of the page cookie does not work as a bearer token on the APIs (a logout could
    not end it there). Left idle past its 15 minutes, the cookie no longer opens pages, but
    logging out with it still ends its session, and so the copy that a thief kept alive by
    opening pages is refused too."""
    assert await page_login(client, maker, settings) == "/me"
    token = client.cookies.get("teeka_citizen")
    assert token
    r = await client.get("/api/v1/beneficiaries", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://teeka.test",
                                 cookies={"teeka_citizen": token}) as thief:
        for _ in range(3):  # the thief keeps the copy alive; the owner's lapses
            clock.shift(timedelta(minutes=10))
            assert (await thief.get("/me")).status_code == 200
        page = await client.get("/login")  # the owner's cookie has lapsed: no session
        assert location(await client.get("/me")) == "/login?next=/me"
        # but the page still offers to log out (the owner sees no session, the thief has one)
        assert 'id="logout-lapsed"' in page.text and 'action="/logout"' in page.text
        r = await submit(client, page, "/logout", {})
        assert location(r) == "/"
        assert location(await thief.get("/me")) == "/login?next=/me"


async def test_a_cookie_of_an_ended_session_cannot_log_its_owner_out_again(
        app: object, client: httpx.AsyncClient, other_client: httpx.AsyncClient, maker: Maker,
        settings: Settings) -> None:
    """A copy of a cookie whose session was logged out is worth nothing, not even a logout:
    its holder cannot end the owner's later sessions."""
    mobile = next_mobile()
    assert await page_login(client, maker, settings, mobile) == "/me"
    copied = client.cookies.get("teeka_citizen")
    r = await submit(client, await client.get("/me"), "/logout", {})
    assert location(r) == "/"
    clock.shift(timedelta(seconds=1))
    assert await page_login(other_client, maker, settings, mobile) == "/me"  # signed in again
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://teeka.test",
                                 cookies={"teeka_citizen": copied or ""}) as thief:
        r = await submit(thief, await thief.get("/login"), "/logout", {})
        assert location(r) == "/"
    assert (await other_client.get("/me")).status_code == 200


async def test_the_language_signed_in_in_is_the_one_sms_are_sent_in(
        app, client, world, maker, settings) -> None:
    """A person who signs in in English gets their booking's SMS in English (every account
    stayed Hindi: its language was never written); one who switches back signs in in Hindi;
    an API client that says nothing leaves it as it was."""
    from teeka.models import Account

    async def language_of(mobile: str) -> str:
        async with session_scope(maker) as db:
            return str((await db.execute(select(Account.language).where(
                Account.mobile == mobile))).scalar_one())

    mobile = next_mobile()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test",
                                 headers={"Accept-Language": "en"}) as english:
        await page_login(english, maker, settings, mobile=mobile)
    assert await language_of(mobile) == "en"
    # the API: a client asking for English books, and the SMS is English
    sid = await publish(maker, world, centre_id=world.centre_a)
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
    txn = r.json()["txn_id"]
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))
    assert code
    r = await client.post("/api/v1/auth/otp/confirm", json={"txn_id": txn, "otp": code[1]})
    assert r.status_code == 200
    assert await language_of(mobile) == "en"  # said nothing: unchanged
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    ref = await add_beneficiary(client, headers)
    r = await client.post("/api/v1/appointments", headers={**headers, "Idempotency-Key": "lang-0001"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": [ref], "dose": 1})
    assert r.status_code == 201, r.text
    assert (await latest_sms(client, maker, settings, mobile)).startswith(
        "Teeka: appointment ")
    # signed in again in Hindi: Hindi from then on
    async with httpx.AsyncClient(transport=transport, base_url="http://teeka.test",
                                 headers={"Accept-Language": "hi"}) as hindi:
        await page_login(hindi, maker, settings, mobile=mobile)
    assert await language_of(mobile) == "hi"
