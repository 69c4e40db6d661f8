"""The benchmark: `make bench` (full) and `make bench-quick` (< 60 s of load).

Starts the stack itself (the machine's PostgreSQL, Redis, N server processes), loads the state
dataset, then measures, each against a baseline run beside it on the same machine:
  reads     wrk on the public availability answers vs a trivial endpoint on the same server
  bookings  the booking request at rising concurrency vs pgbench on the minimal booking
            transaction (the database's own ceiling)
and checks integrity after every run. Writes bench/results/latest.json (+ a dated copy) and
the figures into docs/BENCHMARKS.md. See docs/BENCHMARKS.md for what each key means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB = "teeka_bench"


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


def pgbench(seconds: int, clients: int) -> float:
    asyncio.run(admin("DROP DATABASE IF EXISTS teeka_pgbench WITH (FORCE)"))
    asyncio.run(admin("CREATE DATABASE teeka_pgbench"))
    slots = 20000
    setup = (f"CREATE TABLE slot (id int PRIMARY KEY, capacity int NOT NULL, booked int NOT NULL);"
             f"CREATE TABLE appointment (id bigserial PRIMARY KEY, beneficiary_id bigint NOT NULL,"
             f" slot_id int NOT NULL REFERENCES slot(id));"
             f"INSERT INTO slot SELECT g, 1000000, 0 FROM generate_series(1, {slots}) g;")
    sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "teeka_pgbench", "-qc", setup])
    out = sh(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", str(clients), "-j", "2",
              "-T", str(seconds), "-D", f"slots={slots}", "-f",
              str(ROOT / "bench" / "pgbench_booking.sql"), "teeka_pgbench"], timeout=seconds + 120)
    tps = float(re.search(r"tps = ([\d.]+)", out)[1])  # type: ignore[index]
    asyncio.run(admin("DROP DATABASE IF EXISTS teeka_pgbench WITH (FORCE)"))
    return tps


# ------------------------------------------------------------------ booking load


async def booking_targets(dsn: str, hot_centre: bool) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT s.id, sl.label, s.centre_id FROM vaccination_session s
               JOIN session_slot sl ON sl.session_id = s.id
               JOIN capacity_bucket b ON b.slot_id = sl.id AND b.dose_kind = 'first'
                    AND b.share = 'open'
               WHERE s.min_age <= 18 AND s.max_age IS NULL AND s.date > current_date
               AND b.capacity > b.booked""")
    finally:
        await conn.close()
    if hot_centre:
        centre = max({r["centre_id"] for r in rows},
                     key=lambda c: sum(1 for r in rows if r["centre_id"] == c))
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


