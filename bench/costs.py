"""What one answer costs the server: CPU microseconds per request, by kind.

Requests are sent one at a time on one keep-alive connection, and the CPU the server's worker
processes used meanwhile (/proc, user + system) is divided by the number of requests. Unlike
requests per second, this hardly depends on what else the machine is doing, and it explains the
ratios: a refused queue poll against a booking is how much of the server a crowd of impatient
pollers takes from booking (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from opening import Client, prepare


def _cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def workers(server_pid: int) -> list[int]:
    found = [server_pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if int(parent) == server_pid:
                found.append(int(entry))
    return found


async def measure(host: str, port: int, dsn: str, secret: str, server_pid: int,
                  token: Callable[[str, int], str], n: int) -> dict[str, Any]:
    pids = workers(server_pid)
    client = Client(host, port, 1)
    out: dict[str, Any] = {}

    async def cost(name: str, count: int, one: Callable[[int], Awaitable[int]]) -> None:
        await one(0)
        codes: dict[int, int] = {}
        before, began = _cpu(pids), time.monotonic()
        for i in range(1, count + 1):
            code = await one(i)
            codes[code] = codes.get(code, 0) + 1
        used = _cpu(pids) - before
        out[name] = {"cpu_us": round(used / count * 1e6), "wall_us": round(
            (time.monotonic() - began) / count * 1e6), "codes": codes}

    day = (datetime.now(UTC) + timedelta(days=1)).strftime("%d-%m-%Y")

    async def healthz(i: int) -> int:
        return (await client.call("cost", "GET", "/healthz", {}))[0]

    async def calendar(i: int) -> int:
        return (await client.call(
            "cost", "GET", "/api/v2/appointment/sessions/public/calendarByDistrict"
            f"?district_id=109&date={day}", {"Accept-Encoding": "gzip"}))[0]

    async def livez(i: int) -> int:
        return (await client.call("cost", "GET", "/livez", {}))[0]

    await cost("livez (the server's cheapest answer)", n, livez)
    await cost("healthz", n, healthz)
    await cost("calendarByDistrict", n, calendar)

    # A small opening far ahead (after every other opening's day, so it governs nothing else),
    # people who joined a moment ago, and their polls: too early, so 429 at once.
    setup = await prepare(dsn, 100, 60, 1, 0.5, 60)
    oid = setup["opening"]
    tickets: list[tuple[str, str]] = []
    for account, _ref in setup["accounts"]:
        bearer = f"Bearer {token(secret, account)}"
        code, _, raw = await client.call("cost", "POST", f"/api/v1/openings/{oid}/join",
                                         {"Authorization": bearer})
        if code == 200:
            tickets.append((bearer, json.loads(raw)["token"]))
    async def early(i: int) -> int:
        bearer, ticket = tickets[i % len(tickets)]
        return (await client.call("cost", "GET", f"/api/v1/openings/{oid}/status",
                                  {"Authorization": bearer, "X-Queue-Token": ticket}))[0]

    if len(tickets) > 10:
        await cost("join again (POST)", len(tickets) - 1,
                   lambda i: _join_again(client, oid, tickets[i]))
        await cost("queue poll, too early (429)", n, early)

    conn = await asyncpg.connect(dsn)
    try:
        places = await conn.fetch(
            """SELECT s.id, sl.label FROM vaccination_session s
               JOIN session_slot sl ON sl.session_id = s.id
               JOIN capacity_bucket b ON b.slot_id = sl.id AND b.dose_kind = 'first'
               AND b.share = 'open'
               WHERE s.min_age <= 18 AND s.max_age IS NULL AND s.date > current_date
               AND s.date < (SELECT min(first_day) FROM opening) AND b.capacity > b.booked + 5
               ORDER BY s.id LIMIT 500""")
        people = await conn.fetch(
            """SELECT b.account_id, b.reference_id FROM beneficiary b
               WHERE b.reference_id LIKE '99%' AND b.status = 'active' AND NOT EXISTS
               (SELECT 1 FROM appointment a WHERE a.beneficiary_id = b.id)
               ORDER BY b.reference_id DESC LIMIT $1""", min(n, 1000) + 1)
    finally:
        await conn.close()

    async def book(i: int) -> int:
        account, ref = people[i]["account_id"], people[i]["reference_id"]
        return (await client.call(
            "cost", "POST", "/api/v1/appointments",
            {"Authorization": f"Bearer {token(secret, account)}",
             "Idempotency-Key": f"cost-{ref}"},
            {"session_id": places[i % len(places)]["id"], "slot": places[i % len(places)]["label"],
             "beneficiaries": [ref], "dose": 1}))[0]

    if places and len(people) > 10:
        await cost("booking (POST, 201)", len(people) - 1, book)
    for conn_ in list(client.pool._queue):  # type: ignore[attr-defined]
        conn_.close()
    return out


async def _join_again(client: Client, oid: int, ticket: tuple[str, str]) -> int:
    """Joining again: same position (a join costs about this much either way)."""
    return (await client.call("cost", "POST", f"/api/v1/openings/{oid}/join",
                              {"Authorization": ticket[0]}))[0]


def run(host: str, port: int, dsn: str, secret: str, server_pid: int,
        token: Callable[[str, int], str], n: int) -> dict[str, Any]:
    return asyncio.run(measure(host, port, dsn, secret, server_pid, token, n))
