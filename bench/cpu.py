"""Where the machine's CPU went while a part of the benchmark ran, by who used it: the Teeka
servers (their process groups), PostgreSQL, Redis, the load generator (this process and what it
started: wrk, pgbench), everything else, and idle. Read from /proc (Linux), in cores: 1.0 is
one core busy for the whole interval.

This is what turns a ratio into an explanation: a booking's CPU in the servers and in the
database, beside the baseline's own (docs/BENCHMARKS.md, "Where the CPU goes")."""

from __future__ import annotations

import os
import time

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("server", "postgres", "redis", "generator", "other")


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (command name, process group, CPU ticks used so far)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is the state (field 3 of proc(5)); pgrp is field 5, utime/stime 14/15, and
        # cutime/cstime 16/17: children that ended and were waited for (wrk and pgbench for
        # the generator, the database's connections for the postmaster)
        found[int(name)] = (comm, int(fields[2]), sum(int(x) for x in fields[11:15]))
    return found


def _idle() -> int:
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    return int(cpu[4]) + int(cpu[5])  # idle + iowait


class Meter:
    """`with Meter(server_groups) as m: ...`, then `m.cores` (by group) and `m.seconds`; or
    `m.mark()` now and then, and `m.between(a, b)` for the part between two marks.

    A process that ended during the interval is counted in its parent once waited for (wrk and
    pgbench in the generator, a database connection in the postmaster)."""

    def __init__(self, server_groups: list[int]) -> None:
        self.server_groups = set(server_groups)
        self.me = os.getpgid(0)
        self.cores: dict[str, float] = {}
        self.seconds = 0.0
        self.marks: list[tuple[float, dict[int, tuple[str, int, int]], int]] = []

    def _group(self, comm: str, pgrp: int) -> str:
        if pgrp in self.server_groups:
            return "server"
        if comm == "postgres" or comm.startswith("postgres"):
            return "postgres"
        if comm.startswith("redis-server"):
            return "redis"
        if pgrp == self.me:
            return "generator"
        return "other"

    def mark(self) -> None:
        """Note the time and every process's CPU so far."""
        self.marks.append((time.monotonic(), _processes(), _idle()))

    def between(self, start: float, end: float) -> tuple[dict[str, float], float]:
        """Cores by group between the last mark at or before `start` and the first at or after
        `end` (monotonic times), and the seconds between those marks."""
        first = max((m for m in self.marks if m[0] <= start), key=lambda m: m[0],
                    default=self.marks[0])
        last = min((m for m in self.marks if m[0] >= end), key=lambda m: m[0],
                   default=self.marks[-1])
        seconds = max(last[0] - first[0], 1e-9)
        used = dict.fromkeys(GROUPS, 0)
        before = first[1]
        for pid, (comm, pgrp, ticks) in last[1].items():
            was = before.get(pid)
            if was is not None and was[0] == comm:
                used[self._group(comm, pgrp)] += ticks - was[2]
            elif was is None:  # started during the interval (a wrk run, a new connection)
                used[self._group(comm, pgrp)] += ticks
        cores = {k: round(v / TICK / seconds, 3) for k, v in used.items()}
        cores["idle"] = round((last[2] - first[2]) / TICK / seconds, 3)
        return cores, seconds

    def __enter__(self) -> Meter:
        self.mark()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.mark()
        self.cores, self.seconds = self.between(self.marks[0][0], self.marks[-1][0])

    def per(self, count: float) -> dict[str, int]:
        """Microseconds of CPU per unit of work (a booking, a transaction), by group."""
        if count <= 0:
            return {}
        return {k: round(v * self.seconds / count * 1e6) for k, v in self.cores.items()
                if k != "idle"}
