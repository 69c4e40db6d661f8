"""District scoping of administration: a district admin manages their own district only."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Centre
from tests.centre.test_csv import count_sessions, csv_body, errors_by_row, line, upload
from tests.factories import publish, slot_of


def centre_body(district_id: int, block_id: int) -> dict[str, object]:
    return {"district_id": district_id, "block_id": block_id, "name_en": "UPHC Tatibandh",
            "name_hi": "शहरी प्राथमिक स्वास्थ्य केंद्र टाटीबंध", "pincode": 492099,
            "lat": 21.26, "long": 81.59}


def session_body(centre_id: int) -> dict[str, object]:
    return {"centre_id": centre_id, "date": str(clock.today() + timedelta(days=1)),
            "vaccine": "COVISHIELD", "slots": [{"label": "09:00AM-11:00AM", "dose1": 10}]}


async def raipur_block(maker, world) -> int:
    async with session_scope(maker) as db:
        centre = await db.get(Centre, world.centre_a)
        assert centre is not None and centre.district_id == 109
        return centre.block_id


async def centres_in(maker, district_id: int) -> int:
    async with session_scope(maker) as db:
        return len((await db.execute(select(Centre).where(Centre.district_id == district_id))
                    ).scalars().all())


async def test_balod_admin_cannot_create_a_centre_in_raipur(client: httpx.AsyncClient, world,
                                                            maker) -> None:
    before = await centres_in(maker, 109)
    r = await client.post("/api/v1/admin/centres", headers=world.headers("balod_admin"),
                          json=centre_body(109, await raipur_block(maker, world)))
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "Forbidden"
    assert await centres_in(maker, 109) == before


async def test_balod_admin_cannot_publish_a_session_for_a_raipur_centre(client, world,
                                                                        maker) -> None:
    r = await client.post("/api/v1/admin/sessions", headers=world.headers("balod_admin"),
                          json=session_body(world.centre_a))
    assert r.status_code == 403, r.text
    assert await count_sessions(maker) == 0


async def test_balod_admin_cannot_import_sessions_for_a_raipur_centre(client, world,
                                                                      maker) -> None:
    r = await upload(client, world.headers("balod_admin"), csv_body(
        line(world.centre_c), line(world.centre_a), line(world.centre_a, slot="11:00AM-01:00PM")))
    assert errors_by_row(r) == {3: ["CentreNotInDistrict"], 4: ["CentreNotInDistrict"]}
    assert r.json()["rows"][0]["errors"] == [f"centre not in your district "
                                             f"(centre_id {world.centre_a})"]
    # Nothing about the other district's centre is disclosed.
    assert "Centre A" not in r.text and "492001" not in r.text and "Raipur" not in r.text
    assert await count_sessions(maker) == 0  # not even Balod's own row


async def test_balod_admin_cannot_change_capacity_of_a_raipur_slot(client, world, maker) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=10)
    slot_id = await slot_of(maker, sid)
    r = await client.put(f"/api/v1/admin/slots/{slot_id}/capacity",
                         headers=world.headers("balod_admin"),
                         json={"dose_kind": "first", "capacity": 0})
    assert r.status_code == 403, r.text


async def test_district_admin_manages_their_own_district(client, world, maker) -> None:
    """The control for the refusals above: the same requests in one's own district succeed."""
    headers = world.headers("raipur_admin")
    r = await client.post("/api/v1/admin/centres", headers=headers,
                          json=centre_body(109, await raipur_block(maker, world)))
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/admin/sessions", headers=headers,
                          json=session_body(world.centre_a))
    assert r.status_code == 201, r.text
    r = await upload(client, headers, csv_body(line(world.centre_b)))
    assert r.status_code == 201, r.text
    assert await count_sessions(maker) == 2


async def test_other_staff_do_not_administer(client, world, maker) -> None:
    for who in ("helpdesk", "vaccinator_a"):
        r = await client.post("/api/v1/admin/centres", headers=world.headers(who),
                              json=centre_body(109, await raipur_block(maker, world)))
        assert r.status_code == 403, (who, r.text)
        r = await client.post("/api/v1/admin/sessions", headers=world.headers(who),
                              json=session_body(world.centre_a))
        assert r.status_code == 403, (who, r.text)
    assert await count_sessions(maker) == 0
