"""District console: centres, publishing sessions with priority shares, capacity, CSV upload,
today per centre, and a district admin kept to their own district."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Block, CapacityBucket, Centre, SessionSlot, VaccinationSession
from tests.factories import add_beneficiary, login_citizen, publish
from tests.staff import by_id, csrf_of, hidden, inner, register, staff_client, submit

HEADER = ("centre_id,date,vaccine,min_age,max_age,slot,dose1,dose2,precaution,walkin_allowance,"
          "shares,share_release_time")
SHARES = {"share_frontline": "20", "share_aay": "12", "share_bpl": "52", "share_apl": "16"}


def tomorrow() -> str:
    return (clock.today() + timedelta(days=1)).strftime("%d-%m-%Y")


def session_form(**fields: str) -> dict[str, str]:
    form = {"date": tomorrow(), "vaccine": "COVISHIELD", "min_age": "18", "max_age": "44",
            "walkin_allowance": "5", "slot_0_label": "09:00AM-11:00AM", "slot_0_dose1": "100",
            "slot_0_dose2": "10", "slot_1_label": "11:00AM-01:00PM", "slot_1_dose1": "50",
            "slot_2_label": "02:00PM-04:00PM", "share_release_time": "15:00", **SHARES}
    form.update(fields)
    return form


async def scalar(maker: Any, query: Any) -> Any:
    async with session_scope(maker) as db:
        return (await db.execute(query)).scalar()


async def sessions(maker: Any) -> int:
    return int(await scalar(maker, select(func.count()).select_from(VaccinationSession)))


async def shares_of(maker: Any, centre_id: int) -> dict[tuple[str, str, str], int]:
    async with session_scope(maker) as db:
        rows = await db.execute(
            select(SessionSlot.label, CapacityBucket.dose_kind, CapacityBucket.share,
                   CapacityBucket.capacity)
            .join(SessionSlot, SessionSlot.id == CapacityBucket.slot_id)
            .join(VaccinationSession, VaccinationSession.id == CapacityBucket.session_id)
            .where(VaccinationSession.centre_id == centre_id))
        return {(r[0], r[1], r[2]): r[3] for r in rows}


async def upload(c: httpx.AsyncClient, body: str) -> httpx.Response:
    page = await c.get("/staff/district/upload")
    return await c.post("/staff/district/upload", data={"csrf": csrf_of(page.text)},
                        files={"file": ("week.csv", body.encode(), "text/csv")})


def line(centre: int, *, day: str | None = None, slot: str = "09:00AM-11:00AM",
         dose1: object = 10, shares: str = "") -> str:
    return f"{centre},{day or tomorrow()},COVISHIELD,18,,{slot},{dose1},0,0,0,{shares},"


# ---------------------------------------------------------------- publishing

async def test_district_officer_publishes_a_session_with_shares(app, world, maker) -> None:
    async with staff_client(app, "raipur_admin") as c:
        r = await c.get("/staff")
        assert r.headers["location"] == "/staff/district"
        page = await c.get("/staff/district")
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        assert "Centre A" in page.text and "Centre B" in page.text and "Centre C" not in page.text
        url = f"/staff/district/centres/{world.centre_a}"
        page = await c.get(url)
        for field in ("date", "vaccine", "min_age", "max_age", "walkin_allowance", "slot_0_label",
                      "slot_0_dose1", "share_frontline", "share_apl", "share_release_time"):
            assert f'for="{field}"' in page.text and f'id="{field}"' in page.text

        # Shares that do not add up to 100: refused, typed input kept, nothing published.
        r = await submit(c, url, f"{url}/sessions", session_form(share_apl="15"))
        assert r.status_code == 400
        assert "priority shares must add up to 100" in by_id(r.text, "session-error")
        assert 'id="share_apl" name="share_apl" inputmode="numeric" maxlength="3" size="4" ' \
               'value="15"' in r.text
        assert await sessions(maker) == 0

        r = await submit(c, url, f"{url}/sessions", session_form())
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith(f"{url}?notice=published#session-")
        page = await c.get(r.headers["location"].split("#")[0])
        assert by_id(page.text, "notice") == "The session is published."
        assert "Frontline workers" in page.text and "15:00" in page.text
        assert "Walk-ins: 0 / 5" in page.text
    assert await sessions(maker) == 1
    split = await shares_of(maker, world.centre_a)
    assert sum(v for (slot, kind, _), v in split.items()
               if slot == "09:00AM-11:00AM" and kind == "first") == 100
    assert split[("09:00AM-11:00AM", "first", "frontline")] == 20
    assert split[("09:00AM-11:00AM", "first", "bpl")] == 52
    assert sum(v for (slot, kind, _), v in split.items()
               if slot == "11:00AM-01:00PM" and kind == "first") == 50
    assert not any(slot == "02:00PM-04:00PM" for slot, _, _ in split)  # no places: no slot


async def test_capacity_below_booked_is_refused_clearly(app, client, world, maker,
                                                         settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    citizen = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, citizen, name=f"Person {i}") for i in range(2)]
    r = await client.post("/api/v1/appointments",
                          headers={**citizen, "Idempotency-Key": "district-cap-1"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": refs})
    assert r.status_code == 201, r.text
    slot_id = await scalar(maker, select(SessionSlot.id).where(SessionSlot.session_id == sid))
    url = f"/staff/district/centres/{world.centre_a}"
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get(url)
        assert f'id="capacity-{slot_id}-first"' in page.text
        assert '<span data-booked="2">2</span> / <span data-capacity="3">3</span>' in page.text
        r = await c.post(f"/staff/district/slots/{slot_id}/capacity",
                         data={"csrf": csrf_of(page.text), "dose_kind": "first", "capacity": "1"})
        assert r.status_code == 409
        message = ("Capacity cannot be reduced below the 2 places already booked unless the "
                   "people affected are moved to other places and told (choose to move them).")
        assert by_id(r.text, "capacity-error") == message
        assert 'role="alert" id="capacity-error"' in r.text
        assert await scalar(maker, select(func.sum(CapacityBucket.capacity))
                            .where(CapacityBucket.slot_id == slot_id)) == 3
        r = await c.post(f"/staff/district/slots/{slot_id}/capacity",
                         data={"csrf": csrf_of(page.text), "dose_kind": "first", "capacity": "8"})
        assert r.status_code == 303
        page = await c.get(r.headers["location"].split("#")[0])
        assert by_id(page.text, "notice") == "The capacity is changed."
        assert '<span data-booked="2">2</span> / <span data-capacity="8">8</span>' in page.text
        r = await c.post(f"/staff/district/slots/{slot_id}/capacity",
                         data={"dose_kind": "first", "capacity": "9"})
        assert r.status_code == 403  # no CSRF token
    assert await scalar(maker, select(func.sum(CapacityBucket.capacity))
                        .where(CapacityBucket.slot_id == slot_id)) == 8


async def test_capacity_cut_moving_the_people_affected(app, client, world, maker,
                                                       settings) -> None:
    """The box on the form moves the people booked last and says how many were moved and how
    many cancelled, in the officer's language; the slot's figures show the new capacity."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2,
                        slots=("09:00AM-11:00AM", "11:00AM-01:00PM"))
    citizen = await login_citizen(client, maker, settings)
    refs = [await add_beneficiary(client, citizen, name=f"Person {i}") for i in range(2)]
    r = await client.post("/api/v1/appointments",
                          headers={**citizen, "Idempotency-Key": "district-move-1"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": refs})
    assert r.status_code == 201, r.text
    other = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, other, name="Person 3")
    r = await client.post("/api/v1/appointments",
                          headers={**other, "Idempotency-Key": "district-move-2"},
                          json={"session_id": sid, "slot": "11:00AM-01:00PM",
                                "beneficiaries": [ref]})
    assert r.status_code == 201, r.text
    slot_id = await scalar(maker, select(SessionSlot.id).where(
        SessionSlot.session_id == sid, SessionSlot.label == "09:00AM-11:00AM"))
    url = f"/staff/district/centres/{world.centre_a}"
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get(url)
        assert f'id="move-{slot_id}-first"' in page.text
        r = await c.post(f"/staff/district/slots/{slot_id}/capacity",
                         data={"csrf": csrf_of(page.text), "dose_kind": "first", "capacity": "0",
                               "move_affected": "1"})
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"].split("#")[0])
        # one place was free in the other slot: the first of the family moved, the second not
        assert by_id(page.text, "displaced") == (
            "Moved to other places and told: 1. Cancelled and told, with no place free nearby: 1.")
        assert '<span data-booked="0">0</span> / <span data-capacity="0">0</span>' in page.text
        assert '<span data-booked="2">2</span> / <span data-capacity="2">2</span>' in page.text
        hindi = await c.get(r.headers["location"].split("#")[0] + "&lang=hi")
        assert by_id(hindi.text, "displaced") == (
            "दूसरी जगह भेजे गए और सूचित किए गए: 1। पास में कोई जगह खाली न होने से रद्द करके "
            "सूचित किए गए: 1।")
        bad = await c.get(url + "?notice=capacity&moved=x1&cancelled=%D9%A3")
        assert bad.status_code == 200 and 'id="displaced"' not in bad.text


async def test_closing_a_session_from_the_console(app, client, world, maker, settings) -> None:
    """Without the box ticked nothing happens and the page says why, next to the session; with
    it the session's places go to 0 and the page says who was moved and who cancelled."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen, name="Person 1")
    r = await client.post("/api/v1/appointments",
                          headers={**citizen, "Idempotency-Key": "district-close-1"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": [ref]})
    assert r.status_code == 201, r.text
    url = f"/staff/district/centres/{world.centre_a}"
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get(url)
        assert f'id="close-{sid}"' in page.text
        r = await c.post(f"/staff/district/sessions/{sid}/close",
                         data={"csrf": csrf_of(page.text)})
        assert r.status_code == 400
        assert by_id(r.text, "close-error") == (
            "Some of the details are not valid: tick the box to confirm closing the session")
        r = await c.post(f"/staff/district/sessions/{sid}/close",
                         data={"csrf": csrf_of(page.text), "confirm": "1"})
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"].split("#")[0])
        assert by_id(page.text, "notice").startswith("The session is closed.")
        assert by_id(page.text, "displaced") == (
            "Moved to other places and told: 0. Cancelled and told, with no place free nearby: 1.")
        assert f'id="close-{sid}"' not in page.text
    async with staff_client(app, "balod_admin") as c:
        page = await c.get("/staff/district")
        r = await c.post(f"/staff/district/sessions/{sid}/close",
                         data={"csrf": csrf_of(page.text), "confirm": "1"})
        assert r.status_code == 403


async def test_people_without_a_mobile_number_are_listed_for_the_district(app, world,
                                                                        maker) -> None:
    """No SMS reaches a person registered at a help desk: after the session closes, the page
    lists them (with a link to their help-desk page) instead of only counting them."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3, walkins=4)
    async with staff_client(app, "helpdesk") as desk:
        r = await register(desk)
        assert r.status_code == 303, r.text
        ref = re.search(r"/staff/helpdesk/people/(\d{14})", r.headers["location"])[1]
        page = await desk.get(f"/staff/helpdesk/people/{ref}/book")
        r = await desk.post(f"/staff/helpdesk/people/{ref}/book", data={
            "csrf": csrf_of(page.text), "key": hidden(page.text, "key"),
            "choice": f"{sid}|09:00AM-11:00AM"})
        assert r.status_code == 303, r.text
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get(f"/staff/district/centres/{world.centre_a}")
        r = await c.post(f"/staff/district/sessions/{sid}/close",
                         data={"csrf": csrf_of(page.text), "confirm": "1"})
        assert r.status_code == 200, r.text
        assert by_id(r.text, "displaced") == (
            "Moved to other places and told: 0. Cancelled and told, with no place free nearby: 1.")
        assert f'<a href="/staff/helpdesk/people/{ref}">{ref}</a>' in inner(r.text, "not-told")
        # the places as they are now, not as they were read before the session closed
        assert '<span data-booked="0">0</span> / <span data-capacity="0">0</span>' in r.text
        assert f'id="close-{sid}"' not in r.text
        assert "Walk-ins: 0 / 0" in r.text
        again = await c.post(f"/staff/district/sessions/{sid}/close",
                             data={"csrf": csrf_of(page.text), "confirm": "1"})
        assert again.status_code == 303  # nothing more to do: nobody left to tell


async def test_new_centre_through_the_form(app, world, maker) -> None:
    async with staff_client(app, "raipur_admin") as c:
        block = await scalar(maker, select(Block.id).where(Block.district_id == 109))
        form = {"district_id": "109", "name_en": "Centre D", "name_hi": "केंद्र द",
                "address_en": "Station Road", "address_hi": "स्टेशन रोड", "block_id": str(block),
                "lat": "21.2", "long": "81.6", "pincode": "49200", "fee_type": "Free",
                "opens_at": "09:00", "closes_at": "17:00"}
        r = await submit(c, "/staff/district/centres/new", "/staff/district/centres/new", form)
        assert r.status_code == 400 and "pincode" in by_id(r.text, "form-error")
        assert 'value="Centre D"' in r.text
        r = await submit(c, "/staff/district/centres/new", "/staff/district/centres/new",
                         {**form, "pincode": "492009"})
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"])
        assert "Centre D" in page.text and 'id="notice"' in page.text
    assert await scalar(maker, select(Centre.district_id).where(Centre.name_en == "Centre D")) == 109


# ---------------------------------------------------------------- CSV

async def test_csv_upload_publishes_or_shows_per_row_errors_and_applies_nothing(
        app, world, maker) -> None:
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get("/staff/district/upload")
        assert 'enctype="multipart/form-data"' in page.text and '<label for="file">' in page.text
        good = "\n".join((HEADER, line(world.centre_a), line(world.centre_a, slot="11:00AM-01:00PM"),
                          line(world.centre_b, shares="frontline:20;aay:12;bpl:52;apl:16")))
        r = await upload(c, good + "\n")
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"])
        assert by_id(page.text, "notice") == "Imported: 2 session(s) published from 3 row(s)."
        assert await sessions(maker) == 2

        later = (clock.today() + timedelta(days=2)).strftime("%d-%m-%Y")
        bad = "\n".join((HEADER, line(world.centre_a, day=later),
                         line(world.centre_a, day=later, slot="11:00AM-01:00PM", dose1="ten"),
                         line(world.centre_b, day=later, shares="frontline:20;aay:20")))
        r = await upload(c, bad + "\n")
        assert r.status_code == 422
        assert "Nothing was changed." in by_id(r.text, "upload-error")
        table = by_id(r.text, "csv-errors")
        assert "BadNumber" in by_id(r.text, "csv-row-3") and "BadShares" in by_id(r.text, "csv-row-4")
        assert 'id="csv-row-2"' not in r.text and table
        assert await sessions(maker) == 2  # nothing of the bad file was applied

        # A session refused by the service after others were flushed: all rolled back.
        refused = "\n".join((HEADER, line(world.centre_b, day=later),
                             line(world.centre_a)))  # centre A already has tomorrow's session
        r = await upload(c, refused + "\n")
        assert r.status_code == 422 and 'id="csv-row-3"' in r.text
        assert await sessions(maker) == 2

        r = await c.post("/staff/district/upload", data={"csrf": csrf_of(page.text)},
                         files={"file": ("", b"", "application/octet-stream")})
        assert r.status_code == 422 and "NoFile" in r.text
        r = await c.post("/staff/district/upload", files={"file": ("w.csv", good.encode(), "text/csv")})
        assert r.status_code == 403
        assert await sessions(maker) == 2


# ---------------------------------------------------------------- scoping

async def test_balod_admin_cannot_see_or_act_on_raipur_centres(app, world, maker) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a)
    slot_id = await scalar(maker, select(SessionSlot.id).where(SessionSlot.session_id == sid))
    async with staff_client(app, "balod_admin") as c:
        page = await c.get("/staff/district")
        assert "Centre C" in page.text and "Centre A" not in page.text and "Centre B" not in page.text
        token = csrf_of(page.text)
        for url in ("/staff/district?district_id=109", "/staff/district/today?district_id=109",
                    f"/staff/district/centres/{world.centre_a}",
                    "/staff/district/centres/new?district_id=109"):
            r = await c.get(url)
            assert r.status_code == 403, url
            assert "Centre A" not in r.text
        r = await c.post(f"/staff/district/centres/{world.centre_a}/sessions",
                         data={"csrf": token, **session_form()})
        assert r.status_code == 403
        r = await c.post(f"/staff/district/slots/{slot_id}/capacity",
                         data={"csrf": token, "dose_kind": "first", "capacity": "0"})
        assert r.status_code == 403
        r = await c.post("/staff/district/centres/new", data={
            "csrf": token, "district_id": "109", "name_en": "Sneaky", "name_hi": "चुपके",
            "block_id": "1", "pincode": "492001", "lat": "21", "long": "81"})
        assert r.status_code == 403
        r = await upload(c, "\n".join((HEADER, line(world.centre_a, day=(
            clock.today() + timedelta(days=3)).strftime("%d-%m-%Y")))) + "\n")
        assert r.status_code == 422 and "CentreNotInDistrict" in by_id(r.text, "csv-row-2")
        page = await c.get("/staff/district/today")
        assert "Centre C" in page.text and "Centre A" not in page.text
    assert await sessions(maker) == 1
    assert await scalar(maker, select(func.sum(CapacityBucket.capacity))
                        .where(CapacityBucket.slot_id == slot_id)) == 10
    assert await scalar(maker, select(func.count()).select_from(Centre)) == 3
    async with staff_client(app, "state") as c:
        page = await c.get("/staff/district", params={"district_id": 110})
        assert "Centre C" in page.text and "Centre A" not in page.text
        assert 'id="district_id"' in page.text  # the state admin chooses the district


