"""Each running process reports itself for the operators' view: every `beat_seconds` (15 s) a
web server or an outbox worker writes one row (`server_beat`) with what it counted over the
last minute: requests worked on, requests refused at once (503: the load shedder, the
database's door, a retry the database asked for), requests that ended in an unexpected error
(500), and how late its event loop ran. The counts are this process's Prometheus counters
(`/metrics`), read as differences over a minute, so that the watch (teeka.watch.signals) adds
up every process of every host without scraping each one. A process that shuts down says so
(`stopped_at`); one that stops reporting without saying so (killed, crashed, its host lost)
is what the watch calls silent.

Cost: one short transaction per process per 15 s (a primary-key read, an insert or update,
and removing rows older than KEEP), given up after BEAT_TIMEOUT_S; a report that fails is
logged and tried again at the next beat (it never stops the server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections import deque
from dataclasses import dataclass, fields
from datetime import timedelta

import structlog
from prometheus_client import REGISTRY
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import ServerBeat

log = structlog.get_logger("teeka.watch")
WINDOW_BEATS = 4  # the counts cover the last four beats: a minute at 15 s
KEEP = timedelta(days=1)  # rows of processes that stopped (or went silent) are removed after
BEAT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0  # the last report, saying the process stopped, is given up after this
FINISH_WAIT_S = BEAT_TIMEOUT_S + STOP_TIMEOUT_S + 1.0  # at shutdown, then the report is cancelled
SLOW_LAG_S = 0.05  # an event loop later than this on a timer: every answer waits as long
STALL_LAG_S = 1.0  # later than this: the process stalled


@dataclass(frozen=True)
class Counts:
    """This process's counters since it started (or their difference over a window)."""

    requests: int = 0
    crowd: int = 0
    shed_work: int = 0
    shed_crowd: int = 0
    busy: int = 0
    failed: int = 0
    lag_samples: int = 0
    lag_slow: int = 0
    lag_stalled: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def read_counts() -> Counts:
    """This process's counters now (teeka.surge.shedding, teeka.surge.fastpath, teeka.db), in
    one pass over its Prometheus registry."""
    found: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name.startswith("teeka_"):
            for sample in metric.samples:
                label = sample.labels.get("kind") or sample.labels.get("le") or ""
                if sample.name == "teeka_busy_total":  # every cause together
                    label = ""
                key = (sample.name, label)
                found[key] = found.get(key, 0.0) + sample.value

    def value(name: str, label: str = "") -> int:
        return int(found.get((name, label), 0.0))

    lag = "teeka_event_loop_lag_seconds"
    samples = value(lag + "_count")
    shed, shed_crowd = value("teeka_requests_shed_total"), value("teeka_requests_shed_crowd_total")
    early = value("teeka_queue_polls_answered_early_total")
    crowd = value("teeka_requests_total", "crowd") + early
    busy_crowd = value("teeka_busy_crowd_total")
    return Counts(
        requests=value("teeka_requests_total", "work") + crowd, crowd=crowd,
        shed_work=shed - shed_crowd, shed_crowd=shed_crowd + busy_crowd,
        busy=value("teeka_busy_total") - busy_crowd,
        failed=value("teeka_requests_failed_total"), lag_samples=samples,
        lag_slow=samples - value(lag + "_bucket", str(SLOW_LAG_S)),
        lag_stalled=samples - value(lag + "_bucket", str(STALL_LAG_S)))


class Beat:
    """One process's reports: `start` writes one every beat_seconds; `finish`, at shutdown,
    ends them with one saying the process stopped."""

    def __init__(self, kind: str, *, runs_worker: bool) -> None:
        self.kind, self.runs_worker = kind, runs_worker
        self.host = socket.gethostname()[:60]
        self.pid = os.getpid()
        self.started_at = clock.now()
        # unique even when a pid is reused (a restarted container often has the same one)
        self.name = f"{self.host}:{self.pid}:{secrets.token_hex(4)}"
        self._seen: deque[tuple[float, Counts]] = deque(maxlen=WINDOW_BEATS + 1)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def window(self) -> tuple[int, Counts]:
        """Seconds covered and the counts over them: since the oldest of the last readings."""
        loop_time = asyncio.get_running_loop().time()
        self._seen.append((loop_time, read_counts()))
        (t0, first), (t1, last) = self._seen[0], self._seen[-1]
        return round(t1 - t0), last - first

    async def write(self, maker: async_sessionmaker[AsyncSession]) -> None:
        seconds, counts = self.window()
        async with session_scope(maker) as session:
            now = clock.now()
            row = await session.get(ServerBeat, self.name)
            if row is None:
                row = ServerBeat(name=self.name, host=self.host, pid=self.pid, kind=self.kind,
                                 runs_worker=self.runs_worker, started_at=self.started_at)
                session.add(row)
            row.beat_at, row.stopped_at, row.window_s = now, None, seconds
            for f in fields(counts):
                setattr(row, f.name, getattr(counts, f.name))
            await session.execute(delete(ServerBeat).where(ServerBeat.beat_at < now - KEEP))

    async def stop(self, maker: async_sessionmaker[AsyncSession]) -> None:
        """Say this process shut down (so the watch does not call it silent)."""
        async with session_scope(maker) as session:
            row = await session.get(ServerBeat, self.name)
            if row is not None:
                row.stopped_at = clock.now()

    def start(self, maker: async_sessionmaker[AsyncSession], every: float) -> None:
        """Report now and every `every` seconds, in a task of its own, until `finish`."""
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(maker, every))

    async def finish(self) -> bool:
        """At shutdown: the reports end between two writes (never by cancelling one in the
        middle of its transaction), the last one says this process stopped. Bounded: a report
        still not ended after FINISH_WAIT_S is cancelled, and the shutdown goes on regardless
        after another second. Whether the reports ended (False: a task is left stuck)."""
        if self._task is None:
            return True
        self._stopping.set()
        done, _ = await asyncio.wait({self._task}, timeout=FINISH_WAIT_S)
        if not done:
            log.warning("watch.beat.stuck")
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=1.0)
        return bool(done)

    async def _run(self, maker: async_sessionmaker[AsyncSession], every: float) -> None:
        # asyncio.timeout, never asyncio.wait_for: on Python 3.11 wait_for loses a cancellation
        # that arrives as the awaited write finishes (a server then never finished shutting
        # down; seen in CI). Cancelling a write half-way is avoided altogether: `finish` asks
        # the loop to end, and it ends between writes.
        try:
            while not self._stopping.is_set():
                try:
                    async with asyncio.timeout(BEAT_TIMEOUT_S):
                        await self.write(maker)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database may be failing over: report later
                    log.warning("watch.beat.failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(every):
                        await self._stopping.wait()
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.stop(maker)
