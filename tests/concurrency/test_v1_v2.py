"""PostgreSQL only: bookings through /api/v1 and the national /api/v2 at once, on one slot,
go through the same guard and never oversell."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from teeka.booking import repository as repo
from teeka.db import session_scope
from teeka.models import Appointment
from tests.factories import bulk_citizens, publish

SLOT = "09:00AM-11:00AM"


async def test_v1_and_v2_together_never_oversell(client, world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=10)
    people = await bulk_citizens(maker, settings, 80)

    async def v1(i: int, h: dict[str, str], ref: str) -> tuple[str, int]:
        r = await client.post("/api/v1/appointments",
                              headers={**h, "Idempotency-Key": f"mixed-{i:04d}"},
                              json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
        return "v1", r.status_code

    async def v2(i: int, h: dict[str, str], ref: str) -> tuple[str, int]:
        r = await client.post("/api/v2/appointment/schedule", headers=h, json={
            "dose": 1, "session_id": sid, "slot": SLOT, "beneficiaries": [ref],
            "center_id": world.centre_a})
        if r.status_code == 409:
            assert r.json()["errorCode"] == "APPOIN0040"
        return "v2", r.status_code

    results = await asyncio.gather(*[(v1 if i % 2 else v2)(i, h, ref)
                                     for i, (h, ref) in enumerate(people)])
    ok = Counter(api for api, code in results if code in (200, 201))
    refused = Counter(code for _, code in results if code not in (200, 201))
    assert sum(ok.values()) == 10 and refused == {409: 70}, (ok, refused)
    async with session_scope(maker) as db:
        assert (await db.execute(select(func.count()).select_from(Appointment))).scalar() == 10
        assert await repo.recount_mismatches(db) == []
