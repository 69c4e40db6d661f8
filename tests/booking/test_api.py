from __future__ import annotations

import httpx

from tests.factories import add_beneficiary, login_citizen, publish


async def test_book_cancel_rebook_moves_the_figures(client: httpx.AsyncClient, world, maker,
                                                    settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)

    async def free() -> int:
        r = await client.get("/api/v1/sessions", params={"centre_id": world.centre_a, "days": 7})
        assert r.status_code == 200, r.text
        return next(s["available_dose1"] for s in r.json() if s["session_id"] == sid)

    assert await free() == 2
    r = await client.post("/api/v1/appointments", headers={**citizen, "Idempotency-Key": "k-000001"},
                          json={"session_id": sid, "slot": "09:00AM-11:00AM",
                                "beneficiaries": [ref], "dose": 1})
    assert r.status_code == 201, r.text
    appt = r.json()["appointment_ids"][0]
    assert await free() == 1
    r = await client.post(f"/api/v1/appointments/{appt}/cancel", headers=citizen)
    assert r.status_code == 204, r.text
    assert await free() == 2
