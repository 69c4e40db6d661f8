"""Working offline from the vaccinator's pages: the day sheet to print or save as CSV, and the
filled sheet uploaded when the network is back, each dose recorded once; what could not be
recorded is listed to resolve. Hindi and English."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import DoseRecord
from tests.factories import publish
from tests.staff import by_id, csrf_of, staff_client
from tests.vaccination.test_offline import booked, earlier_today


async def doses(maker) -> int:
    async with session_scope(maker) as db:
        return int((await db.execute(select(func.count()).select_from(DoseRecord))).scalar_one())


async def send(c, body: str):
    page = await c.get("/staff/centre/sync")
    assert page.status_code == 200, page.text
    return await c.post("/staff/centre/sync", data={"csrf": csrf_of(page.text)},
                        files={"file": ("sheet.csv", body.encode(), "text/csv")})


async def test_the_sheet_is_printed_filled_in_and_uploaded_once(app, client, world, maker,
                                                                settings) -> None:
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5, walkins=2)
    first, second, absent = await booked(client, maker, world, settings, sid, 3)
    async with staff_client(app, "vaccinator_a") as c:
        page = await c.get(f"/staff/centre/day-sheet?date={today.isoformat()}")
        assert page.status_code == 200, page.text
        assert by_id(page.text, "sheet-date") == today.strftime("%d-%m-%Y")
        for p in (first, second, absent):
            assert f'data-appointment="{p["appointment_id"]}"' in page.text
        # no cell holds a secret code (the 4 digits may occur inside an id or a token)
        assert all(f">{p['code']}<" not in page.text for p in (first, second, absent))

        r = await c.get(f"/staff/centre/day-sheet.csv?date={today.isoformat()}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.headers["cache-control"] == "no-store"
        assert "attachment" in r.headers["content-disposition"]
        text = r.content.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 5 and all(row["secret_code"] == "" for row in rows)
        # two blank walk-in lines, as the session has two walk-in places
        assert [row["status"] for row in rows[3:]] == ["walk-in", "walk-in"]
        assert all(row["session_id"] == sid and not row["appointment_id"] for row in rows[3:])
        assert f'id="walkins-{sid}"' in page.text

        # filled in offline, through a spreadsheet: the date came back as MM/DD/YYYY (the
        # day is the session's anyway), a code lost its leading zero, the time is 12-hour with
        # AM/PM; the second person's code was copied wrong
        t = earlier_today().astimezone(clock.LOCAL_TZ)
        hm = t.strftime("%I:%M %p").lstrip("0")  # as a spreadsheet may write it
        for row in rows:
            row["date"] = today.strftime("%m/%d/%Y")
            if row["appointment_id"] == first["appointment_id"]:
                row.update(secret_code=first["code"].lstrip("0") or "0", batch="4121z025",
                           given_at=hm)
            elif row["appointment_id"] == second["appointment_id"]:
                wrong = f"{(int(second['code']) + 1) % 10_000:04d}"
                row.update(secret_code=wrong, batch="4121Z025", given_at=hm)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        filled = out.getvalue()

        r = await send(c, filled)
        assert r.status_code == 200, r.text
        assert by_id(r.text, "notice") == "Recorded: 1. Already recorded: 0. Not recorded: 1."
        assert first["ref"] in r.text and "The secret code does not match." in r.text
        assert second["ref"] in by_id(r.text, "to-resolve")
        assert "The secret code does not match." in by_id(r.text, "to-resolve")  # not a code
        assert await doses(maker) == 1

        r = await send(c, filled)  # the answer was lost: the same file again
        assert by_id(r.text, "notice") == "Recorded: 0. Already recorded: 1. Not recorded: 1."
        assert await doses(maker) == 1

        r = await send(c, "name,batch\nX,1\n")
        assert r.status_code == 400 and "appointment_id" in by_id(r.text, "form-error")
        r = await send(c, filled.replace(f",{hm}", ",25:99"))
        assert "like 10:30" in r.text
        hindi = await c.get(f"/staff/centre/day-sheet?date={today.isoformat()}&lang=hi")
        assert "दिन की सूची" in hindi.text
        page = await c.get("/staff/centre/sync")
        assert "ऑफ़लाइन" in page.text and second["ref"] in by_id(page.text, "to-resolve")
        assert "गुप्त कोड" in by_id(page.text, "to-resolve")  # the reason, in Hindi


async def test_only_a_vaccinator_has_a_day_sheet(app, world, maker) -> None:
    async with staff_client(app, "raipur_admin") as c:
        assert (await c.get("/staff/centre/day-sheet")).status_code == 403
        assert (await c.get("/staff/centre/day-sheet.csv")).status_code == 403
        assert (await c.get("/staff/centre/sync")).status_code == 403
    async with staff_client(app, "vaccinator_a") as c:
        r = await c.get("/staff/centre/day-sheet?date=2020-01-01")
        assert r.status_code == 422 and by_id(r.text, "form-error")
        r = await c.get("/staff/centre/day-sheet?date=<script>")
        assert r.status_code == 400 and "<script>" not in r.text


async def test_the_district_resolves_what_an_upload_could_not_record(app, client, world, maker,
                                                                    settings) -> None:
    """The district's page lists a dose refused because the appointment moved after the sheet
    was downloaded; a note is needed (refusal shown at that line, in Hindi, the note kept);
    recorded, it leaves the list and the appointment elsewhere is cancelled. A state officer
    chooses the district. Another district's officer sees nothing of it."""
    from datetime import timedelta

    from teeka.models import Appointment, AppointmentStatus

    today = clock.today()
    here = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    later = await publish(maker, world, centre_id=world.centre_b,
                          day=today + timedelta(days=2), dose1=5)
    person, = await booked(client, maker, world, settings, here, 1)
    r = await client.post(f"/api/v1/appointments/{person['appointment_id']}/reschedule",
                          headers=person["citizen"],
                          json={"session_id": later, "slot": "09:00AM-11:00AM"})
    assert r.status_code in (200, 204), r.text
    at = earlier_today().astimezone(clock.LOCAL_TZ).strftime("%H:%M")
    async with staff_client(app, "vaccinator_a") as c:
        r = await send(c, "appointment_id,session_id,reference_id,secret_code,batch,given_at\r\n"
                          f"{person['appointment_id']},{here},,{person['code']},B-77,{at}\r\n")
        assert r.status_code == 200 and 'class="refused" id="line-2"' in r.text, r.text
    async with staff_client(app, "balod_admin") as c:
        r = await c.get("/staff/district/offline")
        assert r.status_code == 200 and 'id="offline-none"' in r.text
        r = await c.get("/staff/district/offline?district_id=109")
        assert r.status_code == 403
    async with staff_client(app, "raipur_admin", lang="hi") as c:
        page = await c.get("/staff/district/offline")
        assert page.status_code == 200, page.text
        row = by_id(page.text, "offline-kept")
        assert person["ref"] in row and "B-77" in row
        assert 'data-reason="AppointmentChanged"' in page.text
        kept = int(page.text.split('id="kept-', 1)[1].split('"', 1)[0])
        assert f'id="record-{kept}"' in page.text
        r = await c.post(f"/staff/district/offline/{kept}/record",
                         data={"csrf": csrf_of(page.text), "note": "ok"})
        assert r.status_code == 422
        assert "कम से कम 5 अक्षर" in by_id(r.text, "form-error")
        assert ">ok</textarea>" in r.text  # the note typed is kept
        r = await c.post(f"/staff/district/offline/{kept}/record",
                         data={"csrf": csrf_of(page.text), "note": "paper sheet checked"})
        assert r.status_code == 303 and r.headers["location"] == (
            "/staff/district/offline?notice=recorded")
        done = await c.get(r.headers["location"])
        assert 'id="notice"' in done.text and 'id="offline-none"' in done.text
    assert await doses(maker) == 1
    async with session_scope(maker) as db:
        moved = await db.get(Appointment, person["appointment_id"])
        assert moved is not None and moved.status == AppointmentStatus.CANCELLED
    async with staff_client(app, "state") as c:
        r = await c.get("/staff/district/offline?district_id=109")
        assert r.status_code == 200 and 'id="district_id"' in r.text


async def test_a_district_number_in_other_digits_is_ignored_not_a_500(app, world) -> None:
    """`²` and `①` are digits to str.isdigit() but not to int(): the form's district was
    parsed before anything else and the page answered 500."""
    async with staff_client(app, "raipur_admin") as c:
        page = await c.get("/staff/district/offline")
        for odd in ("²", "①", "٣"):
            r = await c.post("/staff/district/offline/2/dismiss",
                             data={"csrf": csrf_of(page.text), "district_id": odd, "note": ""})
            assert r.status_code == 404, r.text
