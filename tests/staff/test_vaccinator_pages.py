"""At the centre, through the pages: the day's list, finding people, the secret code, the dose
recorded once, walk-ins, and an unmistakable alert when the dose must not be given."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import AuditEntry, DoseRecord, VaccinationSession
from tests.factories import add_beneficiary, login_citizen, next_mobile, publish
from tests.staff import by_id, csrf_of, inner, staff_client

SLOT = "09:00AM-11:00AM"


async def scalar(maker: Any, query: Any) -> Any:
    async with session_scope(maker) as db:
        return (await db.execute(query)).scalar()


async def doses(maker: Any) -> int:
    return int(await scalar(maker, select(func.count()).select_from(DoseRecord)))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10_000:04d}"


async def booked_today(client: httpx.AsyncClient, maker: Any, world: Any, settings: Any,
                       **publish_args: Any) -> dict[str, str]:
    """A session today at centre A, and one person booked into it through the API."""
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), **publish_args)
    mobile = next_mobile()
    citizen = await login_citizen(client, maker, settings, mobile)
    ref = await add_beneficiary(client, citizen, name="Kamla Devi")
    r = await client.post("/api/v1/appointments",
                          headers={**citizen, "Idempotency-Key": f"vacc-page-{ref}"},
                          json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
    assert r.status_code == 201, r.text
    code = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()[0]["secret_code"]
    return {"session_id": sid, "mobile": mobile, "ref": ref, "code": code,
            "appointment": r.json()["appointment_ids"][0],
            "confirmation": r.json()["confirmation_no"]}


async def dose(c: httpx.AsyncClient, appointment: str, code: str,
               batch: str = "4121Z025") -> httpx.Response:
    page = await c.get(f"/staff/centre/appointments/{appointment}")
    assert page.status_code == 200, page.text
    return await c.post(f"/staff/centre/appointments/{appointment}/dose",
                        data={"csrf": csrf_of(page.text), "secret_code": code, "batch": batch})


async def test_vaccinator_finds_the_person_and_records_the_dose_after_the_right_code(
        app, client, world, maker, settings) -> None:
    b = await booked_today(client, maker, world, settings)
    async with staff_client(app, "vaccinator_a") as c:
        page = await c.get("/staff/centre")
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        assert "Kamla Devi" in by_id(page.text, "appointments")
        for field in ("ref", "mobile", "slip"):
            assert f'<label for="{field}">' in page.text
        for params in ({"ref": b["ref"]}, {"mobile": b["mobile"]},
                       {"slip": b["confirmation"].lower()}):
            page = await c.get("/staff/centre", params=params)
            assert f'id="vaccinate-{b["appointment"]}"' in inner(page.text, "results"), params
        page = await c.get("/staff/centre", params={"ref": "123"})
        assert page.status_code == 400 and 'role="alert" id="form-error"' in page.text
        page = await c.get("/staff/centre", params={"slip": "ZZZZZZZZZZ"})
        assert 'id="not-found"' in page.text

        page = await c.get(f"/staff/centre/appointments/{b['appointment']}")
        assert "Kamla Devi" in page.text and "XXXX-XXXX-" in page.text
        assert 'id="secret-code"' not in page.text  # the vaccinator asks for it, never sees it
        for field in ("secret_code", "batch"):
            assert f'<label for="{field}">' in page.text

        # A wrong code: the alert screen, nothing recorded, the try audited (and committed).
        r = await dose(c, b["appointment"], wrong(b["code"]), batch="4121z025")
        assert r.status_code == 403
        assert 'class="alert-stop" role="alert" id="alert" data-code="SecretCodeWrong"' in r.text
        assert "Do not vaccinate" in r.text and "The secret code does not match." in r.text
        assert 'value="4121z025"' in r.text  # the batch typed is kept
        assert await doses(maker) == 0
        assert await scalar(maker, select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "vaccination.secret_code.rejected")) == 1

        r = await dose(c, b["appointment"], b["code"])
        assert r.status_code == 303, r.text
        assert re.fullmatch(r"/staff/centre/doses/\d+", r.headers["location"])
        page = await c.get(r.headers["location"])
        assert 'id="dose-recorded"' in page.text and by_id(page.text, "batch") == "4121Z025"
        assert by_id(page.text, "reference-id") == b["ref"]

        # Submitted again (a double tap, or the back button): "already recorded", not an error.
        r = await c.post(f"/staff/centre/appointments/{b['appointment']}/dose",
                         data={"csrf": csrf_of(page.text), "secret_code": b["code"],
                               "batch": "4121Z025"})
        assert r.status_code == 303 and r.headers["location"].endswith("?repeat=1")
        page = await c.get(r.headers["location"])
        assert "Already recorded" in by_id(page.text, "already-recorded")
        page = await c.get(f"/staff/centre/appointments/{b['appointment']}")
        assert 'id="already-recorded"' in page.text and 'id="dose-form"' not in page.text
        page = await c.get("/staff/centre")
        assert re.search(r'data-count="vaccinated">1<', page.text)

        r = await c.post(f"/staff/centre/appointments/{b['appointment']}/dose",
                         data={"secret_code": b["code"], "batch": "X"})
        assert r.status_code == 403  # no CSRF token
    assert await doses(maker) == 1


async def test_a_vaccinator_of_another_centre_is_refused(app, client, world, maker,
                                                        settings) -> None:
    b = await booked_today(client, maker, world, settings)
    async with staff_client(app, "vaccinator_c") as c:
        page = await c.get("/staff/centre")
        assert page.status_code == 200 and "Kamla Devi" not in page.text
        page = await c.get("/staff/centre", params={"ref": b["ref"]})
        assert 'id="not-found"' in page.text
        r = await c.get(f"/staff/centre/appointments/{b['appointment']}")
        assert r.status_code == 403 and "This appointment is at another centre." in r.text
        r = await c.post(f"/staff/centre/appointments/{b['appointment']}/dose",
                         data={"csrf": csrf_of(page.text), "secret_code": b["code"],
                               "batch": "B1"})
        assert r.status_code == 403
        r = await c.post("/staff/centre/walkin", data={
            "csrf": csrf_of(page.text), "session_id": b["session_id"], "reference_id": b["ref"],
            "secret_code": b["code"], "batch": "B1"})
        assert r.status_code == 403
    async with staff_client(app, "helpdesk") as c:
        assert (await c.get("/staff/centre")).status_code == 403
    assert await doses(maker) == 0


async def test_too_many_wrong_codes_lock_the_person_for_the_day(app, client, world, maker,
                                                               settings) -> None:
    b = await booked_today(client, maker, world, settings)
    async with staff_client(app, "vaccinator_a") as c:
        for _ in range(5):
            r = await dose(c, b["appointment"], wrong(b["code"]))
            assert r.status_code == 403 and 'data-code="SecretCodeWrong"' in r.text
        r = await dose(c, b["appointment"], b["code"])
        assert r.status_code == 429
        assert 'role="alert" id="alert" data-code="SecretCodeLocked"' in r.text
        assert 'id="dose-form"' not in r.text
    assert await doses(maker) == 0


async def test_walkins_through_the_page_and_a_person_not_eligible(app, client, world, maker,
                                                                  settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=1)
    older = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), min_age=60,
                          walkins=3)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen, name="Walking Person", birth_year=1980)
    code = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()[0]["secret_code"]
    async with staff_client(app, "vaccinator_a") as c:
        page = await c.get(f"/staff/centre/walkin?ref={ref}")
        assert page.status_code == 200 and f'value="{ref}"' in page.text
        for field in ("session_id", "reference_id", "secret_code", "batch"):
            assert f'<label for="{field}">' in page.text
        form = {"csrf": csrf_of(page.text), "reference_id": ref, "secret_code": code,
                "batch": "WB-7"}

        # Outside the session's age band: the alert screen says why.
        r = await c.post("/staff/centre/walkin", data={**form, "session_id": older})
        assert r.status_code == 422
        assert 'role="alert" id="alert" data-code="AgeNotEligible"' in r.text
        assert "This session is for ages 60+" in by_id(r.text, "alert")
        assert 'value="WB-7"' in r.text

        r = await c.post("/staff/centre/walkin", data={**form, "session_id": sid})
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"])
        assert 'id="dose-recorded"' in page.text and "walk-in" in by_id(page.text, "dose")
        r = await c.post("/staff/centre/walkin", data={**form, "session_id": sid})
        assert r.status_code == 303 and r.headers["location"].endswith("?repeat=1")

        # A bad batch is a typing mistake: a plain form error, not the stop screen.
        other = await add_beneficiary(client, citizen, name="Second Walker")
        r = await c.post("/staff/centre/walkin", data={**form, "session_id": sid,
                                                       "reference_id": other, "batch": "AB 12"})
        assert r.status_code == 400 and 'id="form-error"' in r.text and 'id="alert"' not in r.text
        assert f'value="{other}"' in r.text

        # Hindi
        page = await c.get("/staff/centre/walkin", headers={"Accept-Language": "hi"})
        assert "बिना अपॉइंटमेंट के वॉक-इन" in page.text
    assert await scalar(maker, select(VaccinationSession.walkins_used)
                        .where(VaccinationSession.id == sid)) == 1
    assert await scalar(maker, select(VaccinationSession.walkins_used)
                        .where(VaccinationSession.id == older)) == 0
    assert await doses(maker) == 1
