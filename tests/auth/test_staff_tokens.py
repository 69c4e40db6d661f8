"""A staff user's API tokens last a shift and end at their logout, from the API or the pages,
on every device (they carry the moment they were issued, `si`; teeka.auth.service)."""

from __future__ import annotations

from datetime import timedelta

from teeka.kit import clock
from tests.auth.test_pages import sign_in
from tests.staff import csrf_of


async def test_an_api_logout_ends_every_api_token_of_that_user(client, world) -> None:
    phone, tablet = world.headers("raipur_admin"), world.headers("raipur_admin")
    other = world.headers("balod_admin")
    assert (await client.get("/api/v1/problems", headers=tablet)).status_code == 200
    clock.shift(timedelta(seconds=1))
    r = await client.post("/api/v1/staff/logout", headers=phone)
    assert r.status_code == 204, r.text
    for headers in (phone, tablet):  # a copy kept on another device ends too
        r = await client.get("/api/v1/problems", headers=headers)
        assert r.status_code == 401, r.text
    assert (await client.get("/api/v1/problems", headers=other)).status_code == 200
    clock.shift(timedelta(seconds=1))  # a token issued after the logout works
    assert (await client.get("/api/v1/problems",
                             headers=world.headers("raipur_admin"))).status_code == 200


async def test_a_page_logout_ends_the_users_api_tokens(client, world) -> None:
    token = world.headers("vaccinator_a")
    assert (await client.get("/api/v1/problems", headers=token)).status_code == 200
    clock.shift(timedelta(seconds=1))
    await sign_in(client, "vaccinator_a")
    page = await client.get("/staff/centre")
    r = await client.post("/staff/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    assert (await client.get("/api/v1/problems", headers=token)).status_code == 401


async def test_only_staff_log_out_here(client, world, maker, settings) -> None:
    from tests.factories import login_citizen

    headers = await login_citizen(client, maker, settings)
    assert (await client.post("/api/v1/staff/logout", headers=headers)).status_code == 403
    assert (await client.post("/api/v1/staff/logout")).status_code == 401


async def test_a_token_from_before_tokens_carried_their_issue_time(client, world, maker) -> None:
    """A staff API token issued before this release (no `si`) by someone who logged out the day
    before keeps working (its `iat` is after the logout); one issued before the logout ends."""
    from sqlalchemy import update

    from teeka.db import session_scope
    from teeka.kit import signing
    from teeka.models import StaffUser

    staff = world.staff["raipur_admin"]

    def old_token() -> dict[str, str]:
        token = signing.issue_token(world.settings.resolved_secret(), subject=str(staff.id),
                                    kind="staff", now=clock.now(), ttl=timedelta(hours=8))
        return {"Authorization": f"Bearer {token}"}

    before = old_token()
    clock.shift(timedelta(hours=1))
    async with session_scope(maker) as db:
        await db.execute(update(StaffUser).where(StaffUser.id == staff.id)
                         .values(signed_out_at=clock.now()))
    clock.shift(timedelta(hours=1))
    assert (await client.get("/api/v1/problems", headers=old_token())).status_code == 200
    assert (await client.get("/api/v1/problems", headers=before)).status_code == 401
