"""PostgreSQL only: the district records a dose given offline (teeka.vaccination.resolve) while
the centre uploads the same line again, or while the person is vaccinated online: each side
locks appointments, then the person, then the kept row, so one waits for the other and neither
dies in a deadlock. The first side is held at a chosen step (a wrapper around the real function
waits for a signal), the second is started, then the first goes on."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from teeka import errors
from teeka.db import session_scope
from teeka.kit import clock
from teeka.vaccination import offline, resolve, service
from tests.factories import publish
from tests.vaccination.test_offline import booked, earlier_today

pytestmark = pytest.mark.postgres_only


async def _kept_walkin(client, world, maker, settings, *, booked_today: bool):
    today = clock.today()
    here = await publish(maker, world, centre_id=world.centre_c, day=today, dose1=5, walkins=5)
    if booked_today:
        there = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5)
    else:
        there = await publish(maker, world, centre_id=world.centre_a,
                              day=today + timedelta(days=2), dose1=5)
    person, = await booked(client, maker, world, settings, there, 1)
    line = {"reference_id": person["ref"], "session_id": here, "secret_code": person["code"],
            "batch": "B-9", "given_at": earlier_today().isoformat()}
    r = await client.post("/api/v1/centre/day-sheet", headers=world.headers("vaccinator_c"),
                          json={"doses": [line]})
    assert r.json()["doses"][0]["code"] == "AlreadyBooked", r.text
    r = await client.get("/api/v1/admin/offline-doses", params={"district_id": 110},
                         headers=world.headers("state"))
    kept, = r.json()
    return here, person, kept


async def test_a_line_uploaded_again_while_the_district_records_it(
        client, world, maker, settings, monkeypatch) -> None:
    here, person, kept = await _kept_walkin(client, world, maker, settings, booked_today=False)
    go, paused = asyncio.Event(), asyncio.Event()
    orig = offline._keep

    async def slow_keep(session, actor, k, *a, **kw):
        if not paused.is_set():
            paused.set()
            await go.wait()
        return await orig(session, actor, k, *a, **kw)

    monkeypatch.setattr(offline, "_keep", slow_keep)
    row = offline.SheetRow(appointment_id="", session_id=here, secret_code=person["code"],
                           batch="B-9", given_at=earlier_today(), reference_id=person["ref"])

    async def upload():
        async with session_scope(maker) as db:
            return await offline.sync(db, actor=world.actor("vaccinator_c"), rows=[row],
                                      lang="en")

    async def record():
        await paused.wait()
        async with session_scope(maker) as db:
            return await resolve.record(db, actor=world.actor("state"), offline_id=kept["id"],
                                        note="walk-in on paper, checked")

    async def release():
        await paused.wait()
        await asyncio.sleep(0.5)
        go.set()

    uploaded, recorded, _ = await asyncio.gather(upload(), record(), release(),
                                                 return_exceptions=True)
    assert isinstance(uploaded, offline.SyncReport), repr(uploaded)
    assert uploaded.rows[0].code == "AlreadyBooked"  # still booked elsewhere while it ran
    assert isinstance(recorded, service.DoseOutcome), repr(recorded)
    assert recorded.record.walk_in and recorded.record.session_id == here


async def test_a_dose_recorded_online_while_the_district_records_the_offline_one(
        client, world, maker, settings, monkeypatch) -> None:
    _, person, kept = await _kept_walkin(client, world, maker, settings, booked_today=True)
    go, paused = asyncio.Event(), asyncio.Event()
    orig = service.check_eligible

    async def slow(session, p, vs):
        paused.set()
        await go.wait()
        return await orig(session, p, vs)

    monkeypatch.setattr(service, "check_eligible", slow)

    async def record():
        async with session_scope(maker) as db:
            return await resolve.record(db, actor=world.actor("state"), offline_id=kept["id"],
                                        note="walk-in on paper, checked")

    async def vaccinate():
        await paused.wait()
        async with session_scope(maker) as db:
            return await service.record_dose(db, actor=world.actor("vaccinator_a"),
                                             appointment_id=person["appointment_id"],
                                             secret_code=person["code"], batch="B-1")

    async def release():
        await paused.wait()
        await asyncio.sleep(0.5)
        go.set()

    recorded, vaccinated, _ = await asyncio.gather(record(), vaccinate(), release(),
                                                   return_exceptions=True)
    # One dose 1 for the person: the district's record (its cancel of today's appointment
    # makes the online dose a refusal), with no deadlock on either side.
    assert isinstance(recorded, service.DoseOutcome), repr(recorded)
    assert isinstance(vaccinated, errors.DomainError) and "deadlock" not in repr(vaccinated), \
        repr(vaccinated)
