"""The benchmark: `make bench` (full) and `make bench-quick` (< 60 s of load).

Starts the stack itself (the machine's PostgreSQL, Redis, N server processes), loads the state
dataset, then measures, each against a baseline run beside it on the same machine:
  reads     wrk on the public availability answers vs a trivial endpoint on the same server
  bookings  the booking request at rising concurrency vs pgbench on the minimal booking
            transaction (the database's own ceiling), and vs pgbench on the booking's own SQL
and checks integrity after every run. Writes bench/results/latest.json (+ a dated copy) and
the figures into docs/BENCHMARKS.md. See docs/BENCHMARKS.md for what each key means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cpu import Meter  # bench/cpu.py (python puts bench/ first on the path)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
# Several people (or helpers) may run the benchmark on one machine: each run names its own
# database and Redis db (TEEKA_BENCH_DB, TEEKA_BENCH_REDIS_DB).
DB = os.environ.get("TEEKA_BENCH_DB", "teeka_bench")
PGBENCH_DB = f"{DB}_pgbench"
SAME_SQL_DB = f"{DB}_same_sql"  # a copy of the loaded dataset for pgbench on the booking's SQL
REDIS_DB = os.environ.get("TEEKA_BENCH_REDIS_DB", "12")
SERVER_GROUPS: list[int] = []  # the Teeka servers' process groups (bench/cpu.py)


def sh(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 900) -> str:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {out.stderr[-2000:]}")
    return out.stdout


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"


def start_edge(app_port: int, env: dict[str, str]) -> int:
    """bench/edge (nginx with its njs script; an experiment, docs/decisions/0003) in front of
    the servers on a port of its own, charged to the servers in the CPU figures. Its port."""
    if shutil.which("nginx") is None or not Path(NJS_MODULE).exists():
        raise SystemExit("--edge needs nginx and its njs module: "
                         "apt-get install nginx-core libnginx-mod-http-js")
    where = tempfile.mkdtemp(prefix="teeka-edge-")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.mkdir(os.path.join(where, sub))
    port = free_port()
    conf = (ROOT / "bench" / "edge" / "nginx.conf.template").read_text()
    for name, value in (("@EDGE_PORT@", str(port)), ("@APP_PORT@", str(app_port)),
                        ("@DIR@", where), ("@JS@", str(ROOT / "bench" / "edge" / "edge.js"))):
        conf = conf.replace(name, value)
    path = os.path.join(where, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    edge = subprocess.Popen(["nginx", "-c", path, "-p", where], env=env,
                            start_new_session=True)
    SERVER_GROUPS.append(edge.pid)
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the edge did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, object]:
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    pg = sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "show server_version"]).strip()
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1), "cpu": cpu,
            "postgresql": pg, "python": sys.version.split()[0]}


# ------------------------------------------------------------------ wrk


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    # Like the phones and partner apps it stands for, wrk asks for gzip (both endpoints).
    out = sh(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
              "-H", "Accept-Encoding: gzip", url],
             timeout=seconds + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        value, unit = float(m[1]), m[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "non_2xx": int(non2xx[1]) if non2xx else 0}


# ------------------------------------------------------------------ pgbench


def pgbench(seconds: int, clients: int) -> tuple[float, Meter]:
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {PGBENCH_DB} WITH (FORCE)"))
    asyncio.run(admin(f"CREATE DATABASE {PGBENCH_DB}"))
    slots = 20000
    setup = (f"CREATE TABLE slot (id int PRIMARY KEY, capacity int NOT NULL, booked int NOT NULL);"
             f"CREATE TABLE appointment (id bigserial PRIMARY KEY, beneficiary_id bigint NOT NULL,"
             f" slot_id int NOT NULL REFERENCES slot(id));"
             f"INSERT INTO slot SELECT g, 1000000, 0 FROM generate_series(1, {slots}) g;")
    sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", PGBENCH_DB, "-qc", setup])
    return timed_pgbench(PGBENCH_DB, "pgbench_booking.sql", seconds, clients,
                         ["-D", f"slots={slots}"])


def timed_pgbench(db: str, script: str, seconds: int, clients: int, args: list[str]
                  ) -> tuple[float, Meter]:
    """pgbench with `script` (in bench/) for `seconds`, the machine's CPU metered; then the
    database is dropped. Its transactions per second."""
    with Meter(SERVER_GROUPS) as meter:
        out = sh(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", str(clients),
                  "-j", "2", "-T", str(seconds), *args, "-f", str(ROOT / "bench" / script), db],
                 timeout=seconds + 120)
    if "aborted" in out:
        raise RuntimeError(f"pgbench {script} aborted: {out[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out)[1])  # type: ignore[index]
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
    return tps, meter


# A copy of the loaded dataset for pgbench on the booking's own SQL: its buckets never fill
# (every transaction is a confirmed booking); who books where is read from two small tables,
# one person per transaction (a sequence), never one already booked.
SAME_SQL_SETUP = """
UPDATE capacity_bucket SET capacity = 1000000000;
CREATE TABLE pgb_person AS SELECT (row_number() OVER (ORDER BY b.id))::bigint AS n,
  b.id AS beneficiary_id, b.reference_id, b.account_id FROM beneficiary b
  WHERE b.reference_id LIKE '99%' AND b.account_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM appointment a WHERE a.beneficiary_id = b.id);
