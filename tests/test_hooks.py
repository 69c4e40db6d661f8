"""What follows a unit of work (teeka.db.AFTER_COMMIT, AFTER_END) runs to its end."""

from __future__ import annotations

import asyncio

import pytest

from teeka.db import run_hooks


async def test_hooks_after_a_unit_of_work_run_to_their_end_when_its_request_is_cancelled(
        ) -> None:
    """A cancellation of the request (a client gone, a shutdown) while what follows a commit is
    running (a hold used, a claim given back) neither stops the hook under way nor skips the
    ones after it: skipped, a used hold would stay live, or an account be refused for 30 s."""
    done: list[str] = []
    started = asyncio.Event()

    async def use_hold() -> None:
        started.set()
        await asyncio.sleep(0.05)
        done.append("hold used")

    async def give_back_claim() -> None:
        await asyncio.sleep(0)
        done.append("claim given back")

    request = asyncio.create_task(run_hooks([use_hold], [give_back_claim]))
    await started.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.2)
    assert done == ["hold used", "claim given back"]
