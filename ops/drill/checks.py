"""What the drill checks after each step, on the primary (or a restored copy): every
acknowledged booking is there, no slot holds more than its capacity, every counter equals a
recount of the appointments (teeka.booking.repository.recount_mismatches)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from teeka.booking.repository import recount_mismatches


@dataclass(frozen=True)
class Figures:
    acked: int
    present: int
    lost: int
    oversell: int
    mismatches: int
    appointments: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.oversell == 0 and self.mismatches == 0


async def present_ids(url: str, ids: set[str]) -> tuple[set[str], int, int, int]:
    """(the given ids held in the database, oversold buckets, counter mismatches, all
    appointments holding a place)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with AsyncSession(engine) as db:
            found = {r[0] for r in await db.execute(
                text("SELECT id FROM appointment WHERE status IN ('booked', 'completed') "
                     "AND id = ANY(:ids)"),
                {"ids": list(ids)})}
            over = (await db.execute(text(
                "SELECT count(*) FROM capacity_bucket WHERE booked > capacity"))).scalar_one()
            over += (await db.execute(text(
                "SELECT count(*) FROM (SELECT b.id FROM capacity_bucket b JOIN appointment a "
                "ON a.bucket_id = b.id AND a.status IN ('booked', 'completed') "
                "GROUP BY b.id, b.capacity "
                "HAVING count(*) > b.capacity) x"))).scalar_one()
            mismatches = len(await recount_mismatches(db))
            total = (await db.execute(text(
                "SELECT count(*) FROM appointment WHERE status IN ('booked', 'completed')"))).scalar_one()
            await db.rollback()
            return found, int(over), mismatches, int(total)
    finally:
        await engine.dispose()


async def check(url: str, acked: set[str], attempts: int = 20) -> Figures:
    """Figures from the primary; retried while a failover is still settling."""
    for n in range(attempts):
        try:
            found, over, mismatches, total = await present_ids(url, acked)
            return Figures(len(acked), len(found), len(acked - found), over, mismatches, total)
        except (DBAPIError, OSError, TimeoutError):
            if n == attempts - 1:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def restored_ids(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return {r[0] for r in await conn.execute(
                text("SELECT id FROM appointment WHERE status IN ('booked', 'completed')"))}
    finally:
        await engine.dispose()


async def count_held_for(url: str, reference_id: str) -> int:
    """Appointments holding a place for one beneficiary (on the primary)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                "SELECT count(*) FROM appointment a JOIN beneficiary b "
                "ON b.id = a.beneficiary_id WHERE b.reference_id = :ref "
                "AND a.status IN ('booked', 'completed')"), {"ref": reference_id})).scalar_one())
    finally:
        await engine.dispose()