ALTER TABLE pgb_person ADD PRIMARY KEY (n);
CREATE TABLE pgb_target AS SELECT (row_number() OVER (ORDER BY bk.id))::int AS n,
  s.id AS session_id, sl.label, sl.id AS slot_id, bk.id AS bucket_id
  FROM vaccination_session s JOIN session_slot sl ON sl.session_id = s.id
  JOIN capacity_bucket bk ON bk.slot_id = sl.id AND bk.dose_kind = 'first' AND bk.share = 'open'
  WHERE s.min_age <= 18 AND s.max_age IS NULL AND s.date > current_date;
ALTER TABLE pgb_target ADD PRIMARY KEY (n);
CREATE SEQUENCE pgb_seq;
"""


def copy_for_same_sql() -> None:
    """Made right after the load, while nothing is connected to the dataset (a template copy
    needs that)."""
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {SAME_SQL_DB} WITH (FORCE)"))
    asyncio.run(admin(f"CREATE DATABASE {SAME_SQL_DB} TEMPLATE {DB}"))
    for sql in (SAME_SQL_SETUP, "VACUUM ANALYZE"):  # (VACUUM: outside a transaction)
        sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", SAME_SQL_DB, "-v",
            "ON_ERROR_STOP=1", "-qc", sql])


def pgbench_same_sql(seconds: int, clients: int) -> tuple[float, Meter]:
    """pgbench on the statements a booking sends (bench/pgbench_booking_same_sql.sql), prepared
    like asyncpg's: the database's ceiling for our booking, without our servers."""
    targets = sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", SAME_SQL_DB, "-Atc",
                  "SELECT count(*) FROM pgb_target"]).strip()
    return timed_pgbench(SAME_SQL_DB, "pgbench_booking_same_sql.sql", seconds, clients,
                         ["-M", "prepared", "-D", f"targets={targets}"])


# ------------------------------------------------------------------ booking load


async def booking_targets(dsn: str, hot_centre: bool) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT s.id, sl.label, s.centre_id, b.capacity - b.booked AS free
               FROM vaccination_session s
               JOIN session_slot sl ON sl.session_id = s.id
               JOIN capacity_bucket b ON b.slot_id = sl.id AND b.dose_kind = 'first'
                    AND b.share = 'open'
               WHERE s.min_age <= 18 AND s.max_age IS NULL AND s.date > current_date
               AND b.capacity > b.booked""")
    finally:
        await conn.close()
    if hot_centre:  # the centre with the most free places: it sells out last
        free: dict[int, int] = {}
        for r in rows:
            free[r["centre_id"]] = free.get(r["centre_id"], 0) + r["free"]
        centre = max(free, key=lambda c: (free[c], -c))
        rows = [r for r in rows if r["centre_id"] == centre]
    return [(r["id"], r["label"]) for r in rows]


