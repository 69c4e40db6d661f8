"""PostgreSQL only: the same filled day sheet uploaded twice at the same moment (a double
click, a retry while the first upload still runs), while the vaccinator also types two of its
doses online: every dose is recorded exactly once, walk-ins never beyond the session's
allowance, each upload answers every row, nothing is a 5xx, and the centre's record of each
dose given offline is one row per appointment or walk-in — the refused ones (appointments
cancelled or moved away after the sheet was downloaded, a walk-in over the allowance) too."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Beneficiary, DoseRecord, OfflineDose
from teeka.vaccination import offline
from tests.factories import bulk_citizens, publish
from tests.vaccination.test_offline import earlier_today

SLOT = "09:00AM-11:00AM"


async def race(client: httpx.AsyncClient, world, maker, settings) -> list[httpx.Response]:
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=40, walkins=3)
    elsewhere = await publish(maker, world, centre_id=world.centre_b, day=today, dose1=5)
    people = await bulk_citizens(maker, settings, 24)
    walkers = await bulk_citizens(maker, settings, 4)  # no appointment: walk-ins
    booked = []
    for i, (headers, ref) in enumerate(people):
        r = await client.post("/api/v1/appointments",
                              headers={**headers, "Idempotency-Key": f"sheet-twice-{i:04d}"},
                              json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
        assert r.status_code == 201, r.text
        booked.append((headers, ref, r.json()["appointment_ids"][0]))
    async with session_scope(maker) as db:
        codes = dict((await db.execute(select(Beneficiary.reference_id,
                                              Beneficiary.secret_code))).all())
    # cancelled, or moved to another centre, after the sheet was downloaded: those an upload
    # comes to first (it goes in appointment order), so that both uploads reach them at the
    # same moment. The moved ones' codes were copied wrong: refused with nothing of the person
    # held (their code check is undone, and they are another centre's now), only the
    # appointment's lock keeps the two uploads' records of them apart.
    booked.sort(key=lambda b: b[2], reverse=True)
    for headers, _ref, appt in booked[20:22]:
        r = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=headers)
        assert r.status_code == 204, r.text
    for headers, ref, appt in booked[22:]:
        r = await client.post(f"/api/v1/appointments/{appt}/reschedule", headers=headers,
                              json={"session_id": elsewhere, "slot": SLOT})
        assert r.status_code in (200, 204), r.text
        codes[ref] = f"{(int(codes[ref]) + 1) % 10_000:04d}"
    at = earlier_today()
    sheet = {"doses": [{"appointment_id": appt, "session_id": sid, "secret_code": codes[ref],
                        "batch": "4121Z025", "given_at": at.isoformat()}
                       for _h, ref, appt in booked]
             + [{"reference_id": ref, "session_id": sid, "secret_code": codes[ref],
                 "batch": "4121Z025", "given_at": at.isoformat()} for _h, ref in walkers]
             # a walk-in whose reference id was copied wrong: refused, kept once as typed
             + [{"reference_id": "99999999999999", "session_id": sid, "secret_code": "1234",
                 "batch": "4121Z025", "given_at": at.isoformat()}]}
    staff = world.headers("vaccinator_a")

    async def typed(ref: str, appt: str) -> httpx.Response:
        return await client.post("/api/v1/centre/doses", headers=staff, json={
            "appointment_id": appt, "secret_code": codes[ref], "batch": "4121Z025"})

    # the second device's copy in another order, the cancelled ones first
    other = {"doses": sheet["doses"][::-1]}
    answers = await asyncio.gather(
        client.post("/api/v1/centre/day-sheet", headers=staff, json=sheet),
        client.post("/api/v1/centre/day-sheet", headers=staff, json=other),
        typed(booked[3][1], booked[3][2]), typed(booked[11][1], booked[11][2]))
    return answers


async def test_a_sheet_sent_twice_at_once_records_each_dose_once(client: httpx.AsyncClient,
                                                                 world, maker, settings) -> None:
    answers = await race(client, world, maker, settings)
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    uploads = [a.json() for a in answers[:2]]
    for u in uploads:  # 20 appointments and 3 walk-ins recorded; 4 cancelled or moved, 1
        # walk-in over the allowance, 1 naming nobody
        assert len(u["doses"]) == 29 and u["refused"] == 6
        assert u["recorded"] + u["already_recorded"] == 23
    online = sum(1 for a in answers[2:] if a.status_code == 201)
    assert uploads[0]["recorded"] + uploads[1]["recorded"] + online == 23
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(DoseRecord))).scalar_one() == 23
        kept = (await db.execute(select(OfflineDose.outcome, func.count())
                                 .group_by(OfflineDose.outcome))).all()
        assert dict(kept) == {"recorded": 23, "refused": 6}  # one row each, never two


async def test_canary_without_the_lock_two_uploads_collide(
        client: httpx.AsyncClient, world, maker, settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Expected to show the failure: with the rows' appointments not locked first, both
    uploads keep their record of the same refused dose at once and one of them fails on the
    unique constraint. If this ever stops happening, the test above no longer proves that the
    lock is needed."""
    monkeypatch.setattr(offline, "LOCK_FIRST", False)
    try:
        answers = await race(client, world, maker, settings)
    except IntegrityError:
        return  # the collision, raised through the test client
    assert any(a.status_code >= 500 for a in answers), "no collision: the race did not happen"


async def test_a_walkin_line_naming_nobody_is_kept_once_by_two_uploads_at_once(
        client: httpx.AsyncClient, world, maker, settings) -> None:
    """Two devices upload, at the same moment, a walk-in line whose reference id names nobody
    (copied wrong): its record has no appointment to lock, so the session's row is locked
    before it is kept. One row, however the uploads interleave."""
    today = clock.today()
    sid = await publish(maker, world, centre_id=world.centre_a, day=today, dose1=5, walkins=3)
    line = {"reference_id": "99999999999999", "session_id": sid, "secret_code": "1234",
            "batch": "4121Z025", "given_at": earlier_today().isoformat()}
    staff = world.headers("vaccinator_a")
    answers = await asyncio.gather(*(
        client.post("/api/v1/centre/day-sheet", headers=staff, json={"doses": [line]})
        for _ in range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    async with session_scope(maker) as db:
        rows = (await db.execute(select(OfflineDose.uploads))).scalars().all()
    assert rows == [4]
