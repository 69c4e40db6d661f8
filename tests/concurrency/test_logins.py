"""PostgreSQL only: the same new mobile number signing in twice at the same moment (two OTPs,
two phones or two tabs) ends with one account, and both logins succeed. Before, the second
insert of the account failed on the unique number and the person got an error page."""

from __future__ import annotations

import asyncio
import re

import pytest

from teeka.auth.service import actor_from_token
from teeka.kit import clock
from teeka.models import Account
from tests.factories import latest_sms, next_mobile


@pytest.mark.postgres_only
async def test_a_new_number_signed_in_twice_at_once_gets_one_account(client, maker,
                                                                      settings) -> None:
    mobile = next_mobile()
    r = await client.post("/api/v1/auth/otp", json={"mobile": mobile})
    assert r.status_code == 200, r.text
    txn = r.json()["txn_id"]
    code = re.search(r"\b(\d{6})\b", await latest_sms(client, maker, settings, mobile))
    assert code is not None
    # The other login has inserted the new account and not committed yet: this one's insert
    # waits for it, then finds the number taken.
    async with maker() as other:
        made = Account(mobile=mobile, created_at=clock.now())
        other.add(made)
        await other.flush()
        confirm = asyncio.create_task(client.post("/api/v1/auth/otp/confirm",
                                                  json={"txn_id": txn, "otp": code[1]}))
        await asyncio.sleep(0.5)
        assert not confirm.done()
        await other.commit()
        made_id = made.id
    r = await confirm
    assert r.status_code == 200, r.text
    async with maker() as db:
        actor = await actor_from_token(db, settings, r.json()["token"])
    assert actor.id == made_id
