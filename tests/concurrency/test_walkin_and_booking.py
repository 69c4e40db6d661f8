"""PostgreSQL only: a walk-in at one centre and a booking at another, for the same person, at
the same moment, each through real HTTP on its own connection.

A walk-in is refused for a person with an active appointment, and a booking for a person whose
dose is given; done at once, each used to pass its check before the other's row existed, and the
person ended with the dose given *and* an appointment booked for it (a place held, an SMS sent).
A booking now locks its people's rows in its first statement, the lock the walk-in takes, and
its place's guarded UPDATE requires that the dose is not recorded (docs/booking-and-capacity.md,
"Completing a dose"). Each test makes one order happen for certain: a third connection holds a
row that the side going first must wait on, the second side is started, then the row is let go.
The canary runs the first order without the lock and the guard and must see the harm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from teeka.booking import repository as repo
from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import Appointment, AppointmentStatus, Beneficiary, CapacityBucket, DoseRecord
from tests.factories import add_beneficiary, login_citizen, publish

pytestmark = pytest.mark.postgres_only

SLOT = "09:00AM-11:00AM"


async def _person(client: httpx.AsyncClient, world: Any, maker: Any, settings: Any
                  ) -> tuple[str, str, dict[str, str], str, str]:
    here = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), walkins=3)
    there = await publish(maker, world, centre_id=world.centre_b,
                          day=clock.today() + timedelta(days=1))
    citizen = await login_citizen(client, maker, settings)
    ref = await add_beneficiary(client, citizen)
    listed = (await client.get("/api/v1/beneficiaries", headers=citizen)).json()
    code = next(b["secret_code"] for b in listed if b["reference_id"] == ref)
    return here, there, citizen, ref, code


def _walkin(client: httpx.AsyncClient, world: Any, sid: str, ref: str, code: str
            ) -> Awaitable[httpx.Response]:
    return client.post("/api/v1/centre/walkins", headers=world.headers("vaccinator_a"),
                       json={"session_id": sid, "reference_id": ref, "secret_code": code,
                             "batch": "B-1"})


def _book(client: httpx.AsyncClient, citizen: dict[str, str], sid: str, ref: str
          ) -> Awaitable[httpx.Response]:
    return client.post("/api/v1/appointments",
                       headers={**citizen, "Idempotency-Key": f"walkin-race-{ref}"},
                       json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})


async def _held(maker: Any, ref: str, there: str) -> tuple[int, int, int]:
    """(doses given, appointments booked, places taken at the other centre)."""
    async with session_scope(maker) as db:
        person = (await db.execute(select(Beneficiary.id).where(
            Beneficiary.reference_id == ref))).scalar_one()
        doses = await db.scalar(select(func.count()).select_from(DoseRecord).where(
            DoseRecord.beneficiary_id == person))
        booked = await db.scalar(select(func.count()).select_from(Appointment).where(
            Appointment.beneficiary_id == person,
            Appointment.status == AppointmentStatus.BOOKED))
        taken = await db.scalar(select(func.sum(CapacityBucket.booked)).where(
            CapacityBucket.session_id == there))
    return int(doses or 0), int(booked or 0), int(taken or 0)


async def _walkin_first(client: httpx.AsyncClient, world: Any, maker: Any, settings: Any
                        ) -> tuple[httpx.Response, httpx.Response, tuple[int, int, int]]:
    """The walk-in has checked the person and locked them, and waits for the session's row (held
    by a third connection) to take its walk-in place; the booking is sent; then the row is let
    go."""
    here, there, citizen, ref, code = await _person(client, world, maker, settings)
    async with maker() as blocker:
        await blocker.execute(text("SELECT id FROM vaccination_session WHERE id = :id FOR UPDATE"),
                              {"id": here})
        walkin = asyncio.create_task(_walkin(client, world, here, ref, code))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        assert not walkin.done()
        booking = asyncio.create_task(_book(client, citizen, there, ref))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        await blocker.rollback()
    walked, booked = await walkin, await booking
    return walked, booked, await _held(maker, ref, there)


async def test_a_booking_sent_during_a_walk_in_holds_no_place(client, world, maker,
                                                               settings) -> None:
    walked, booked, (doses, active, taken) = await _walkin_first(client, world, maker, settings)
    assert walked.status_code == 201, walked.text
    assert booked.status_code == 503 and booked.headers.get("Retry-After"), booked.text
    assert (doses, active, taken) == (1, 0, 0)


async def test_a_walk_in_during_a_booking_sees_its_appointment(client, world, maker,
                                                                settings) -> None:
    """The booking has read (and locked) the person and waits for its place's row (held by a
    third connection); the walk-in is sent; then the row is let go. The walk-in waits for the
    booking and is refused: the person has an appointment."""
    here, there, citizen, ref, code = await _person(client, world, maker, settings)
    async with maker() as blocker:
        await blocker.execute(text(
            "SELECT id FROM capacity_bucket WHERE session_id = :sid FOR UPDATE"), {"sid": there})
        booking = asyncio.create_task(_book(client, citizen, there, ref))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        assert not booking.done()
        walkin = asyncio.create_task(_walkin(client, world, here, ref, code))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        assert not walkin.done()  # it waits for the booking's lock on the person
        await blocker.rollback()
    booked, walked = await booking, await walkin
    assert booked.status_code == 201, booked.text
    assert walked.status_code == 409 and walked.json()["code"] == "AlreadyBooked", walked.text
    assert await _held(maker, ref, there) == (0, 1, 1)


async def test_canary_without_the_lock_and_the_guard_the_person_keeps_both(
        client, world, maker, settings, monkeypatch) -> None:
    """Expected to show the harm: without the lock and the dose guard, the booking made during
    the walk-in is confirmed, and the person has their dose and an appointment for it. If this
    ever stops happening, the tests above no longer prove that the lock is needed."""
    monkeypatch.setattr(repo, "_CLAIM_AND_READ_PG", repo._claim_and_read_statement(lock=False))
    monkeypatch.setattr(repo, "_BOOK_PLACE_PG", repo._book_place_statement(dose_guard=False))
    walked, booked, held = await _walkin_first(client, world, maker, settings)
    assert walked.status_code == 201 and booked.status_code == 201, (walked.text, booked.text)
    assert held == (1, 1, 1)
