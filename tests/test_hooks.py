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


async def test_at_shutdown_the_server_waits_for_what_requests_left_running(settings) -> None:
    """A claim to be given back a moment after its answer was lost, and hooks whose request
    was cancelled, end before the server's connections close (the lifespan waits for them):
    else a rolling deploy would leave the person refused for the claim's 30 s."""
    from teeka.db import hooks_finished
    from teeka.surge import service
    from teeka.surge.store import MemoryStore

    store = MemoryStore()
    room = service.WaitingRoom(store, settings.resolved_secret())
    store._claims[7] = {"42": (2e9, ("m",), "k")}
    room._give_back_later(7, "42", "m")
    done: list[str] = []

    async def hook() -> None:
        await asyncio.sleep(0.2)
        done.append("hook")

    request = asyncio.create_task(run_hooks([hook]))
    await asyncio.sleep(0)
    request.cancel()
    await room.finished(wait_s=service.GIVE_BACK_AFTER_S + 5)
    await hooks_finished(wait_s=5)
    assert "42" not in store._claims[7] and done == ["hook"]
