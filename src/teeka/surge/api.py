"""JSON API of the waiting room, and the booking gate every booking front end calls."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_district
from teeka.auth.actor import Actor
from teeka.auth.service import bearer_token, citizen_actor
from teeka.booking.displace import MoveGate
from teeka.booking.repository import earlier_booking
from teeka.db import AFTER_COMMIT, AFTER_END, OUTCOME_UNKNOWN
from teeka.kit import clock
from teeka.models import District, Opening
from teeka.models.staff import Role
from teeka.surge.service import (
    FREE_PASS,
    OpeningView,
    Pass,
    Status,
    WaitingRoom,
    appointment_pools,
)
from teeka.web.deps import CurrentActor, Db

router = APIRouter(prefix="/api/v1", tags=["waiting room"])
log = structlog.get_logger()
SLOW_BOOKING_S = 1.0  # a booking under an opening slower than this counts as backend stress
# How far from now an opening's time and first day may be: beyond is a typing mistake (and
# years like 0001 or 9999 would overflow the arithmetic on them).
OPENING_REACH = timedelta(days=366)
CLAIMS = "teeka.hold_claims"  # session.info: the marks of claims on holds still to give back


class OpeningCreate(BaseModel):
    district_id: int | None = None  # None: the whole state
    first_day: date
    opens_at: datetime
    hold_seconds: int = Field(default=600, ge=60, le=3600)
    admit_per_second: int = Field(default=50, ge=1, le=10000)


class OpeningRead(BaseModel):
    id: int
    district_id: int | None
    first_day: date
    opens_at: datetime
    closed_at: datetime | None = None


class StatusRead(BaseModel):
    state: str
    position: int | None
    ahead: int | None
    estimated_wait_s: int | None
    hold_expires_in_s: int | None
    token: str
    poll_after_s: int


def room(request: Request) -> WaitingRoom:
    found: WaitingRoom = request.app.state.waiting_room
    return found


def _read(status: Status) -> StatusRead:
    return StatusRead(**status.__dict__)


def _administers(actor: Actor, district_id: int | None) -> None:
    """Openings of the whole state (None): state administrators; of a district: its
    administrators too."""
    if district_id is None:
        if not actor.has_role(Role.STATE_ADMIN):
            raise errors.Forbidden()
    else:
        access_district(actor, district_id)


@router.post("/admin/openings", response_model=OpeningRead, status_code=201)
async def create_opening(body: OpeningCreate, request: Request, db: Db, actor: CurrentActor
                         ) -> OpeningRead:
    _administers(actor, body.district_id)
    if body.opens_at.tzinfo is None:
        raise errors.Invalid(detail="opens_at needs a time zone, e.g. +05:30")
    now = clock.now()
    if not now - OPENING_REACH <= body.opens_at <= now + OPENING_REACH:
        raise errors.Invalid(detail="opens_at must be within a year of now")
    if not clock.today() - OPENING_REACH <= body.first_day <= clock.today() + OPENING_REACH:
        raise errors.Invalid(detail="first_day must be within a year of today")
    if body.district_id is not None and await db.get(District, body.district_id) is None:
        raise errors.NotFound()
    if governing := await room(request).still_governing(db, body.district_id):
        raise errors.OpeningsOverlap(opening=governing[0])
    opening = Opening(district_id=body.district_id, first_day=body.first_day,
                      opens_at=body.opens_at, hold_seconds=body.hold_seconds,
                      admit_per_second=body.admit_per_second, created_at=clock.now())
    db.add(opening)
    await db.flush()
    await log_action(db, actor=actor.label, action="surge.opening.created", object_type="opening",
                     object_id=opening.id, district=body.district_id)
    room(request).opening_created(opening)
    return OpeningRead(id=opening.id, district_id=opening.district_id,
                       first_day=opening.first_day, opens_at=opening.opens_at)


@router.post("/admin/openings/{opening_id}/close", response_model=OpeningRead)
async def close_opening(opening_id: int, request: Request, db: Db, actor: CurrentActor
                        ) -> OpeningRead:
    """Close an opening by hand (a state opening: state administrators; a district's: its
    administrators too): its scope is booked without the queue again, everyone still waiting
    is told it closed, and a new opening may be made there. Places the room kept for people
    it admitted are kept no longer: they book like everyone else. Closing it again changes
    nothing."""
    if not actor.has_role(Role.STATE_ADMIN, Role.DISTRICT_ADMIN):
        raise errors.Forbidden()  # before the lookup: no one else learns which ids exist
    opening = await db.get(Opening, opening_id)
    if opening is None:
        raise errors.NotFound()
    _administers(actor, opening.district_id)
    # Guarded, so that of two administrators closing at once one closes it (and is audited)
    # and the other's request changes nothing: on PostgreSQL the second waits for the first's
    # commit, then finds it closed.
    closing = await db.execute(
        update(Opening).where(Opening.id == opening.id, Opening.closed_at.is_(None))
        .values(closed_at=clock.now()).execution_options(synchronize_session=False))
    if closing.rowcount == 1:  # type: ignore[attr-defined]
        await log_action(db, actor=actor.label, action="surge.opening.closed",
                         object_type="opening", object_id=opening.id,
                         district=opening.district_id)
    await db.refresh(opening)
    view = OpeningView.of(opening)

    async def tell() -> None:
        try:
            await room(request).closed(view)
        except Exception as exc:  # the room's next step of this process says it (its view)
            log.warning("surge.close.failed", opening=view.id, error=type(exc).__name__)

    db.info.setdefault(AFTER_COMMIT, []).append(tell)
    return OpeningRead(id=opening.id, district_id=opening.district_id,
                       first_day=opening.first_day, opens_at=opening.opens_at,
                       closed_at=opening.closed_at)


async def citizen(request: Request,
                  authorization: Annotated[str | None, Header(max_length=4000)] = None) -> Actor:
    """A signed-in citizen from the bearer token alone (the queue is only for citizens; its
    state is not in the database, so a poll or a join needs no unit of work)."""
    token = bearer_token(authorization)
    actor = (citizen_actor(request.app.state.settings.resolved_secret(), token)
             if token is not None else None)
    if actor is None:
        raise errors.Unauthenticated()
    return actor


Citizen = Annotated[Actor, Depends(citizen)]


@router.post("/openings/{opening_id}/join", response_model=StatusRead)
async def join(opening_id: int, request: Request, actor: Citizen) -> StatusRead:
    wr = room(request)
    return _read(await wr.join(None, await wr.opening(None, opening_id), actor))


@router.get("/openings/{opening_id}/status", response_model=StatusRead)
async def status(opening_id: int, request: Request, actor: Citizen,
                 token: Annotated[str, Header(alias="X-Queue-Token", max_length=2000)] = ""
                 ) -> StatusRead:
    """Position, people ahead, estimated wait, and `poll_after_s`: a poll with this ticket before
    then is answered 429 with Retry-After at once (a waiting crowd costs the server little)."""
    wr = room(request)
    return _read(await wr.status(None, await wr.opening(None, opening_id), actor, token))


async def gate(request: Request, db: AsyncSession, actor: Actor, session_id: str,
               people: Sequence[str] | int = 1, idempotency_key: str | None = None) -> Pass:
    """Call before booking (or moving an appointment to) a session: citizens need a live hold
    while an opening governs it. Help-desk staff booking for people without phones are not
    queued, but may not take the places the room keeps for the people it admitted (`people`:
    the reference ids of who is being booked, or how many). The pass says which places the
    booking may take (`may_take`, for the booking service) and the opening it is made under
    (for `used`).

    A booking retried with the `idempotency_key` of one already made (its answer lost, a
    double submit) is let through whatever the room says — its hold was used by the booking
    it repeats — so that the booking service answers it with that booking (or refuses a
    different request under the same key). Only a refusal costs that lookup.

    A citizen's pass claims the hold for this booking (WaitingRoom.gate): the claim is given
    back when the unit of work ends without the hold used (the booking refused or rolled
    back), so the person may try again at once — but not when the commit's outcome is unknown
    (teeka.db.OUTCOME_UNKNOWN: it may have committed); that claim runs out by itself, and the
    retry with the same key replays the booking and uses the hold (`used`)."""
    try:
        if actor.kind == "staff":
            return await room(request).staff_gate(db, session_id, people)
        if not actor.is_citizen:
            return FREE_PASS
        request.state.gate_started = time.monotonic()
        passed = await room(request).gate(
            db, actor, session_id, people if isinstance(people, int) else len(people),
            idempotency_key)
        _give_back_unless_used(request, db, actor, passed)
        return passed
    except errors.DomainError:
        if idempotency_key and await earlier_booking(db, actor.label, idempotency_key):
            return FREE_PASS
        raise


def move_gate(request: Request, db: AsyncSession, actor: Actor) -> MoveGate:
    """The booking gate for people a district moves out of a slot whose capacity it cut
    (teeka.booking.displace.MoveGate): staff moves, like staff bookings, may not take the
    places a waiting room keeps for the people it admitted."""

    async def may_take(session_id: str, reference_id: str) -> Mapping[str, int] | None:
        return (await gate(request, db, actor, session_id, people=[reference_id])).may_take

    return may_take


def _give_back_unless_used(request: Request, db: AsyncSession, actor: Actor,
                           passed: Pass) -> None:
    opening, mark = passed.opening, passed.claim
    if opening is None or mark is None:
        return
    db.info.setdefault(CLAIMS, set()).add(mark)

    async def give_back() -> None:
        if mark not in db.info.get(CLAIMS, ()):
            return  # used by the committed booking (store.use_hold dropped the claim)
        db.info[CLAIMS].discard(mark)
        if db.info.get(OUTCOME_UNKNOWN):
            return  # it may have committed: the claim runs out by itself (CLAIM_S)
        try:
            await room(request).release(opening, actor, mark)
        except Exception as exc:  # the claim ends by itself (surge.service.CLAIM_S)
            log.warning("surge.release.failed", opening=opening.id, error=type(exc).__name__)

    db.info.setdefault(AFTER_END, []).append(give_back)


async def used(request: Request, db: AsyncSession, passed: Pass, actor: Actor,
               *, pools: Sequence[str] | None = None, appointment_ids: Sequence[str] = (),
               replayed: bool = False) -> None:
    """Call after a booking (or a move) made under an opening: once the transaction has
    committed, the hold is used up — the places taken stay taken (`pools`: the pool of each;
    looked up from `appointment_ids` when not given), the rest return. Never before the commit:
    a booking rolled back leaves the hold live, and the room's count never meets a hold used
    for a place the database still shows free (surge.service, "the room follows the
    database").

    Call it for a replayed booking too (`replayed`): one the gate let through as the same
    booking as the one holding the claim (`Pass.twin`) uses the hold — when the first answer
    was lost with its commit's outcome nothing used it; when the first used it, the hold
    knows the booking's key and nothing is counted twice. Any other replay (a booking made
    before this hold, sent again) leaves the hold alone."""
    opening = passed.opening
    if opening is None or (replayed and not passed.twin):
        return
    booked = (list(pools) if pools is not None
              else await appointment_pools(db, appointment_ids))
    wr = room(request)
    started = getattr(request.state, "gate_started", None)

    async def use() -> None:
        if passed.claim is not None:
            db.info.get(CLAIMS, set()).discard(passed.claim)
        try:
            await wr.use_hold(opening, actor, booked, passed.booking)
        except Exception as exc:  # committed: the hold expires unused (the room admits late)
            log.warning("surge.use_hold.failed", opening=opening.id, error=type(exc).__name__)
        if started is not None and time.monotonic() - started > SLOW_BOOKING_S:
            wr.note_busy()  # slow bookings: the waiting room admits more slowly
        else:
            wr.note_done()  # ... in proportion: bookings done in time weigh against stress

    db.info.setdefault(AFTER_COMMIT, []).append(use)
