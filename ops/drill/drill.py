"""`make drill`: build the replicated topology on this machine, book under load, break it in
turn, and prove that no acknowledged booking is lost and no slot is oversold.

Steps (each followed by the checks in ops/drill/checks.py, on the primary of the moment):

1. baseline            — load against the healthy cluster
2. kill-primary        — SIGKILL the primary's whole node; Patroni promotes the synchronous
                         standby; recovery = kill → first 201 of a booking sent after the kill
3. both-standbys-down  — with the old primary still down, kill the remaining standby: nothing
                         may be acknowledged (bookings get 503 + Retry-After); then restart it
4. kill-teeka          — SIGKILL one Teeka server while requests are in flight, restart it
5. rejoin              — restart the old primary: it rejoins as a standby (pg_rewind if needed)
6. one-standby-down    — kill the synchronous standby of a full cluster: bookings continue
7. restore             — pgBackRest: backup, book, mark a moment T, book more, restore to T in
                         a new data directory, compare with what was acknowledged before/after T

Ends with `drill: PASS lost_acks=0 oversell=0 recovery_s=N` or `drill: FAIL …`; exit status 1
on failure. Everything started is stopped and the working directory removed, even on failure
(`--keep` keeps the directory and its logs).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ops.drill.checks import Figures, check, count_held_for, restored_ids
from ops.drill.load import Ack, Attempt, Load
from ops.drill.topology import (
    APP_USER,
    DB_NAME,
    HOST,
    PATRONI,
    PATRONI_MIN,
    PG_BIN,
    ROOT,
    STANZA,
    Node,
    Ports,
    Topology,
    multi_host_url,
    wait_for,
)

STATEMENT_TIMEOUT = "4s"  # the app role's: a commit blocked without a standby ends as 503
RECOVERY_LIMIT_S = 45.0


class DrillFailed(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step, self.why = step, why


@dataclass
class StepResult:
    name: str
    figures: Figures
    seconds: float
    notes: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        f = self.figures
        extra = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (f"  step {self.name:<20} acked={f.acked} lost={f.lost} oversell={f.oversell} "
                f"recount_mismatches={f.mismatches} held={f.appointments} "
                f"({self.seconds:.0f} s) {extra}").rstrip()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def result_line(*, passed: bool, lost: int, oversell: int, recovery_s: float | None,
                failing: str = "") -> str:
    """The drill's last line (CI greps it)."""
    recovery = "none" if recovery_s is None else str(math.ceil(recovery_s))
    head = "PASS" if passed else "FAIL"
    tail = "" if passed or not failing else f" step={failing}"
    return f"drill: {head} lost_acks={lost} oversell={oversell} recovery_s={recovery}{tail}"


