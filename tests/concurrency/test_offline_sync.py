"""PostgreSQL only: the same filled day sheet uploaded twice at the same moment (a double
click, a retry while the first upload still runs), while the vaccinator also types two of its
doses online (two more were typed before it was sent): every dose is recorded exactly once,
walk-ins never beyond the session's allowance, each upload answers every row, nothing is a
5xx, and the centre's record of each
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
    # Those an upload comes to first (it goes in appointment order), so that both uploads reach
    # them at the same moment: two typed online before the sheet was sent (the network came
    # back for a moment: both uploads find them recorded, and only the appointment's lock keeps
    # their records of them apart), two cancelled and two moved to another centre with codes
    # copied wrong after the sheet was downloaded.
    booked.sort(key=lambda b: b[2], reverse=True)
    staff = world.headers("vaccinator_a")
    for _headers, ref, appt in booked[22:]:
        r = await client.post("/api/v1/centre/doses", headers=staff, json={
            "appointment_id": appt, "secret_code": codes[ref], "batch": "4121Z025"})
        assert r.status_code == 201, r.text
    for headers, _ref, appt in booked[20:22]:
        r = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=headers)
        assert r.status_code == 204, r.text
    for headers, ref, appt in booked[18:20]:
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
    for u in uploads:  # 20 appointments (2 typed before) and 3 walk-ins recorded; 4
        # cancelled or moved, 1 walk-in over the allowance, 1 naming nobody
        assert len(u["doses"]) == 29 and u["refused"] == 6
        assert u["recorded"] + u["already_recorded"] == 23
    online = sum(1 for a in answers[2:] if a.status_code == 201)
    assert uploads[0]["recorded"] + uploads[1]["recorded"] + online + 2 == 23
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


def _walkin_line(ref: str, sid: str, code: str) -> dict[str, str]:
    return {"reference_id": ref, "session_id": sid, "secret_code": code, "batch": "B1",
            "given_at": earlier_today().isoformat()}


@pytest.mark.parametrize("unknown", [True, False])
async def test_two_uploads_over_two_sessions_do_not_deadlock(client: httpx.AsyncClient, world,
                                                             maker, settings, unknown) -> None:
    """Walk-in lines are taken by person, so two uploads would reach a centre's two sessions in
    opposite orders (with people known, or a line naming nobody); the sessions are locked with
    the people, in id order. A third connection holds the first session so both uploads are
    under way at once; then both answer 200."""
    from sqlalchemy import text

    today = clock.today()
    s1 = await publish(maker, world, centre_id=world.centre_a, day=today, walkins=5)
    s2 = await publish(maker, world, centre_id=world.centre_a, day=today, walkins=5,
                       vaccine="COVAXIN")
    people = await bulk_citizens(maker, settings, 4)
    async with session_scope(maker) as db:
        codes = dict((await db.execute(select(Beneficiary.reference_id,
                                              Beneficiary.secret_code))).all())
    lo, p1, p2, hi = sorted(r for _h, r in people)
    first = ("00000000000000", "1234") if unknown else (lo, codes[lo])
    last = ("99999999999999", "1234") if unknown else (hi, codes[hi])
    up1 = [_walkin_line(first[0], s2, first[1]), _walkin_line(p1, s1, codes[p1])]
    up2 = [_walkin_line(p2, s1, codes[p2]), _walkin_line(last[0], s2, last[1])]
    staff, url = world.headers("vaccinator_a"), "/api/v1/centre/day-sheet"
    async with maker() as blocker:
        await blocker.execute(text("SELECT id FROM vaccination_session WHERE id = :id "
                                   "FOR UPDATE"), {"id": s1})
        t2 = asyncio.create_task(client.post(url, headers=staff, json={"doses": up2}))
        await asyncio.sleep(0.5)
        t1 = asyncio.create_task(client.post(url, headers=staff, json={"doses": up1}))
        await asyncio.sleep(0.5)
        assert not t1.done() and not t2.done()
        await blocker.rollback()
    a1, a2 = await t1, await t2
    assert (a1.status_code, a2.status_code) == (200, 200), (a1.text, a2.text)