async def people(dsn: str, count: int, offset: int) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT b.account_id, b.reference_id FROM beneficiary b
               WHERE b.reference_id LIKE '99%' AND NOT EXISTS (SELECT 1 FROM appointment a
               WHERE a.beneficiary_id = b.id) ORDER BY b.reference_id OFFSET $1 LIMIT $2""",
            offset, count)
    finally:
        await conn.close()
    return [(r["account_id"], r["reference_id"]) for r in rows]


def token(secret: str, account: int) -> str:
    from teeka.kit import signing

    return signing.issue_token(secret, subject=str(account), kind="citizen",
                               now=datetime.now(UTC), ttl=timedelta(hours=2))


def booking_load(base: str, secret: str, targets: list[tuple[str, str]],
                 who: list[tuple[int, str]], concurrency: int, seconds: float,
                 acked: list[str]) -> dict[str, Any]:
    """Book one person a request with wrk (bench/booking.lua), `concurrency` connections for
    `seconds`: far less CPU than a Python client on the cores the server shares. The requests
    (token, idempotency key, body) are precomputed; wrk writes every 201's appointment ids to a
    file per thread, which are added to `acked` for the integrity check. Latencies are wrk's,
    over all responses (the status counts say how many were not 201)."""
    rng = random.Random(concurrency)
    threads = min(2, concurrency)
    tokens: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="teeka-book-") as tmp:
        plan = Path(tmp) / "requests.tsv"
        with plan.open("w") as f:
            for account, ref in who:
                sid, slot = rng.choice(targets)
                if account not in tokens:
                    tokens[account] = token(secret, account)
                body = json.dumps({"session_id": sid, "slot": slot, "beneficiaries": [ref],
                                   "dose": 1}, separators=(",", ":"))
                f.write(f"{tokens[account]}\t{'bench-' + ref}\t{body}\n")
        prefix = str(Path(tmp) / "acked")
        out = sh(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
                  "--timeout", "30s", "-s", str(ROOT / "bench" / "booking.lua"), base, "--",
                  str(plan), prefix, str(threads)], timeout=int(seconds) + 120)
        line = next(x for x in out.splitlines() if x.startswith("BOOKING_JSON "))
        stats = json.loads(line.removeprefix("BOOKING_JSON "))
        for i in range(threads):
            found = Path(f"{prefix}.{i}")
            if found.exists():
                acked.extend(x for x in found.read_text().split() if x)
    codes = {int(k): v for k, v in sorted(stats["codes"].items())}
    elapsed = stats["duration_us"] / 1e6
    # wrk reports the whole -d as the duration even when every person was asked before its end
    # (each answer, a quick 503 too, uses one up; then the threads stop and the servers idle):
    # the rates of such a level are floors, not what the servers sustained. Said so here and
    # in the table. A stopping thread drops the answers still on their way (one per connection
    # at most), so wrk counts a few less than it asked.
    ran_out = stats["requests"] >= len(who) - concurrency
    return {"concurrency": concurrency, "per_s": codes.get(201, 0) / elapsed,
            "people": len(who), "ran_out_of_people": ran_out,
            "requests": stats["requests"], "requests_per_s": stats["requests"] / elapsed,
            "p50_ms": stats["p50_us"] / 1000, "p95_ms": stats["p95_us"] / 1000,
            "p99_ms": stats["p99_us"] / 1000, "codes": codes,
            "socket_errors": {k: v for k, v in stats["errors"].items() if v},
            "generator": "wrk + bench/booking.lua"}


# ------------------------------------------------------------------ integrity


async def integrity(dsn: str, acked: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        present = await conn.fetchval(
            "SELECT count(*) FROM appointment WHERE id = ANY($1::text[])", acked)
        over = await conn.fetchval("SELECT count(*) FROM capacity_bucket WHERE booked > capacity")
        mismatched = await conn.fetchval(
            """SELECT count(*) FROM capacity_bucket b LEFT JOIN (
                 SELECT bucket_id, count(*) n FROM appointment
                 WHERE status IN ('booked', 'completed') GROUP BY bucket_id) a
               ON a.bucket_id = b.id WHERE b.booked <> coalesce(a.n, 0)""")
    finally:
        await conn.close()
    return {"acked": len(acked), "lost_acks": len(acked) - int(present), "oversell": int(over),
            "counter_mismatches": int(mismatched)}


# ------------------------------------------------------------------ staleness


async def staleness(base: str, secret: str, dsn: str) -> float:
    """Seconds from an acknowledged booking to the public answer showing it."""
    (account, ref), = await people(dsn, 1, 0)
    targets = await booking_targets(dsn, hot_centre=True)
    sid, slot = targets[0]
    conn = await asyncpg.connect(dsn)
    try:
        _district, day, pin = await conn.fetchrow(
            """SELECT c.district_id, s.date, c.pincode FROM vaccination_session s
               JOIN centre c ON c.id = s.centre_id WHERE s.id = $1""", sid)
    finally:
        await conn.close()
    params = {"pincode": str(pin), "date": day.strftime("%d-%m-%Y")}
    url = "/api/v2/appointment/sessions/public/calendarByPin"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        def free(body: dict) -> int:
            return next(s["available_capacity"] for c in body["centers"] for s in c["sessions"]
                        if s["session_id"] == sid)

        before = free((await client.get(url, params=params)).json())
        r = await client.post("/api/v1/appointments", json={
            "session_id": sid, "slot": slot, "beneficiaries": [ref], "dose": 1},
            headers={"Authorization": f"Bearer {token(secret, account)}",
                     "Idempotency-Key": f"stale-{ref}"})
        assert r.status_code == 201, r.text
        acked_at = time.monotonic()
        while free((await client.get(url, params=params)).json()) != before - 1:
            if time.monotonic() - acked_at > 10:
                return float("inf")
            await asyncio.sleep(0.02)
        return time.monotonic() - acked_at


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None,
                        help="sustained booking rate for the opening (default: measured)")
    parser.add_argument("--edge", action="store_true",
                        help="experiment: the opening's crowd through bench/edge (nginx + njs) "
                             "in front of the servers")
    parser.add_argument("--only", default="reads,bookings,opening",
                        help="comma-separated sections to run (a partial run does not write "
                             "latest.json)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    partial = only != {"reads", "bookings", "opening"}
    quick = args.quick
    read_s, book_s, pg_s = (4, 5, 4) if quick else (30, 30, 30)
    levels = [16, 64] if quick else [8, 32, 64, 128]
    beneficiaries = 40_000 if quick else 200_000
    secret = secrets.token_hex(32)
    dsn = f"{PG}/{DB}"
    env = {**os.environ, "TEEKA_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB}",
           "TEEKA_SECRET_KEY": secret, "TEEKA_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
           "TEEKA_ENVIRONMENT": "development", "TEEKA_EMBEDDED_WORKER": "false",
           "TEEKA_LOG_LEVEL": "WARNING", "TEEKA_DB_POOL_SIZE": "20",
           "TEEKA_DATA_DIR": tempfile.mkdtemp(prefix="teeka-bench-"),
           "TEEKA_LIMIT_PUBLIC": "100000000/minute", "TEEKA_LIMIT_SEARCH": "100000000/minute",
           "TEEKA_LIMIT_BOOKING": "100000000/minute", "TEEKA_LIMIT_OTP": "100000000/minute",
           "TEEKA_LIMIT_OTP_CLIENT": "100000000/minute"}
    result: dict[str, object] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "mode": "quick" if quick else "full", "machine": machine()}
    print(f"bench: preparing ({result['mode']})", flush=True)
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
    asyncio.run(admin(f"CREATE DATABASE {DB}"))
    sh(["redis-cli", "-n", REDIS_DB, "flushdb"])
    teeka = str(BIN / "teeka")
    sh([teeka, "db", "upgrade"], env)
    started = time.monotonic()
    sh([teeka, "demo", "--scale", "state", "--beneficiaries", str(beneficiaries)], env)
    result["dataset"] = {"beneficiaries": beneficiaries,
                         "load_s": round(time.monotonic() - started, 1)}
    if "bookings" in only:
        copy_for_same_sql()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    server_log = open(ROOT / "bench" / "results" / f"server-{DB}.log", "w")
    server = subprocess.Popen([teeka, "serve", "--port", str(port), "--workers",
                               str(args.workers)], env=env, stdout=server_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    SERVER_GROUPS.append(server.pid)  # start_new_session: the group's id is the pid
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y")
        if "reads" in only:
            reads(base, secret, dsn, read_s, tomorrow, result)
        if "bookings" in only:
            bookings(base, secret, dsn, book_s, pg_s, levels, quick, result)
        crowd_port = port
        if "opening" in only and args.edge:
            crowd_port = start_edge(port, env)
            result["edge"] = True
        if "opening" in only:
            rate = args.rate or result.get("bookings", {}).get("per_s")  # type: ignore[attr-defined]
            if not rate:
                raise SystemExit("the opening needs the sustained booking rate: run the "
                                 "bookings section too, or give --rate")
            opening_day(crowd_port, dsn, env["TEEKA_REDIS_URL"], secret, float(rate),
                        4 if quick else 45, result)
        if "costs" in only or not partial:
            import costs

            print("bench: CPU per answer", flush=True)
            result["costs"] = costs.run("127.0.0.1", port, dsn, secret, server.pid, token,
                                        300 if quick else 2000)
    finally:
        for group in SERVER_GROUPS[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(env["TEEKA_DATA_DIR"], ignore_errors=True)
    return finish(result, partial)


def reads(base: str, secret: str, dsn: str, read_s: int, tomorrow: str,
          result: dict[str, object]) -> None:
    print("bench: reads", flush=True)
    trivial = wrk(f"{base}/healthz", read_s, 64)
    # The reads are answered before the framework (national.api.SnapshotReads), so beside the
    # framework's trivial endpoint also measure the server's cheapest answer at that layer.
    raw = wrk(f"{base}/livez", read_s, 64)
    calendar = wrk(f"{base}/api/v2/appointment/sessions/public/calendarByDistrict"
                   f"?district_id=109&date={tomorrow}", read_s, 64)
    stale = asyncio.run(staleness(base, secret, dsn))
    result["reads"] = {"rps": round(calendar["rps"]), "trivial_rps": round(trivial["rps"]),
                       "ratio_to_trivial": round(calendar["rps"] / trivial["rps"], 3),
                       "p99_ms": calendar["p99_ms"], "p50_ms": calendar["p50_ms"],
                       "trivial_p99_ms": trivial["p99_ms"],
                       "raw_trivial_rps": round(raw["rps"]),
                       "ratio_to_raw_trivial": round(calendar["rps"] / raw["rps"], 3),
                       "raw_trivial_p99_ms": raw["p99_ms"],
                       "non_2xx": calendar["non_2xx"], "staleness_s": round(stale, 3),
                       "endpoint": "calendarByDistrict (Raipur, 7 days)"}


def bookings(base: str, secret: str, dsn: str, book_s: int, pg_s: int, levels: list[int],
             quick: bool, result: dict[str, object]) -> None:
    print("bench: pgbench", flush=True)
    pg_tps, pg_cpu = pgbench(pg_s, 16)
    print("bench: pgbench on the booking's own SQL", flush=True)
    same_tps, same_cpu = pgbench_same_sql(pg_s, 16)
    print("bench: bookings", flush=True)
    acked: list[str] = []
    spread = asyncio.run(booking_targets(dsn, hot_centre=False))
    # Everyone not booked yet, read once (the first is left to other sections); each run gets
    # its own slice of people, never offered to another run.
    pool = asyncio.run(people(dsn, 1_000_000, 1))
    share = 6000 if quick else 20000
    runs = []

    def load(targets: list[tuple[str, str]], level: int) -> dict[str, Any]:
        nonlocal pool
        who, pool = pool[:share], pool[share:]
        with Meter(SERVER_GROUPS) as meter:
            run = booking_load(base, secret, targets, who, level, book_s, acked)
        # CPU per confirmed booking, by who spent it (the generator's share includes wrk's)
        run["cpu_cores"] = meter.cores
        run["cpu_us_per_booking"] = meter.per(run["per_s"] * meter.seconds)
        return run

    for level in levels:
        runs.append(load(spread, level))
    # The best rate with p99 within the 250 ms the issue asks (the best overall if none is).
    within = [r for r in runs if r["p99_ms"] <= 250] or runs
    best = max(within, key=lambda r: r["per_s"])
    hot_run = load(asyncio.run(booking_targets(dsn, hot_centre=True)), 32)
    # The same server's trivial endpoint (wrk -c64): the stack's ceiling here (from `reads`
    # when it ran).
    reads_part = result.get("reads")
    trivial = ({"rps": float(reads_part["trivial_rps"])}  # type: ignore[index]
               if isinstance(reads_part, dict) else wrk(f"{base}/healthz", book_s, 64))
    result["bookings"] = {"per_s": round(best["per_s"], 1), "pgbench_tps": round(pg_tps, 1),
                          "ratio_to_pgbench": round(best["per_s"] / pg_tps, 3),
                          "trivial_rps": round(trivial["rps"]),
                          "ratio_to_trivial": round(best["per_s"] / trivial["rps"], 3),
                          "p50_ms": best["p50_ms"], "p95_ms": best["p95_ms"],
                          "p99_ms": best["p99_ms"], "at_concurrency": best["concurrency"],
                          "hot_centre_per_s": round(hot_run["per_s"], 1),
                          # 201 and 409 SlotFull alike: the centre may sell out during the run
                          "hot_centre_answers_per_s": round(hot_run["requests_per_s"], 1),
                          "cpu_us_per_booking": best["cpu_us_per_booking"],
                          "pgbench_cpu_us_per_tx": pg_cpu.per(pg_tps * pg_cpu.seconds),
                          "pgbench_cpu_cores": pg_cpu.cores,
                          "pgbench_same_sql_tps": round(same_tps, 1),
                          "ratio_to_same_sql": round(best["per_s"] / same_tps, 3),
                          "pgbench_same_sql_cpu_us_per_tx": same_cpu.per(
                              same_tps * same_cpu.seconds),
                          "levels": runs, "hot_centre": hot_run}
    result["integrity"] = asyncio.run(integrity(dsn, acked))


def opening_day(port: int, dsn: str, redis_url: str, secret: str, rate: float, seconds: int,
                result: dict[str, object]) -> None:
    """bench/opening.py: a statewide opening offered ~10x the sustained booking rate."""
    sys.path.insert(0, str(ROOT / "bench"))
    import opening

    print(f"bench: opening day ({rate:.0f} bookings/s sustained)", flush=True)
    try:  # the crowd's client is cheaper on uvloop (installed with uvicorn[standard])
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    figures, acked = asyncio.run(opening.run("127.0.0.1", port, dsn, redis_url, secret, rate,
                                             seconds, token, SERVER_GROUPS))
    checked = asyncio.run(integrity(dsn, acked))
    result["opening"] = {**figures, "oversell": checked["oversell"],
                         "lost_acks": checked["lost_acks"],
                         "counter_mismatches": checked["counter_mismatches"],
                         "acked": checked["acked"]}


def _f(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def figures_markdown(result: dict[str, Any]) -> str:
    """The generated block of docs/BENCHMARKS.md: every figure of the result file."""
    m, r, b, o = (result.get(k) or {} for k in ("machine", "reads", "bookings", "opening"))
    i = result.get("integrity") or {}
    lines = [
        f"Run: `make bench{'-quick' if result['mode'] == 'quick' else ''}`, {result['when']}. "
        f"Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gib')} GiB, "
        f"PostgreSQL {m.get('postgresql')}, Python {m.get('python')}; the load generators "
        "share the cores with the servers and the database.",
        "",
        "| figure | Teeka | baseline | ratio | target |",
        "|---|---|---|---|---|",
        f"| availability reads/s (`calendarByDistrict`) | {_f(r.get('rps'))} | trivial endpoint "
        f"{_f(r.get('trivial_rps'))} | **{_f(r.get('ratio_to_trivial'), 3)}** | ≥ 0.9 |",
        f"| the same against the server's cheapest answer (`/livez`, before the framework, like "
        f"the reads) | {_f(r.get('rps'))} | {_f(r.get('raw_trivial_rps'))} | "
        f"{_f(r.get('ratio_to_raw_trivial'), 3)} | |",
        f"| read p50 / p99 | {_f(r.get('p50_ms'))} ms / {_f(r.get('p99_ms'))} ms | trivial p99 "
        f"{_f(r.get('trivial_p99_ms'))} ms, `/livez` p99 {_f(r.get('raw_trivial_p99_ms'))} ms "
        "| | p99 ≤ 50 ms |",
        f"| booking visible in public answers after | {_f(r.get('staleness_s'), 3)} s | | | ≤ 2 s |",
        f"| confirmed bookings/s (spread, best level) | {_f(b.get('per_s'))} | pgbench "
        f"{_f(b.get('pgbench_tps'))} tps | **{_f(b.get('ratio_to_pgbench'), 3)}** | ≥ 0.5 |",
        f"| the same against pgbench on the booking's own SQL (`bench/pgbench_booking_same_sql"
        f".sql`) | {_f(b.get('per_s'))} | {_f(b.get('pgbench_same_sql_tps'))} tps | "
        f"{_f(b.get('ratio_to_same_sql'), 3)} | |",
        f"| booking p50 / p99 at that rate | {_f(b.get('p50_ms'))} ms / {_f(b.get('p99_ms'))} ms"
        " | | | p99 ≤ 250 ms |",
        f"| confirmed bookings/s, everyone on one centre | {_f(b.get('hot_centre_per_s'))} | | | |",
        f"| acknowledged / lost / oversold / counter mismatches | {_f(i.get('acked'))} / "
        f"{_f(i.get('lost_acks'))} / {_f(i.get('oversell'))} / "
        f"{_f(i.get('counter_mismatches'))} | | | 0 / 0 / 0 |",
        f"| opening: offered load (× sustained booking rate) | {_f(o.get('offered_x'))}× "
        f"({_f(o.get('offered_per_s'))} requests/s; each second of the release at p10 / p50 / "
        f"p90: {' / '.join(f'{x}×' for x in o.get('offered_x_p10_p50_p90') or [])}) | sustained "
        f"{_f(o.get('sustained_rate_per_s'))} bookings/s | | 10× |",
        f"| opening: useful bookings/s while places last | {_f(o.get('goodput_per_s'))} | "
        f"sustained {_f(o.get('sustained_rate_per_s'))} | **{_f(o.get('goodput_ratio'), 3)}** "
        "| ≥ 0.9 |",
        f"| opening: 5xx (other than 503 + Retry-After) | {_f(o.get('http_5xx'))} | | | 0 |",
        f"| opening: the poll that told someone their turn had come, p50 / p99 | "
        f"{' ms / '.join(_f(x) for x in o.get('turn_news_p50_p99_ms') or [])} ms | | | |",
        f"| opening: refusals (429/503) / without Retry-After / p99 | {_f(o.get('refusals'))} / "
        f"{_f(o.get('refusals_without_retry_after'))} / {_f(o.get('refusal_p99_ms'))} ms | | | "
        "all with Retry-After, p99 ≤ 100 ms |",
        f"| opening: oversold / lost acks / counter mismatches | {_f(o.get('oversell'))} / "
        f"{_f(o.get('lost_acks'))} / {_f(o.get('counter_mismatches'))} | | | 0 / 0 / 0 |",
        f"| opening: holds that found no place | {_f(o.get('hold_broken'))} | | | 0 |",
        f"| opening: places left free although people were told the queue closed | "
        f"{_f(o.get('closed_with_places_left'))} | | | 0 |",
        f"| opening: overtaken (admissions vs queue; late arrivals) | {_f(o.get('overtaken'))} "
        f"({_f(o.get('admissions_out_of_queue_order'))}; {_f(o.get('late_arrivals_overtaken'))})"
        " | | | 0 |",
        f"| opening: pre-queue join order vs drawn order (Spearman) | "
        f"{_f(o.get('prequeue_shuffle_rho'), 3)} | | | ≈ 0 |",
        f"| opening: back to normal latency after the crowd left | {_f(o.get('recovery_s'))} s | "
        f"before {_f(o.get('latency_before_ms'))} ms | | ≤ 30 s |",
        "",
        "Booking levels:",
        "",
        "| concurrency | bookings/s | p50 ms | p95 ms | p99 ms | answers |",
        "|---|---|---|---|---|---|",
    ]
    for level in [*(b.get("levels") or []), b.get("hot_centre")]:
        if level:
            floor = (f" (at least: all {level.get('people', 0):,} people asked before the end)"
                     if level.get("ran_out_of_people") else "")
            lines.append(f"| {level.get('concurrency')}{' (one centre)' if level is b.get('hot_centre') else ''}"
                         f" | {_f(level.get('per_s'))}{floor} | {_f(level.get('p50_ms'))} | "
                         f"{_f(level.get('p95_ms'))} | {_f(level.get('p99_ms'))} | "
                         f"{level.get('codes')} |")
    per_booking, per_tx = b.get("cpu_us_per_booking") or {}, b.get("pgbench_cpu_us_per_tx") or {}
    if per_booking and per_tx:
        groups = ("server", "postgres", "redis", "generator", "other")
        total_b, total_t = sum(per_booking.values()), sum(per_tx.values())
        lines += ["", "Where the CPU goes (`bench/cpu.py`: the machine's CPU while each ran, by who "
                  "used it, per confirmed booking at the best level and per pgbench transaction; "
                  "the generator is wrk with bench/booking.lua, or pgbench's own client):", "",
                  "| µs of CPU per | Teeka servers | PostgreSQL | Redis | generator | other | "
                  "total |", "|---|---|---|---|---|---|---|",
                  "| booking | " + " | ".join(_f(per_booking.get(g)) for g in groups)
                  + f" | {_f(total_b)} |",
                  "| pgbench transaction | " + " | ".join(_f(per_tx.get(g)) for g in groups)
                  + f" | {_f(total_t)} |"]
        same = b.get("pgbench_same_sql_cpu_us_per_tx") or {}
        if same:
            lines.append("| pgbench transaction, the booking's own SQL | "
                         + " | ".join(_f(same.get(g)) for g in groups)
                         + f" | {_f(sum(same.values()))} |")
    cores = o.get("cpu_cores") or {}
    if cores:
        lines += ["", "Opening, while the places lasted (cores in use, of "
                  f"{m.get('cores')}): " + ", ".join(f"{k} {_f(v, 2)}" for k, v in cores.items())
                  + "."]
    costs = result.get("costs") or {}
    if costs:
        lines += ["", "CPU per answer (`bench/costs.py`: server workers' CPU per request, one at a "
                  "time):", "", "| answer | server CPU µs | wall µs |", "|---|---|---|"]
        lines += [f"| {name} | {_f(c.get('cpu_us'))} | {_f(c.get('wall_us'))} |"
                  for name, c in costs.items()]
    if o:
        lines += ["", f"Opening: {_f(o.get('places'))} places in {_f(o.get('sessions'))} sessions "
                  f"statewide; a crowd of {_f(o.get('crowd'))} ({_f(o.get('pre_queued'))} "
                  f"pre-queued, {_f(o.get('late'))} late); {_f(o.get('admitted'))} admitted, "
                  f"{_f(o.get('booked'))} booked, {_f(o.get('told_closed'))} told the queue "
                  f"closed; the release took {_f(o.get('release_s'))} s. Answers: "
                  f"{o.get('codes')}."]
    return "\n".join(lines)


def write_figures(result: dict[str, Any]) -> None:
    doc = ROOT / "docs" / "BENCHMARKS.md"
    text = doc.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{figures_markdown(result)}\n{end}{tail}")


def finish(result: dict[str, object], partial: bool) -> int:
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str)
    if partial:
        (out_dir / f"partial-{DB}.json").write_text(text)
    else:
        (out_dir / "latest.json").write_text(text)
        (out_dir / f"{str(result['when']).replace(':', '')}.json").write_text(text)
        if result["mode"] == "full":  # the document shows the full run's figures
            write_figures(result)
    print(text)
    checks = [result.get(part) for part in ("integrity", "opening")]
    bad = [k for c in checks if isinstance(c, dict) for k in
           ("lost_acks", "oversell", "counter_mismatches", "hold_broken", "overtaken",
            "closed_with_places_left", "http_5xx") if c.get(k) not in (0, None)]
    print(f"bench: {'FAIL ' + ','.join(bad) if bad else 'PASS'} integrity", flush=True)
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