async def booking_load(base: str, secret: str, targets: list[tuple[str, str]],
                       who: list[tuple[int, str]], concurrency: int, seconds: float,
                       acked: list[str]) -> dict[str, float]:
    rng = random.Random(concurrency)
    queue = list(who)
    lat_ok: list[float] = []
    codes: dict[int, int] = {}
    stop = time.monotonic() + seconds

    async def one(client: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < stop:
            account, ref = queue.pop()
            sid, slot = rng.choice(targets)
            started = time.monotonic()
            r = await client.post("/api/v1/appointments", json={
                "session_id": sid, "slot": slot, "beneficiaries": [ref], "dose": 1},
                headers={"Authorization": f"Bearer {token(secret, account)}",
                         "Idempotency-Key": f"bench-{ref}"})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code == 201:
                lat_ok.append((time.monotonic() - started) * 1000)
                acked.extend(r.json()["appointment_ids"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        began = time.monotonic()
        await asyncio.gather(*[one(client) for _ in range(concurrency)])
        elapsed = time.monotonic() - began
    q = statistics.quantiles(lat_ok, n=100) if len(lat_ok) >= 2 else [float("nan")] * 99
    return {"concurrency": concurrency, "per_s": len(lat_ok) / elapsed, "p50_ms": q[49],
            "p95_ms": q[94], "p99_ms": q[98], "codes": codes}  # type: ignore[dict-item]


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
    args = parser.parse_args()
    quick = args.quick
    read_s, book_s, pg_s = (8, 8, 8) if quick else (30, 30, 30)
    levels = [16, 64] if quick else [8, 32, 64, 128]
    beneficiaries = 20_000 if quick else 200_000
    secret = secrets.token_hex(32)
    dsn = f"{PG}/{DB}"
    env = {**os.environ, "TEEKA_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB}",
           "TEEKA_SECRET_KEY": secret, "TEEKA_REDIS_URL": "redis://127.0.0.1:6379/12",
           "TEEKA_ENVIRONMENT": "development", "TEEKA_EMBEDDED_WORKER": "false",
           "TEEKA_LOG_LEVEL": "WARNING", "TEEKA_DB_POOL_SIZE": "20",
           "TEEKA_DATA_DIR": tempfile.mkdtemp(prefix="teeka-bench-"),
           "TEEKA_LIMIT_PUBLIC": "100000000/minute", "TEEKA_LIMIT_SEARCH": "100000000/minute",
           "TEEKA_LIMIT_BOOKING": "100000000/minute", "TEEKA_LIMIT_OTP": "100000000/minute"}
    result: dict[str, object] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "mode": "quick" if quick else "full", "machine": machine()}
    print(f"bench: preparing ({result['mode']})", flush=True)
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
    asyncio.run(admin(f"CREATE DATABASE {DB}"))
    sh(["redis-cli", "-n", "12", "flushdb"])
    teeka = str(BIN / "teeka")
    sh([teeka, "db", "upgrade"], env)
    started = time.monotonic()
    sh([teeka, "demo", "--scale", "state", "--beneficiaries", str(beneficiaries)], env)
    result["dataset"] = {"beneficiaries": beneficiaries,
                         "load_s": round(time.monotonic() - started, 1)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([teeka, "serve", "--port", str(port), "--workers",
                               str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y")
        print("bench: reads", flush=True)
        trivial = wrk(f"{base}/healthz", read_s, 64)
        calendar = wrk(f"{base}/api/v2/appointment/sessions/public/calendarByDistrict"
                       f"?district_id=109&date={tomorrow}", read_s, 64)
        stale = asyncio.run(staleness(base, secret, dsn))
        result["reads"] = {"rps": round(calendar["rps"]), "trivial_rps": round(trivial["rps"]),
                           "ratio_to_trivial": round(calendar["rps"] / trivial["rps"], 3),
                           "p99_ms": calendar["p99_ms"], "p50_ms": calendar["p50_ms"],
                           "non_2xx": calendar["non_2xx"], "staleness_s": round(stale, 3),
                           "endpoint": "calendarByDistrict (Raipur, 7 days)"}
        print("bench: pgbench", flush=True)
        pg_tps = pgbench(pg_s, 16)
        print("bench: bookings", flush=True)
        acked: list[str] = []
        spread = asyncio.run(booking_targets(dsn, hot_centre=False))
        runs = []
        offset = 1
        for level in levels:
            who = asyncio.run(people(dsn, 6000 if quick else 20000, offset))
            offset += len(who)
            runs.append(asyncio.run(booking_load(base, secret, spread, who, level, book_s,
                                                 acked)))
        best = max(runs, key=lambda r: r["per_s"])
        hot = asyncio.run(booking_targets(dsn, hot_centre=True))
        who = asyncio.run(people(dsn, 4000, offset))
        hot_run = asyncio.run(booking_load(base, secret, hot, who, 32, book_s, acked))
        result["bookings"] = {"per_s": round(best["per_s"], 1), "pgbench_tps": round(pg_tps, 1),
                              "ratio_to_pgbench": round(best["per_s"] / pg_tps, 3),
                              "p50_ms": best["p50_ms"], "p95_ms": best["p95_ms"],
                              "p99_ms": best["p99_ms"], "at_concurrency": best["concurrency"],
                              "hot_centre_per_s": round(hot_run["per_s"], 1),
                              "levels": runs, "hot_centre": hot_run}
        result["integrity"] = asyncio.run(integrity(dsn, acked))
        result["opening"] = {k: None for k in (
            "offered_x", "goodput_ratio", "http_5xx", "refusal_p99_ms", "oversell", "lost_acks",
            "hold_broken", "overtaken", "recovery_s")}
        result["opening"]["note"] = "opening-day scenario not implemented yet"  # type: ignore[index]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(env["TEEKA_DATA_DIR"], ignore_errors=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str)
    (out_dir / "latest.json").write_text(text)
    (out_dir / f"{result['when'].replace(':', '')}.json").write_text(text)  # type: ignore[union-attr]
    print(text)
    integrity_ok = all(result["integrity"][k] == 0 for k in  # type: ignore[index]
                       ("lost_acks", "oversell", "counter_mismatches"))
    print(f"bench: {'PASS' if integrity_ok else 'FAIL'} integrity", flush=True)
    asyncio.run(admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
    return 0 if integrity_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
