"""Problems and the operators' watch, through the pages (no JavaScript), Hindi and English."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Appointment, AppointmentStatus, OutboxMessage, OutboxStatus
from teeka.watch import signals
from tests.factories import bulk_citizens, publish
from tests.staff import by_id, csrf_of, staff_client, submit


async def test_a_vaccinator_raises_a_problem_and_the_operator_resolves_it(app, world) -> None:
    async with staff_client(app, "vaccinator_a") as c:
        r = await submit(c, "/staff/problems/new", "/staff/problems/new",
                         {"severity": "urgent", "title": "", "details": "x"})
        assert r.status_code == 400 and "title" in by_id(r.text, "form-error")
        assert 'value="urgent" id="severity-urgent" checked' in r.text  # what was typed stays
        r = await submit(c, "/staff/problems/new", "/staff/problems/new",
                         {"severity": "urgent", "title": "Network down since 10:00",
                          "details": "<script>alert(1)</script> working from the day sheet"})
        assert r.status_code == 303, r.text
        url = r.headers["location"].split("?")[0]
        page = await c.get(r.headers["location"])
        assert by_id(page.text, "notice").startswith("The problem is raised.")
        assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
        assert 'id="move-resolved"' not in page.text  # only an operator resolves
    async with staff_client(app, "state") as c:
        listing = await c.get("/staff/problems")
        assert "Network down since 10:00" in by_id(listing.text, "problems")
        page = await c.get(url)
        r = await c.post(url + "/notes", data={"csrf": csrf_of(page.text), "text": "",
                                               "status": "resolved"})
        assert r.status_code == 400 and by_id(r.text, "form-error")
        r = await c.post(url + "/notes", data={"csrf": csrf_of(page.text),
                                               "text": "Router replaced by BSNL.",
                                               "status": "resolved"})
        assert r.status_code == 303, r.text
        page = await c.get(r.headers["location"].split("#")[0])
        assert by_id(page.text, "notice") == "The problem is resolved."
        assert by_id(page.text, "status") == "Resolved"
        assert "Router replaced by BSNL." in by_id(page.text, "notes")
        hindi = await c.get(url + "?lang=hi")
        assert "हल हो गई" in by_id(hindi.text, "status")
    async with staff_client(app, "balod_admin") as c:
        assert (await c.get(url)).status_code == 404


async def test_the_operators_see_silent_centres_late_sms_and_overdue_problems(
        app, client, world, maker, settings) -> None:
    r = await client.get("/api/v1/watch", headers=world.headers("state"))
    assert r.status_code == 200 and r.json()["trouble"] == [], r.text

    # noon today: someone is booked in the morning slot, which is over, and the centre has
    # recorded nothing
    today = clock.today()
    clock.shift(clock.local_datetime(today, 12, 0) - clock.now())
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=10)
    for i, (headers, ref) in enumerate(await bulk_citizens(maker, settings,
                                                           signals.SILENT_ALARM)):
        r = await client.post("/api/v1/appointments",
                              headers={**headers, "Idempotency-Key": f"watch-key-{i:04d}"},
                              json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                    "beneficiaries": [ref]})
        assert r.status_code == 201, r.text
    async with session_scope(maker) as db:  # its SMS is not sent (no worker here)
        assert OutboxStatus.PENDING in (await db.execute(
            select(OutboxMessage.status))).scalars().all()
        assert (await db.execute(select(Appointment.status))).scalar() == \
            AppointmentStatus.BOOKED
    # and a problem nobody takes
    r = await client.post("/api/v1/problems", headers=world.headers("raipur_admin"),
                          json={"severity": "urgent", "title": "Cannot log in",
                                "details": "All staff"})
    assert r.status_code == 201, r.text
    clock.shift(timedelta(minutes=31))
    async with staff_client(app, "state") as c:
        page = await c.get("/staff/watch?auto=1")
        assert '<meta http-equiv="refresh" content="60">' in page.text
        assert "http-equiv" not in (await c.get("/staff/watch")).text  # only when asked
        trouble = by_id(page.text, "trouble")
        for code in ("urgent_problem", "problem_overdue", "silent_centres", "sms_late"):
            assert f'data-trouble="{code}"' in page.text, (code, trouble)
        assert f'data-centre="{world.centre_a}"' in page.text
        assert "Centre A" in by_id(page.text, "silent-centres")
    async with staff_client(app, "raipur_admin") as c:
        assert (await c.get("/staff/watch")).status_code == 403
    r = await client.get("/api/v1/watch", headers=world.headers("state"))
    assert r.status_code == 200, r.text
    assert r.json()["trouble"][:4] == ["urgent_problem", "problem_overdue", "silent_centres",
                                       "sms_late"]
    assert r.json()["silent_centres"][0]["missed"] == signals.SILENT_ALARM
    r = await client.get("/api/v1/watch", headers=world.headers("raipur_admin"))
    assert r.status_code == 403
