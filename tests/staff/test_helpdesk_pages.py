"""Help desk: a person without a mobile phone is registered, booked and given a printed slip."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from teeka.db import session_scope
from teeka.models import Appointment, Beneficiary, Booking
from tests.factories import next_aadhaar, publish
from tests.staff import PERSON, by_id, csrf_of, hidden, register, staff_client


async def count(maker: Any, model: Any) -> int:
    async with session_scope(maker) as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def test_assisted_registration_booking_and_printable_slip(app, world, maker) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    await publish(maker, world, centre_id=world.centre_c, dose1=5)  # Balod: not offered here
    async with staff_client(app, "helpdesk") as c:
        page = await c.get("/staff/helpdesk")
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        for field in ("name", "birth_year", "gender", "id_type", "id_number", "priority_group"):
            assert f'<label for="{field}">' in page.text and f'id="{field}"' in page.text
        assert "<script" not in page.text and "style=" not in page.text

        r = await register(c)
        assert r.status_code == 303, r.text
        ref = re.fullmatch(r"/staff/helpdesk/people/(\d{14})\?notice=registered",
                           r.headers["location"])
        assert ref, r.headers["location"]
        person_url = f"/staff/helpdesk/people/{ref[1]}"
        page = await c.get(r.headers["location"])
        assert by_id(page.text, "reference-id") == ref[1]
        code = by_id(page.text, "secret-code")
        assert re.fullmatch(r"\d{4}", code)
        assert 'id="no-appointment"' in page.text
        async with session_scope(maker) as db:
            person = (await db.execute(select(Beneficiary))).scalar_one()
            assert person.account_id is None
            assert person.registered_by_staff_id == world.staff["helpdesk"].id
            assert person.secret_code == code

        # Sessions of the help desk's district only; the form carries its Idempotency-Key.
        page = await c.get(f"{person_url}/book")
        assert page.status_code == 200
        assert "Centre A" in page.text and "Centre C" not in page.text
        key = hidden(page.text, "key")
        choice = f"{sid}|09:00AM-11:00AM"
        assert f'value="{choice}"' in page.text
        form = {"csrf": csrf_of(page.text), "key": key, "choice": choice}
        r = await c.post(f"{person_url}/book", data=form)
        assert r.status_code == 303 and r.headers["location"] == f"{person_url}?notice=booked"
        # The same form submitted twice (a double tap): booked once, same answer.
        again = await c.post(f"{person_url}/book", data=form)
        assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
        assert await count(maker, Appointment) == 1

        page = await c.get(r.headers["location"])
        assert "Centre A" in by_id(page.text, "appointment")
        slip_url = re.search(r'<a href="([^"]+)" id="slip-link"', page.text)
        assert slip_url and slip_url[1].startswith(f"/slip/person/{ref[1]}?sig=")
        slip = await c.get(slip_url[1].replace("&amp;", "&"))
        assert slip.status_code == 200
        assert ref[1] in slip.text and code in slip.text and "Sukhiya Bai" in slip.text
        assert "Centre A" in slip.text and "09:00AM-11:00AM" in slip.text

        # A second booking is refused with the reason; its key is not left claimed.
        bookings = await count(maker, Booking)
        page = await c.get(f"{person_url}/book")
        r = await c.post(f"{person_url}/book", data={"csrf": csrf_of(page.text),
                                                     "key": hidden(page.text, "key"),
                                                     "choice": choice})
        assert r.status_code == 409
        assert "The person already has an active appointment." in by_id(r.text, "form-error")
        assert 'role="alert"' in r.text
        assert await count(maker, Booking) == bookings
        assert await count(maker, Appointment) == 1


async def test_refusals_keep_the_typed_input_and_need_the_csrf_token(app, world, maker) -> None:
    async with staff_client(app, "helpdesk") as c:
        r = await register(c, birth_year="19x0", name="Ramdeen Sahu")
        assert r.status_code == 400
        assert "birth year" in by_id(r.text, "form-error")
        assert 'value="Ramdeen Sahu"' in r.text
        number = next_aadhaar()
        assert (await register(c, id_number=number)).status_code == 303
        r = await register(c, id_number=number, name="Second Person")
        assert r.status_code == 409
        assert "This ID document is already registered." in by_id(r.text, "form-error")
        assert 'value="Second Person"' in r.text
        r = await c.post("/staff/helpdesk/register", data={**PERSON, "id_number": next_aadhaar()})
        assert r.status_code == 403
        assert await count(maker, Beneficiary) == 1
        # Hindi page, and a refusal on it in Hindi, its detail too
        page = await c.get("/staff/helpdesk", headers={"Accept-Language": "hi"})
        assert "सहायता केंद्र" in page.text and "पंजीकरण करें" in page.text
        c.headers["Accept-Language"] = "hi"
        r = await register(c, birth_year="19x0")
        assert r.status_code == 400
        assert by_id(r.text, "form-error").strip().endswith(
            "कुछ विवरण मान्य नहीं हैं: जन्म वर्ष में 4 अंक होने चाहिए")
        c.headers["Accept-Language"] = "en"
        # Find by reference id
        async with session_scope(maker) as db:
            ref = (await db.execute(select(Beneficiary.reference_id))).scalar_one()
        r = await c.get("/staff/helpdesk/find", params={"ref": ref})
        assert r.status_code == 303 and r.headers["location"] == f"/staff/helpdesk/people/{ref}"
        r = await c.get("/staff/helpdesk/find", params={"ref": "12345678901234"})
        assert r.status_code == 404 and 'id="find-error"' in r.text


async def test_a_vaccinator_is_not_a_help_desk(app, world) -> None:
    async with staff_client(app, "vaccinator_a") as c:
        assert (await c.get("/staff/helpdesk")).status_code == 403
        page = await c.get("/staff/centre")
        r = await c.post("/staff/helpdesk/register", data={
            "csrf": csrf_of(page.text), **PERSON, "id_number": next_aadhaar()})
        assert r.status_code == 403


async def test_signed_out_staff_are_sent_to_sign_in(client, world) -> None:
    r = await client.get("/staff/helpdesk")
    assert r.status_code == 303 and r.headers["location"] == "/staff/login?next=/staff/helpdesk"


async def test_a_help_desk_books_only_in_its_own_district(app, world, maker) -> None:
    """The booking page offers the help desk's district; a form changed by hand to a session of
    another district is refused by the service (403, in the reader's language), nothing taken.
    The state may book anywhere."""
    balod = await publish(maker, world, centre_id=world.centre_c, dose1=5)
    await publish(maker, world, centre_id=world.centre_a, dose1=5)  # the help desk's district
    async with staff_client(app, "helpdesk", lang="hi") as c:
        r = await register(c)
        person_url = r.headers["location"].split("?")[0]
        page = await c.get(f"{person_url}/book")
        form = {"csrf": csrf_of(page.text), "key": hidden(page.text, "key"),
                "choice": f"{balod}|09:00AM-11:00AM"}
        r = await c.post(f"{person_url}/book", data=form)
        assert r.status_code == 403
        assert "आप केवल अपने ज़िले के केंद्रों पर ही बुकिंग कर सकते हैं।" in by_id(
            r.text, "form-error")
        assert await count(maker, Appointment) == 0 and await count(maker, Booking) == 0
    async with staff_client(app, "state") as c:
        page = await c.get(f"{person_url}/book?district_id=110")
        r = await c.post(f"{person_url}/book", data={
            "csrf": csrf_of(page.text), "key": hidden(page.text, "key"),
            "choice": f"{balod}|09:00AM-11:00AM"})
        assert r.status_code == 303, r.text
        assert await count(maker, Appointment) == 1
