"""Limits counted before they are written, under a burst sent at once (PostgreSQL; SQLite has
one writer): the staff second factor's five tries, and four people per mobile number. Each
fails without its lock (a reviewer's reproduction: 21 codes compared, 10 people added)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from teeka.kit import clock
from teeka.models import AuditEntry, Beneficiary, BeneficiaryStatus
from tests.auth.test_pages import code_for, sign_in
from tests.factories import PASSWORD, login_citizen, next_aadhaar


@pytest.mark.postgres_only
async def test_second_factor_tries_are_capped_under_concurrency(client, world, maker) -> None:
    secret, _ = await sign_in(client, "raipur_admin")
    clock.shift(timedelta(seconds=31))
    accepted = {code_for(secret, s) for s in (-1, 0, 1)}
    guesses = [f"{n:06d}" for n in range(40) if f"{n:06d}" not in accepted][:30]
    body = {"username": "raipur_admin", "password": PASSWORD}
    rs = await asyncio.gather(*(client.post("/api/v1/staff/login", json={**body, "totp": g})
                                for g in guesses))
    compared = sum(r.status_code == 401 for r in rs)
    async with maker() as db:
        failed = (await db.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "auth.staff.second_factor_failed"))).scalar_one()
    # SECOND_FACTOR_TRIES = 5: at most five codes may ever be compared in the window
    assert compared <= 5 and failed <= 5, (compared, failed)


@pytest.mark.postgres_only
async def test_four_people_per_mobile_under_concurrency(client, world, maker, settings) -> None:
    headers = await login_citizen(client, maker, settings)

    def add(i: int):
        return client.post("/api/v1/beneficiaries", headers=headers, json={
            "name": f"Person {chr(65 + i)}", "birth_year": 1980, "gender": "female",
            "id_type": "aadhaar", "id_number": next_aadhaar(), "priority_group": "none"})

    rs = await asyncio.gather(*(add(i) for i in range(10)))
    async with maker() as db:
        n = (await db.execute(select(func.count()).select_from(Beneficiary).where(
            Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one()
    assert n <= 4, ([r.status_code for r in rs], n)
