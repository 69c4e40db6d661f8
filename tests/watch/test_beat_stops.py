"""A process's reports end when it shuts down, whatever moment that is, and the last one says
so (teeka.watch.beat). Seen in CI: a beat cancelled just as its write finished went on for
ever (Python 3.11's asyncio.wait_for lost the cancellation), and `teeka serve` never finished
shutting down; a beat cancelled in the middle of its transaction could also stall on SQLite."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select

from teeka.db import session_scope
from teeka.models import ServerBeat
from teeka.watch.beat import FINISH_WAIT_S, Beat


async def test_a_beat_ends_at_any_moment_and_says_it_stopped(maker) -> None:
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    names = []
    for _ in range(150):
        beat = Beat("web", runs_worker=False)
        beat.start(maker, 0.0005)
        await asyncio.sleep(rng.uniform(0, 0.01))
        began = loop.time()
        await beat.finish()
        assert loop.time() - began < FINISH_WAIT_S, "a beat went on after it was told to end"
        names.append(beat.name)
    async with session_scope(maker) as session:
        rows = (await session.execute(select(ServerBeat))).scalars().all()
    # each one that reported says it stopped (one ended before its first report has no row)
    assert rows and all(row.stopped_at is not None for row in rows)
    assert {row.name for row in rows} <= set(names)


async def test_a_beat_never_started_finishes_at_once() -> None:
    await Beat("worker", runs_worker=True).finish()


STUBBORN = """
import asyncio, sys
from teeka.kit.shutdown import exit_after

async def stubborn():  # a task that loses its cancellation, as a library may
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass

async def main():
    if sys.argv[1] == "stuck":
        asyncio.create_task(stubborn())
    await asyncio.sleep(0.05)
    exit_after(float(sys.argv[2]))  # the shutdown begins

asyncio.run(main())  # cancels what is left and waits for it, without a bound
"""


def test_a_shutdown_left_stuck_ends_anyway_and_a_clean_one_is_not_held() -> None:
    import subprocess
    import sys
    import time

    stuck = subprocess.run([sys.executable, "-c", STUBBORN, "stuck", "1"],
                           capture_output=True, timeout=30)
    assert stuck.returncode == 1 and b"shutdown.stuck_exit" in stuck.stdout + stuck.stderr
    began = time.monotonic()
    clean = subprocess.run([sys.executable, "-c", STUBBORN, "clean", "60"],
                           capture_output=True, timeout=30)
    assert clean.returncode == 0 and time.monotonic() - began < 20