class Drill:
    def __init__(self, topo: Topology, users: int) -> None:
        self.topo = topo
        self.users = users
        self.steps: list[StepResult] = []
        self.recovery_s: float | None = None
        self.worst_lost = 0
        self.worst_oversell = 0
        self.admin_url = multi_host_url([(HOST, n.pg_port) for n in topo.nodes],
                                        user="postgres", database=DB_NAME)
        self.load: Load | None = None
        self.load_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ helpers

    def teeka_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEEKA_")}
        env.update({
            "TEEKA_DATABASE_URL": self.topo.app_url(),
            "TEEKA_ENVIRONMENT": "development",
            "TEEKA_SECRET_KEY": self.topo.secret,
            "TEEKA_DATA_DIR": str(self.topo.teeka_data),
            "TEEKA_LIMITS_ENABLED": "false",
            "TEEKA_OTP_RESEND_INTERVAL_SECONDS": "0",
            "TEEKA_OTP_DAILY_LIMIT": "1000",
            "TEEKA_CITIZEN_TOKEN_MINUTES": "120",
            "TEEKA_DB_POOL_SIZE": "5",
            "TEEKA_LOG_LEVEL": "WARNING",
            "TEEKA_REDIS_URL": "",
        })
        return env

    def teeka_cli(self, *args: str) -> None:
        out = subprocess.run([str(ROOT / ".venv" / "bin" / "teeka"), *args],  # noqa: S603
                             env=self.teeka_env(), capture_output=True, text=True, timeout=300,
                             check=False)
        if out.returncode:
            raise DrillFailed("setup", f"teeka {' '.join(args)}: {out.stderr.strip()[-500:]}")

    def psql(self, node: Node, sql: str, db: str = "postgres") -> str:
        out = self.topo.run_as_postgres([str(PG_BIN / "psql"), "-X", "-q", "-At", "-v",
                                         "ON_ERROR_STOP=1", "-h", str(node.socket_dir), "-p",
                                         str(node.pg_port), "-d", db, "-c", sql], check=False)
        if out.returncode:
            raise DrillFailed("setup", f"psql on {node.name}: {out.stderr.strip()[-300:]}")
        return out.stdout.strip()

    def backrest(self, node: Node, *args: str, timeout: float = 300) -> None:
        out = self.topo.run_as_postgres(["pgbackrest", f"--config={node.backrest_conf}",
                                         f"--stanza={STANZA}", *args], timeout=timeout,
                                        check=False)
        if out.returncode:
            raise DrillFailed("backup", f"pgbackrest {args[0]} on {node.name}: "
                              f"{(out.stderr or out.stdout).strip()[-500:]}")

    def leader(self, step: str, timeout: float = 60) -> Node:
        found: list[Node] = []

        def ready() -> bool:
            node = self.topo.leader()
            if node is not None:
                found[:] = [node]
            return node is not None

        try:
            wait_for(ready, timeout, "a leader")
        except TimeoutError as exc:
            raise DrillFailed(step, str(exc)) from None
        return found[0]

    async def wait_cluster(self, step: str, standbys: int, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if (self.topo.leader() is not None and len(self.topo.streaming()) >= standbys
                    and (standbys == 0 or self.topo.sync_standbys())):
                return
            await asyncio.sleep(0.5)
        raise DrillFailed(step, f"cluster not back with {standbys} standby(s): "
                          f"{self.topo.cluster()}")

    async def wait_booking_after(self, step: str, moment: float, within: float = 120
                                 ) -> float:
        assert self.load is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            took = self.load.first_success_after(moment)
            if took is not None:
                return took
            await asyncio.sleep(0.2)
        raise DrillFailed(step, f"no booking succeeded within {within:.0f} s")

    async def checkpoint(self, name: str, started: float, **notes: object) -> StepResult:
        assert self.load is not None
        figures = await check(self.admin_url, self.load.acked_ids())
        result = StepResult(name, figures, time.monotonic() - started, dict(notes))
        self.steps.append(result)
        self.worst_lost = max(self.worst_lost, figures.lost)
        self.worst_oversell = max(self.worst_oversell, figures.oversell)
        say(result.line())
        if not figures.ok:
            raise DrillFailed(name, f"lost={figures.lost} oversell={figures.oversell} "
                              f"mismatches={figures.mismatches}")
        if self.load.errors:
            raise DrillFailed(name, f"unexpected answers: {self.load.errors[:3]}")
        return result

    # ------------------------------------------------------------------ the steps

    async def setup(self) -> None:
        t = self.topo
        say(f"working directory {t.workdir}")
        try:
            version = t.patroni_version()
        except (OSError, subprocess.SubprocessError) as exc:
            raise DrillFailed("setup", f"cannot run {t.patroni} (`make drill` installs it): "
                              f"{exc}") from None
        if version[:2] < PATRONI_MIN:
            raise DrillFailed("setup", f"{t.patroni} is Patroni {version}; quorum commit needs "
                              f">= {'.'.join(map(str, PATRONI_MIN))}")
        say(f"Patroni {'.'.join(map(str, version))} ({t.patroni})")
        t.start_etcd()
        t.start_node(t.nodes[0])
        primary = self.leader("setup", timeout=120)
        for n in t.nodes[1:]:
            t.start_node(n)
        await self.wait_cluster("setup", standbys=2)
        say(f"cluster up: primary {primary.name}, quorum standbys "
            f"{[n.name for n in t.sync_standbys()]}")
        self.psql(primary, f"CREATE ROLE {APP_USER} LOGIN")
        self.psql(primary, f"CREATE DATABASE {DB_NAME} OWNER {APP_USER}")
        self.backrest(primary, "stanza-create")
        self.backrest(primary, "check")
        started = time.monotonic()
        self.backrest(primary, "backup", "--type=full")
        say(f"pgBackRest stanza created, WAL archiving checked, full backup in "
            f"{time.monotonic() - started:.0f} s")
        self.teeka_cli("db", "upgrade")
        self.teeka_cli("demo")
        self.psql(primary, f"ALTER ROLE {APP_USER} SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        env = self.teeka_env()
        for i in (1, 2):
            t.start_teeka(i, env)
        say("schema migrated, demo loaded, two Teeka servers up "
            f"(TEEKA_DATABASE_URL={t.app_url()})")

    async def start_load(self) -> None:
        servers = [f"http://{HOST}:{self.topo.ports.teeka(i)}" for i in (1, 2)]
        self.load = Load(servers, users=self.users)
        await self.load.load_targets()
        self.load_task = asyncio.create_task(self.load.run())
        say(f"load: {self.users} citizens booking over {len(self.load.targets)} slots")

    async def baseline(self) -> None:
        started = time.monotonic()
        await asyncio.sleep(10)
        await self.checkpoint("baseline", started)

    async def kill_primary(self) -> Node:
        step, started = "kill-primary", time.monotonic()
        old = self.leader(step)
        moment = time.time()
        self.topo.kill_node(old)
        say(f"SIGKILL node {old.name} (the primary: Patroni and PostgreSQL)")
        took = await self.wait_booking_after(step, moment, within=120)
        self.recovery_s = took
        new = self.leader(step)
        if new is old:
            raise DrillFailed(step, "the killed node is still the leader")
        await self.checkpoint(step, started, new_primary=new.name, recovery_s=f"{took:.1f}")
        if took > RECOVERY_LIMIT_S:
            raise DrillFailed(step, f"recovery took {took:.1f} s (limit {RECOVERY_LIMIT_S:.0f})")
        return old

    async def both_standbys_down(self) -> None:
        step, started = "both-standbys-down", time.monotonic()
        assert self.load is not None
        standbys = self.topo.streaming()
        if len(standbys) != 1:
            raise DrillFailed(step, f"expected one standby left, found {standbys}")
        victim = standbys[0]
        auth, ref = await self.load.probe_person()
        key, target = uuid.uuid4().hex, self.load.targets[-1]  # the load fills from the front
        moment = time.time()
        self.topo.kill_node(victim)
        say(f"SIGKILL node {victim.name} (the last standby): no standby is left")
        await asyncio.sleep(3)
        t0 = time.monotonic()
        probe_status, _ = await self.load.probe_book(auth, ref, key, target)
        probe_s = time.monotonic() - t0
        await asyncio.sleep(max(0.0, 15 - (time.time() - moment)))
        until = time.time()
        window = self.load.window(moment + 0.5, until)
        unprotected = [a for a in window if a.status == 201]
        refused = [a for a in window if a.status == 503]
        full = [a for a in window if a.status == 409]  # SlotFull: a refusal, nothing written
        other = [a for a in window if a.status not in (201, 503, 409)]
        slowest = max((a.done - a.sent for a in window), default=0.0)
        self.topo.start_node(victim)
        back = time.time()
        took = await self.wait_booking_after(step, back, within=120)
        await self.wait_cluster(step, standbys=1)
        # The probe's retry with the same key, now that a standby is back: one booking, acked.
        retry_status, body = await self.load.probe_book(auth, ref, key, target)
        for _ in range(20):
            if retry_status != 503:
                break
            await asyncio.sleep(1)
            retry_status, body = await self.load.probe_book(auth, ref, key, target)
        if retry_status == 201:
            listed = body.get("appointment_ids")
            ids = [str(i) for i in listed] if isinstance(listed, list) else []
            self.load.acks.append(Ack(str(body.get("confirmation_no")), tuple(ids), key,
                                      moment, time.time()))
        held = await count_held_for(self.admin_url, ref)
        await self.checkpoint(step, started, probe_while_down=f"{probe_status}/{probe_s:.1f}s",
                              probe_retry=retry_status, probe_bookings_held=held,
                              refused_503=len(refused),
                              slot_full_409=len(full), acked_unprotected=len(unprotected), other_answers=len(other),
                              slowest_refusal_s=f"{slowest:.1f}",
                              resumed_after_restart_s=f"{took:.1f}")
        if unprotected or probe_status == 201:
            def earlier(a: Attempt) -> list[tuple[int, float]]:
                return [(b.status, round(b.sent - moment, 2)) for b in self.load.attempts
                        if b.key == a.key and b.sent < a.sent]

            detail = "; ".join(
                f"key {a.key[:8]} sent +{a.sent - moment:.2f}s answered +{a.done - moment:.2f}s "
                f"server {a.server}, earlier attempts (status, sent) {earlier(a)}"
                for a in unprotected)
            raise DrillFailed(step, f"{len(unprotected) + (probe_status == 201)} booking(s) "
                              f"acknowledged with no standby ({victim.name} killed at "
                              f"{datetime.fromtimestamp(moment, UTC):%H:%M:%S.%f}): {detail}")
        if probe_status != 503 or retry_status != 201 or held != 1:
            raise DrillFailed(step, f"probe: {probe_status} while down, {retry_status} on the "
                              f"retry with the same key, {held} booking(s) held (want 503, "
                              "201, 1)")
        if other:
            raise DrillFailed(step, f"unclean answers while no standby: "
                              f"{sorted({a.status for a in other})}")

    async def kill_teeka(self) -> None:
        step, started = "kill-teeka", time.monotonic()
        assert self.load is not None
        try:
            await asyncio.wait_for(self.load.busy.wait(), 20)
        except TimeoutError:
            pass
        in_flight = self.load.in_flight
        moment = time.time()
        self.topo.kill_teeka(1)
        say(f"SIGKILL teeka server 1 with {in_flight} booking request(s) in flight")
        took = await self.wait_booking_after(step, moment, within=60)
        await asyncio.sleep(5)
        self.topo.start_teeka(1, self.teeka_env())
        await self.checkpoint(step, started, in_flight_at_kill=in_flight,
                              next_booking_s=f"{took:.1f}")

    async def rejoin(self, old: Node) -> None:
        step, started = "rejoin", time.monotonic()
        self.topo.start_node(old)
        say(f"restart {old.name} (the old primary)")
        deadline = time.monotonic() + 120
        while old not in self.topo.streaming():
            if time.monotonic() > deadline:
                raise DrillFailed(step, f"{old.name} did not rejoin: {self.topo.cluster()}")
            await asyncio.sleep(0.5)
        took = time.monotonic() - started
        leader = self.leader(step)
        if leader is old:
            raise DrillFailed(step, "the old primary came back as leader")
        await self.checkpoint(step, started, rejoined_s=f"{took:.1f}",
                              members=",".join(f"{m['name']}:{m['role']}"
                                               for m in self.topo.cluster()))

    async def one_standby_down(self) -> None:
        step, started = "one-standby-down", time.monotonic()
        assert self.load is not None
        await self.wait_cluster(step, standbys=2)
        sync = self.topo.sync_standbys()
        if not sync:
            raise DrillFailed(step, "no synchronous standby")
        victim = sync[0]
        moment = time.time()
        self.topo.kill_node(victim)
        say(f"SIGKILL node {victim.name} (the synchronous standby); one standby left")
        took = await self.wait_booking_after(step, moment, within=60)
        await asyncio.sleep(10)
        booked = [a for a in self.load.window(moment, time.time()) if a.status == 201]
        self.topo.start_node(victim)
        await self.wait_cluster(step, standbys=2)
        await self.checkpoint(step, started, booked_while_down=len(booked),
                              first_booking_s=f"{took:.1f}")
        if not booked:
            raise DrillFailed(step, "no booking succeeded with one standby down")

    async def restore(self) -> None:
        step, started = "restore", time.monotonic()
        assert self.load is not None
        primary = self.leader(step)
        t0 = time.monotonic()
        self.backrest(primary, "backup", "--type=incr")
        backup_s = time.monotonic() - t0
        await asyncio.sleep(5)
        await self.load.pause()
        before = self.load.acked_ids()
        await asyncio.sleep(1)
        target = datetime.now(UTC)
        await asyncio.sleep(1)
        resumed = time.time()
        self.load.resume()
        await asyncio.sleep(6)
        await self.load.pause()
        after = {a for ack in self.load.acks if ack.sent >= resumed for a in ack.appointment_ids}
        self.load.resume()
        self.backrest(primary, "check")  # switches WAL and waits until it is archived
        restored_dir = self.topo.workdir / "restore"
        data = restored_dir / "data"
        (restored_dir / "run").mkdir(parents=True)
        data.mkdir(mode=0o700)
        conf = restored_dir / "pgbackrest.conf"
        conf.write_text(self.topo.backrest_config(data, self.topo.ports.restore_pg,
                                                  restored_dir / "run"))
        self.topo._chown_tree(restored_dir)
        stamp = target.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        t0 = time.monotonic()
        out = self.topo.run_as_postgres([
            "pgbackrest", f"--config={conf}", f"--stanza={STANZA}", "--type=time",
            f"--target={stamp}", "--target-action=promote", "restore"], check=False)
        if out.returncode:
            raise DrillFailed(step, f"pgbackrest restore: {out.stderr.strip()[-500:]}")
        port = self.topo.ports.restore_pg
        opts = " ".join([
            f"-c port={port}", f"-c listen_addresses={HOST}",
            f"-c unix_socket_directories={restored_dir / 'run'}", "-c archive_mode=off",
            "-c synchronous_standby_names=''", "-c primary_conninfo=''",
            f"-c hba_file={data / 'pg_hba.conf'}", f"-c ident_file={data / 'pg_ident.conf'}"])
        # pgBackRest wrote restore_command and the recovery target into postgresql.auto.conf;
        # the options above only move the copy to its own port and keep it to itself.
        log_file = restored_dir / "postgres.log"
        out = self.topo.run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                         str(log_file), "-w", "-t", "180", "-o", opts, "start"],
                                        check=False, timeout=240)
        if out.returncode:
            log = log_file.read_text(errors="replace")[-1500:] if log_file.exists() else ""
            raise DrillFailed(step, f"restored server did not start: {out.stderr} {log}")
        url = f"postgresql+asyncpg://postgres@{HOST}:{port}/{DB_NAME}"
        wait_for(lambda: self.psql_port(restored_dir / "run", port,
                                        "SELECT pg_is_in_recovery()") == "f", 120,
                 "the restored server to finish recovery")
        restore_s = time.monotonic() - t0
        have = await restored_ids(url)
        figures = await check(url, before)
        missing = before - have
        too_late = after & have
        result = StepResult(step, figures, time.monotonic() - started, {
            "target": stamp, "acked_before_target": len(before),
            "missing_in_restore": len(missing), "acked_after_target": len(after),
            "after_target_in_restore": len(too_late), "backup_s": f"{backup_s:.0f}",
            "restore_s": f"{restore_s:.0f}"})
        self.steps.append(result)
        say(result.line())
        self.topo.run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                   "stop"], check=False)
        if missing or too_late or not figures.ok or not before or not after:
            raise DrillFailed(step, f"restore to {stamp}: missing={len(missing)} "
                              f"after_target_present={len(too_late)} oversell="
                              f"{figures.oversell} mismatches={figures.mismatches}")

    def psql_port(self, socket_dir: Path, port: int, sql: str) -> str:
        out = self.topo.run_as_postgres([str(PG_BIN / "psql"), "-X", "-At", "-h",
                                         str(socket_dir), "-p", str(port), "-d", DB_NAME,
                                         "-c", sql], check=False)
        return out.stdout.strip()

    async def final(self) -> None:
        started = time.monotonic()
        assert self.load is not None and self.load_task is not None
        self.load.stopping = True
        self.load.resume()
        try:
            await asyncio.wait_for(self.load_task, timeout=60)
        except TimeoutError:
            self.load_task.cancel()
        attempts = self.load.attempts
        await self.checkpoint("final", started, attempts=len(attempts),
                              answered_503=sum(a.status == 503 for a in attempts),
                              connection_lost=sum(a.status == 0 for a in attempts),
                              in_doubt_given_up=self.load.refused_final)

    async def run(self, restore: bool) -> None:
        await self.setup()
        await self.start_load()
        await self.baseline()
        old = await self.kill_primary()
        await self.both_standbys_down()
        await self.kill_teeka()
        await self.rejoin(old)
        await self.one_standby_down()
        if restore:
            await self.restore()
        await self.final()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.drill", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-base", type=int, default=int(os.environ.get(
        "DRILL_PORT_BASE", "15400")), help="first of the drill's ports (default 15400)")
    parser.add_argument("--users", type=int, default=6, help="concurrent citizens booking")
    parser.add_argument("--no-restore", action="store_true", help="skip the restore drill")
    parser.add_argument("--patroni", type=Path, default=Path(os.environ.get(
        "DRILL_PATRONI", str(PATRONI))), help=f"the patroni executable (default {PATRONI})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (logs, data) for inspection")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("drill: FAIL lost_acks=0 oversell=0 recovery_s=none step=setup "
              "(must run as root: PostgreSQL nodes run as the postgres user)")
        return 1

    started = time.monotonic()
    topo = Topology(ports=Ports(args.port_base), patroni=args.patroni.absolute())
    drill = Drill(topo, users=args.users)
    failed: DrillFailed | None = None

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        asyncio.run(drill.run(restore=not args.no_restore))
    except DrillFailed as exc:
        failed = exc
    except (Exception, KeyboardInterrupt) as exc:
        failed = DrillFailed(drill.steps[-1].name + "+" if drill.steps else "setup",
                             f"{type(exc).__name__}: {exc}")
    finally:
        if failed is not None:
            say(f"FAILED at {failed.step}: {failed.why}")
            for log in sorted(topo.logs.glob("*.log")) if topo.logs.exists() else []:
                tail = log.read_text(errors="replace").splitlines()[-8:]
                print(f"--- {log.name} (last lines)\n" + "\n".join(tail), flush=True)
        topo.cleanup(keep=args.keep)
    print("summary:")
    for step in drill.steps:
        print(step.line())
    print(f"  total {time.monotonic() - started:.0f} s; recovery after the primary was killed: "
          f"{'n/a' if drill.recovery_s is None else f'{drill.recovery_s:.1f} s'}")
    if drill.load is not None:
        lost = drill.worst_lost
        print(result_line(passed=failed is None, lost=lost, oversell=drill.worst_oversell,
                          recovery_s=drill.recovery_s,
                          failing="" if failed is None else failed.step))
    else:
        print(result_line(passed=False, lost=0, oversell=0, recovery_s=None,
                          failing=failed.step if failed else "setup"))
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
