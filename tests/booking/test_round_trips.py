"""The booking request's round trips to the database stay few (docs/booking-and-capacity.md,
"Booking"): a booking is the busiest write of an opening day, and every statement is paid for
in server CPU. Counted with the engine's own statement hook, on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select, update

from teeka.auth.actor import Actor
from teeka.booking import repository as repo
from teeka.booking.service import book_appointment
from teeka.db import session_scope
from teeka.models import Beneficiary, VaccineInterval
from tests.factories import bulk_citizens, publish

SLOT = "09:00AM-11:00AM"


@contextmanager
def statements(maker) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = maker.kw["bind"].sync_engine

    def count(_conn, _cursor, statement, *_args) -> None:
        verb = statement.split(None, 1)[0].upper()
        if verb != "BEGIN":  # SQLite's BEGIN IMMEDIATE (asyncpg's is not a cursor statement)
            seen.append(verb)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def citizen_of(maker, ref: str) -> Actor:
    async with session_scope(maker) as db:
        account = (await db.execute(select(Beneficiary.account_id)
                                    .where(Beneficiary.reference_id == ref))).scalar_one()
    return Actor(kind="citizen", id=account)


async def book(maker, actor: Actor, sid: str, refs: list[str], key: str) -> list[str]:
    """Through the service itself: the request's own statements (the waiting room's, the unit
    of work's WAL mark) are not the booking's."""
    async with session_scope(maker) as db:
        result = await book_appointment(db, actor=actor, session_id=sid, slot=SLOT,
                                        beneficiary_refs=refs, dose=None, idempotency_key=key)
    return result.appointment_ids


async def test_a_booking_is_two_statements_on_postgresql_six_on_sqlite_a_replay_two(
        world, maker, settings) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    people = await bulk_citizens(maker, settings, 2)
    first = await citizen_of(maker, people[0][1])
    await book(maker, first, sid, [people[0][1]], "warm-up-0001")  # loads the schedules once
    second = await citizen_of(maker, people[1][1])
    with statements(maker) as seen:
        ids = await book(maker, second, sid, [people[1][1]], "count-0001")
    # claim the key; the place with its buckets and the person with their doses and active
    # appointment; the guarded UPDATE; the appointment, the audit entry, the SMS. On
    # PostgreSQL two statements (data-modifying WITH clauses: the claim with the read, the
    # UPDATE with the rows it lets through), on SQLite six.
    postgres = maker.kw["bind"].dialect.name == "postgresql"
    if postgres:
        assert seen == ["WITH", "WITH"]
    else:
        assert seen == ["INSERT", "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT"]
    with statements(maker) as seen:
        again = await book(maker, second, sid, [people[1][1]], "count-0001")
    assert again == ids
    # the claim finds the key taken; the earlier answer
    assert seen == (["WITH", "SELECT"] if postgres else ["INSERT", "SELECT"])


async def test_schedules_are_kept_and_reloaded_when_stale_or_unknown(
        world, maker, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.forget_schedules()  # an earlier test's world may still be kept (within the TTL)
    async with session_scope(maker) as db:
        kept = await repo.cached_schedules(db)
        assert await repo.cached_schedules(db) is kept  # no query the second time
        # a vaccine the copy does not know: reloaded at once
        assert await repo.cached_schedules(db, need=[max(kept) + 1000]) is not kept
    async with session_scope(maker) as db:
        vaccine = min(kept)
        await db.execute(update(VaccineInterval).where(VaccineInterval.vaccine_id == vaccine)
                         .values(min_days=7))
    async with session_scope(maker) as db:
        stale = await repo.cached_schedules(db)
        assert stale[vaccine].intervals[2][0] != 7  # within the TTL, the kept copy
        monkeypatch.setattr(repo, "SCHEDULE_TTL", 0.0)
        assert (await repo.cached_schedules(db))[vaccine].intervals[2][0] == 7
    repo.forget_schedules()
