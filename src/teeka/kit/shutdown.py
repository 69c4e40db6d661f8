"""A bound on how long a process takes to stop. Its shutdown waits for its own background
tasks for a bounded time (teeka.app, teeka.watch.beat), but asyncio's own end (`asyncio.run`,
uvicorn's loop) then cancels whatever is left and waits for it without any bound: a task that
ignores its cancellation (a library that loses one; Python 3.11's `asyncio.wait_for` did, and a
server never stopped, seen in CI on 29 Nov) would keep the process alive for ever, and with it
a container's slot or a port."""

from __future__ import annotations

import os
import threading

import structlog

log = structlog.get_logger("teeka.shutdown")
LIMIT_S = 45.0  # beyond every bounded wait of a shutdown (about 31 s at worst) and its slack


def exit_after(seconds: float = LIMIT_S) -> threading.Timer:
    """Exit the process (status 1) `seconds` from now unless the returned timer is cancelled
    first. A daemon thread: a process that ends sooner is not held by it."""

    def stuck() -> None:
        log.error("shutdown.stuck_exit", after_s=seconds)
        os._exit(1)

    timer = threading.Timer(seconds, stuck)
    timer.daemon = True
    timer.start()
    return timer
