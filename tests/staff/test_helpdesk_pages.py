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


async def test_a_person_who_lost_their_slip_is_found_by_their_photo_id(
        app, client, world, maker, settings) -> None:
    """By photo ID (typed as it is written, spaces and all), through a POST form: the number is
    never in an address; found only among people the help desk may act for (not someone who
    registered on their own phone); the lookup is audited without the number."""
    from teeka.models import AuditEntry
    from tests.factories import login_citizen
    from tests.staff import submit

    number = next_aadhaar()
    async with staff_client(app, "helpdesk") as c:
        r = await register(c, id_number=number)
        ref = r.headers["location"].split("/")[-1].split("?")[0]
        spaced = f"{number[:4]} {number[4:8]} {number[8:]}"
        r = await submit(c, "/staff/helpdesk", "/staff/helpdesk/find-by-id",
                         {"id_type": "aadhaar", "id_number": spaced})
        assert r.status_code == 303 and r.headers["location"] == f"/staff/helpdesk/people/{ref}"
        assert number not in r.headers["location"]
        r = await submit(c, "/staff/helpdesk", "/staff/helpdesk/find-by-id",
                         {"id_type": "aadhaar", "id_number": next_aadhaar()})
        assert r.status_code == 404 and by_id(r.text, "find-id-error")
        assert number not in r.text
        r = await submit(c, "/staff/helpdesk", "/staff/helpdesk/find-by-id",
                         {"id_type": "aadhaar", "id_number": "12"})
        assert r.status_code == 400 and "wrong format" in by_id(r.text, "find-id-error")
        # someone registered on their own account is not the help desk's to find
        citizen = await login_citizen(client, maker, settings)
        own = next_aadhaar()
        r = await client.post("/api/v1/beneficiaries", headers=citizen, json={
            "name": "Asha Verma", "birth_year": 1980, "gender": "female", "id_type": "aadhaar",
            "id_number": own, "priority_group": "none"})
        assert r.status_code == 201, r.text
        r = await submit(c, "/staff/helpdesk", "/staff/helpdesk/find-by-id",
                         {"id_type": "aadhaar", "id_number": own})
        assert r.status_code == 404
        # a vaccinator has no help desk
    async with staff_client(app, "vaccinator_a") as v:
        page = await v.get("/staff/centre")
        r = await v.post("/staff/helpdesk/find-by-id", data={
            "csrf": csrf_of(page.text), "id_type": "aadhaar", "id_number": number})
        assert r.status_code == 403
    async with session_scope(maker) as db:
        looked = (await db.execute(select(AuditEntry).where(
            AuditEntry.action == "citizen.beneficiary.looked_up").order_by(AuditEntry.id)
        )).scalars().all()
        assert len(looked) == 3 and all(number not in str(a.detail) and own not in str(a.detail)
                                        for a in looked)
        assert looked[0].object_id == ref