async def test_other_staff_have_no_district_console(app, world) -> None:
    for who in ("helpdesk", "vaccinator_a"):
        async with staff_client(app, who) as c:
            for url in ("/staff/district", "/staff/district/upload", "/staff/district/today",
                        f"/staff/district/centres/{world.centre_a}"):
                assert (await c.get(url)).status_code == 403, (who, url)


# ---------------------------------------------------------------- today per centre

def counts_of(html: str, row_id: str) -> dict[str, int]:
    m = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert m, html[:2000]
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', m[1])}


async def test_today_counts_booked_vaccinated_walkins_to_come_and_no_shows(
        app, client, world, maker, settings) -> None:
    clock.shift(clock.local_datetime(clock.today(), 8) - clock.now())  # 08:00 IST today
    day = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=day, dose1=10, walkins=2,
                        slots=("09:00AM-10:00AM", "04:00PM-05:00PM"))
    vaccinator = world.headers("vaccinator_a")
    citizen = await login_citizen(client, maker, settings)
    early = [await add_beneficiary(client, citizen, name=f"Early {i}") for i in range(3)]
    late = await add_beneficiary(client, citizen, name="Late One")
    for n, (refs, slot) in enumerate(((early, "09:00AM-10:00AM"), ([late], "04:00PM-05:00PM"))):
        r = await client.post("/api/v1/appointments",
                              headers={**citizen, "Idempotency-Key": f"today-key-{n}"},
                              json={"session_id": sid, "slot": slot, "beneficiaries": refs})
        assert r.status_code == 201, r.text
    codes = {b["reference_id"]: b["secret_code"]
             for b in (await client.get("/api/v1/beneficiaries", headers=citizen)).json()}
    first = (await client.get("/api/v1/centre/appointments", params={"reference_id": early[0]},
                              headers=vaccinator)).json()[0]
    r = await client.post("/api/v1/centre/doses", headers=vaccinator, json={
        "appointment_id": first["appointment_id"], "secret_code": codes[early[0]], "batch": "B-1"})
    assert r.status_code == 201, r.text
    other = await login_citizen(client, maker, settings)
    walker = await add_beneficiary(client, other, name="Walker")
    code = (await client.get("/api/v1/beneficiaries", headers=other)).json()[0]["secret_code"]
    r = await client.post("/api/v1/centre/walkins", headers=vaccinator, json={
        "session_id": sid, "reference_id": walker, "secret_code": code, "batch": "B-1"})
    assert r.status_code == 201, r.text
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get("/staff/district/today")
        assert page.status_code == 200
        assert by_id(page.text, "today-date") == day.strftime("%d-%m-%Y")
        assert counts_of(page.text, f"today-{world.centre_a}") == {
            "booked": 4, "vaccinated": 1, "walkins": 1, "to_come": 3, "no_shows": 0}
        assert counts_of(page.text, f"today-{world.centre_b}") == {
            "booked": 0, "vaccinated": 0, "walkins": 0, "to_come": 0, "no_shows": 0}
        assert f'id="today-{world.centre_c}"' not in page.text

    clock.shift(timedelta(hours=2, minutes=30))  # 10:30: the first slot has ended
    async with staff_client(app, "state") as c:
        page = await c.get("/staff/district/today", params={"district_id": 109})
        assert counts_of(page.text, f"today-{world.centre_a}") == {
            "booked": 4, "vaccinated": 1, "walkins": 1, "to_come": 1, "no_shows": 2}
        assert counts_of(page.text, "today-total")["no_shows"] == 2
    clock.shift(timedelta(hours=7))  # 17:30: every slot has ended
    async with staff_client(app, "vaccinator_a") as c:
        page = await c.get("/staff/centre")
        m = re.search(r'id="counts">(.*?)</p>', page.text, re.S)
        assert m
        assert {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', m[1])} == {
            "booked": 4, "vaccinated": 1, "walkins": 1, "to_come": 0, "no_shows": 3}
