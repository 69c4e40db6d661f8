"""The waiting room for an opening (docs/surge.md).

* Joining needs a logged-in account; one position per account. Who joins before the opening
  time is shuffled at the opening; after that it is first come, first served.
* The position lives in a signed, expiring token; a status check reads one small record.
* People are admitted in queue order at a set rate (slowed when the backend shows stress), and
  only while places remain: each admission HOLDS as many places as the account has people (1-4)
  for `hold_seconds`. The room never holds more places than the scope has: counted at the
  opening and again about every second while admitting (places taken or given back outside the
  room count); an unused hold returns its places when it expires; a booking made with a hold
  uses it up.
* When every place is held or used and no hold can come back, the room closes and everyone
  still waiting is told at once — on a count made in the closing step, never on an older one.
* While an opening is open, places in its scope are booked (or an appointment moved there) by
  citizens only with a live hold (`gate` before, `use_hold` after); staff (help desks) book
  there only places that no live hold keeps (`staff_gate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka import errors
from teeka.auth.actor import Actor
from teeka.auth.service import citizen_actor
from teeka.booking import repository as booking_repo
from teeka.booking import rules as booking_rules
from teeka.db import busy_on_database_trouble
from teeka.kit import clock, signing
from teeka.models import (
    Appointment,
    Beneficiary,
    BeneficiaryStatus,
    CapacityBucket,
    Centre,
    DoseRecord,
    Opening,
    VaccinationSession,
)
from teeka.models.schedule import Share
from teeka.surge import rules
from teeka.surge.store import BUSY_WINDOW_S, Store, parse_hold

TOKEN_HOURS = 6
OPENINGS_LOCK = 7_370_001  # the advisory lock key creating an opening takes (PostgreSQL)
log = structlog.get_logger()

GATE_VIEW_S = 1.0  # how old a view of the room the booking gate may use
# A hold is usable for `hold_seconds`; its place goes back to the room this much later. A booking
# that passed the gate just before the hold's end may still be waiting for a pooled connection
# or its commit (the pool's timeout, statements, a commit waiting for a standby): were the place
# given to the next person meanwhile, the booking's commit would take a place promised to them.
HOLD_GRACE_S = 30.0
# How long after the end it was told the gate still takes a booking made with a live hold. The
# answer "admitted" says how many seconds are left when the server writes it; the person counts
# from when it reaches them, which on a saturated server or a slow phone network is a second or
# more later, so a booking they send in their last seconds arrives after the end the server
# counted from. Well inside HOLD_GRACE_S: a booking let through at the last moment still has
# the rest of that grace to commit before the place goes back to the room.
LATE_ANSWER_S = 5.0
# How long a booking's claim on its hold lasts at most (store.claim_hold): longer than a booking
# can take from the gate to its commit (a pooled connection, statements, a commit waiting for a
# standby), so that it ends by itself only when the process that made it died.
CLAIM_S = HOLD_GRACE_S
# A claim whose answer was lost (the store timed out) is given back this long after, so that a
# claim still on its way is made first (WaitingRoom._give_back_later).
GIVE_BACK_AFTER_S = 1.0


def _told_end(kept_until: str) -> float:
    """The end of a hold as the person was told it, from the time the store keeps it until."""
    return float(kept_until) - HOLD_GRACE_S
QUICK_VIEW_S = 1.0  # ... and a poll answered from memory (refreshed in the background)
LIST_AGAIN_S = 0.05  # the least time between two reads of the openings for ids not seen yet
OPENINGS_TTL_S = 1.0  # how long a process trusts its list of openings (creation here: at once)
SESSION_CACHE_MAX = 100_000
# How often, while admitting, the room counts the places of its scope again (one sum over the
# scope's buckets: for a statewide opening, tens of thousands of rows; about once a second in
# all, whichever process steps).
RECOUNT_S = 1.0
DAYS_AGAIN_S = 10.0  # how long the room uses its read of an opening's first and last session day
SLOW_STEP_S = 1.0  # a step longer than this is logged (the room is moving slowly)
FULL_ROOM_LOOKUP = 8  # accounts looked up per step while every place is held
NONE_LOOKAHEAD = 200  # accounts beyond the credit that a step may tell nothing is left for them
# Help-desk bookings under an open room are taken one at a time per opening (`staff_gate`):
# the PostgreSQL advisory lock (STAFF_LOCK_CLASS, opening id). Off only in the canary test.
STAFF_ONE_AT_A_TIME = True
STAFF_LOCK_CLASS = 7301


@dataclass(frozen=True)
class OpeningView:
    """What the waiting room needs of an opening (rows never change once created), so each
    process can keep them in memory instead of reading the database on every poll."""

    id: int
    district_id: int | None
    first_day: date
    opens_at: datetime
    hold_seconds: int
    admit_per_second: int
    closed_at: datetime | None = None  # closed by hand (the only change a row ever sees)

    @classmethod
    def of(cls, row: Opening) -> OpeningView:
        return cls(id=row.id, district_id=row.district_id, first_day=row.first_day,
                   opens_at=row.opens_at, hold_seconds=row.hold_seconds,
                   admit_per_second=row.admit_per_second, closed_at=row.closed_at)


@dataclass(frozen=True)
class Pass:
    """What the booking gate lets a booking (or a move) do: the opening it is made under (None:
    none governs it, or staff), and `may_take`: the places it may take, by pool key without its
    release mark (surge.rules.may_take; None: any place its people may book)."""

    opening: OpeningView | None = None
    may_take: dict[str, int] | None = None
    # the mark of this booking's claim on the hold (store.claim_hold; a twin's joins the
    # first's): released when the booking fails, dropped when it has used the hold
    claim: str | None = None
    # the booking's idempotency key, hashed: the hold records which booking used it
    booking: str = ""
    # let through as the same booking as the one holding the claim (a double submit, a retry
    # after an answer lost with its commit's outcome): only such a replay may use the hold
    twin: bool = False


FREE_PASS = Pass()


@dataclass(frozen=True)
class Status:
    # "waiting" | "admitted" | "used" | "expired" | "closed" | "none" (nothing left that the
    # account's people can book, for now: asking again after the room found more places puts
    # them back in line at their own place)
    state: str
    position: int | None  # 1-based place in the queue; None before the draw
    ahead: int | None
    estimated_wait_s: int | None
    hold_expires_in_s: int | None
    token: str
    poll_after_s: int = 5  # come back then; an earlier poll with this ticket gets 429


def _now() -> float:
    return clock.now().timestamp()


def _token(secret: str, opening: int, account: int, index: int, poll_after: int = 0,
           told: int | None = None, waiting: bool = False, state: str | None = None,
           hold_end: float | None = None) -> str:
    extra: dict[str, Any] = {"op": opening, "idx": index,
                             # to the millisecond, never later than said
                             "nb": math.floor((_now() + poll_after) * 1000) / 1000}
    if waiting:  # given to someone still waiting: news (their turn, the close) may come early
        extra["w"] = 1
    elif state is not None:  # what it said, for a page reloaded before its time (read_ticket)
        extra["st"] = state
        if hold_end is not None:
            extra["he"] = int(hold_end)
    if told is not None:  # told `none` when the room had grown this many times
        extra["told"] = told
    return signing.issue_token(secret, subject=str(account), kind="queue", now=clock.now(),
                               ttl=timedelta(hours=TOKEN_HOURS), extra=extra)


def _claims(secret: str, token: str, opening: int, actor: Actor) -> dict[str, Any]:
    """The claims of a valid ticket of this account for this opening (QueueTokenInvalid for a
    forged, expired, or someone else's)."""
    claims = signing.read_token(secret, token or "", kind="queue", now=clock.now())
    if claims is None or claims.get("op") != opening or claims.get("sub") != str(actor.id):
        raise errors.QueueTokenInvalid()
    return claims


def _ticket(secret: str, token: str, opening: int, actor: Actor
            ) -> tuple[int, float, int | None, bool]:
    """A ticket's queue index, how many seconds early it is asked about, the `told` mark of a
    `none` answer, and whether it was given to someone still waiting (only such a ticket may
    bring news before its time: one given with an answer that leaves nothing to wait for —
    admitted, used, expired, closed — would otherwise pass the 429 and the crowd's bound at
    any rate for its six hours)."""
    claims = _claims(secret, token, opening, actor)
    told = claims.get("told")
    return (int(claims["idx"]), float(claims.get("nb", 0)) - _now(),
            told if isinstance(told, int) else None, claims.get("w") == 1)


def read_ticket(secret: str, token: str, opening: int, actor: Actor) -> tuple[int, float]:
    """The queue index in a valid ticket of this account for this opening (-1 before the draw)
    and how many seconds early it is asked about (> 0: before the time the ticket named, `nb`,
    from the last answer's poll_after_s). A forged, expired, or someone else's ticket is
    refused."""
    index, early, _, _ = _ticket(secret, token, opening, actor)
    return index, early


def said(secret: str, token: str, opening: int, actor: Actor) -> Status | None:
    """What a valid ticket's answer said, when it left nothing to wait for (admitted, used,
    expired, closed, none), as that answer, with the hold's time counted down to now — for a
    page reloaded before the ticket's time, which shows it again instead of asking the room.
    None for a waiting ticket, or an admitted one whose hold has ended since."""
    claims = _claims(secret, token, opening, actor)
    state, index = claims.get("st"), int(claims["idx"])
    if state not in ("admitted", "used", "expired", "closed", "none"):
        return None
    left = None
    if state == "admitted":
        left = int(claims.get("he", 0) - _now())
        if left <= 0:
            return None
    position = index + 1 if index >= 0 else None
    early = max(1, int(float(claims.get("nb", 0)) - _now() + 0.999))
    return Status(state, position, 0 if state != "closed" else None, None, left, token, early)


def _still_none(meta: dict[str, str], told: int | None) -> bool:
    """Whether a ticket that said `none` still says it: the room has found no more places
    since (`grown`) and is open. Then the answer needs no lookup."""
    return (told is not None and meta.get("closed") != "1"
            and int(meta.get("grown", 0)) <= told)


def too_early(early: float) -> errors.DomainError:
    """The 429 for a poll `early` seconds before its ticket's time."""
    return errors.RateLimited(seconds=max(1, int(early + 0.999)))


def room_of(scope: Any) -> Any:
    """The waiting room of the application serving this ASGI scope (for the layers before the
    framework), or None."""
    return getattr(getattr(scope.get("app"), "state", None), "waiting_room", None)


async def places_by_pool(session: AsyncSession, opening: OpeningView) -> dict[str, int]:
    """Free places in the opening's scope by kind (rules.pool_key): one grouped sum, over the
    sessions from the opening's first day that are not past (a past session is not bookable:
    counted, its places would be promised, and the room would never close)."""
    # booking.rules.is_released, in SQL (open places are everyone's anyway)
    released = case((and_(CapacityBucket.share != Share.OPEN.value,
                          CapacityBucket.release_at.is_not(None),
                          CapacityBucket.release_at <= clock.now()), 1), else_=0)
    inner = (select(CapacityBucket.dose_kind.label("kind"), CapacityBucket.share.label("share"),
                    VaccinationSession.vaccine_id.label("vaccine"),
                    VaccinationSession.min_age.label("low"),
                    VaccinationSession.max_age.label("high"), released.label("released"),
                    (CapacityBucket.capacity - CapacityBucket.booked).label("free"))
             .join(VaccinationSession, VaccinationSession.id == CapacityBucket.session_id)
             # a centre taken out of service cannot be booked (booking refuses it): its places
             # are not the room's to promise
             .join(Centre, Centre.id == VaccinationSession.centre_id)
             .where(VaccinationSession.date >= max(opening.first_day, clock.today()),
                    Centre.active.is_(True)))
    if opening.district_id is not None:
        inner = inner.where(Centre.district_id == opening.district_id)
    q = inner.subquery()
    rows = await session.execute(
        select(q.c.kind, q.c.share, q.c.vaccine, q.c.low, q.c.high, q.c.released,
               func.sum(q.c.free))
        .group_by(q.c.kind, q.c.share, q.c.vaccine, q.c.low, q.c.high, q.c.released))
    found: dict[str, int] = {}
    for kind, share, vaccine, low, high, rel, free in rows:
        key = rules.pool_key(kind, share, vaccine, low, high, bool(rel))
        found[key] = found.get(key, 0) + max(int(free or 0), 0)
    return found


async def bookable_days(session: AsyncSession, opening: OpeningView) -> tuple[date, date] | None:
    """The first and last day of the sessions in the opening's scope that are not past (None:
    there are none)."""
    query = (select(func.min(VaccinationSession.date), func.max(VaccinationSession.date))
             .join(Centre, Centre.id == VaccinationSession.centre_id)
             .where(VaccinationSession.date >= max(opening.first_day, clock.today()),
                    Centre.active.is_(True)))
    if opening.district_id is not None:
        query = query.where(Centre.district_id == opening.district_id)
    first, last = (await session.execute(query)).one()
    return None if first is None else (first, last)


async def people_needs(session: AsyncSession, first_day: date, column: Any, values: list[Any],
                       *, days: Callable[[], Awaitable[tuple[date, date] | None]] | None = None
                       ) -> dict[Any, list[rules.Need]]:
    """The active beneficiaries whose `column` (their account id, or reference id) is in
    `values`, by that value, in id order: what each can book (the dose due and the vaccine it
    must be, their age in the year of `first_day`, their priority group); someone whose
    schedule is complete is left out, and so, given the scope's bookable `days` (first, last;
    asked only when someone has had a dose), is someone whose next dose may be given on none
    of them (too early after the last dose for every session, or its window already past:
    booking would refuse them, DoseTooEarly / DoseWindowPassed, and a place held for them
    would be a place kept from others). A value with no active beneficiary is missing."""
    rows = (await session.execute(
        select(column, Beneficiary.id, Beneficiary.birth_year, Beneficiary.priority_group,
               DoseRecord.dose_number, DoseRecord.vaccine_id, DoseRecord.administered_at)
        .outerjoin(DoseRecord, DoseRecord.beneficiary_id == Beneficiary.id)
        .where(column.in_(values), Beneficiary.status == BeneficiaryStatus.ACTIVE)
        .order_by(column, Beneficiary.id))).all()
    people: dict[Any, dict[int, tuple[int, str, list[tuple[int, int, date]]]]] = {}
    for key, person, born, group, number, vaccine, given in rows:
        if key is None:
            continue
        known = people.setdefault(key, {})
        if person not in known:
            known[person] = (born, group, [])
        if number is not None:
            known[person][2].append((number, vaccine, given.astimezone(clock.LOCAL_TZ).date()))
    schedule_of = await booking_repo.cached_schedules(
        session, {v for p in people.values() for _b, _g, d in p.values() for _n, v, _d in d})
    out: dict[Any, list[rules.Need]] = {}
    scope_days: tuple[tuple[date, date] | None] | None = None
    for key, persons in people.items():
        needs = out[key] = []
        for born, group, doses in persons.values():
            history = [booking_rules.GivenDose(dose_number=n, vaccine_id=v,
                                               vaccine_code=schedule_of[v].code, day=day)
                       for n, v, day in doses]
            try:
                due = booking_rules.next_dose(history, schedule_of)
            except errors.ScheduleComplete:
                continue
            if days is not None and history:
                if scope_days is None:
                    scope_days = (await days(),)
                if scope_days[0] is not None and not booking_rules.window_meets(
                        history, due, schedule_of, *scope_days[0]):
                    continue
            first = min(history, key=lambda d: d.dose_number) if history else None
            kind = booking_rules.dose_kind(due, schedule_of[first.vaccine_id].doses if first else 1)
            needs.append(rules.Need(kind=kind.value, vaccine_id=first.vaccine_id if first else None,
                                    age=booking_rules.age_on(born, first_day), group=group))
    return out


async def _pools_where(session: AsyncSession, *where: Any, appointments: bool = False
                       ) -> list[str]:
    query = (select(CapacityBucket.dose_kind, CapacityBucket.share, CapacityBucket.release_at,
                    VaccinationSession.vaccine_id, VaccinationSession.min_age,
                    VaccinationSession.max_age)
             .join(VaccinationSession, VaccinationSession.id == CapacityBucket.session_id))
    if appointments:
        query = query.join(Appointment, Appointment.bucket_id == CapacityBucket.id)
    now = clock.now()
    return [rules.pool_key(kind, share, vaccine, low, high, booking_rules.is_released(at, now))
            for kind, share, at, vaccine, low, high in await session.execute(query.where(*where))]


async def session_pools(session: AsyncSession, session_id: str) -> list[str]:
    """The pools of a session's places (rules.pool_key), sorted."""
    return sorted(set(await _pools_where(session, CapacityBucket.session_id == session_id)))


async def appointment_pools(session: AsyncSession, appointment_ids: Sequence[str]) -> list[str]:
    """The pool of the place each appointment holds."""
    if not appointment_ids:
        return []
    return await _pools_where(session, Appointment.id.in_(list(appointment_ids)),
                              appointments=True)


class _DrawLookup(NamedTuple):
    """A fast-path poll by someone who joined before the draw: their place needs the draw's
    record (WaitingRoom.quick_status)."""

    opening: OpeningView
    actor: Actor
    meta: dict[str, str]


def _answer_may_be_lost(exc: BaseException) -> bool:
    """Whether a store call that failed may have been carried out all the same, its answer
    lost: a timeout, a connection cut once the call was sent, the caller cancelled — not a call
    never sent (no connection free in the pool) or refused by the store (a script error, Redis
    busy): giving back after those would only add calls to a store already in trouble."""
    from redis import exceptions as redis_errors

    if isinstance(exc, (asyncio.CancelledError, redis_errors.TimeoutError)):
        return True
    return (isinstance(exc, redis_errors.ConnectionError)
            and "No connection available" not in str(exc))


def _news(meta: dict[str, str], index: int) -> bool:
    """Whether a person at `index` should hear now, even asking early: the room has closed, or
    their turn has come (admission is in queue order: everyone before `next` was admitted)."""
    return meta.get("closed") == "1" or 0 <= index < int(meta.get("next", 0))


class WaitingRoom:
    def __init__(self, store: Store, secret: str, advance_every: float = 0.1,
                 sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.store = store
        # For the few reads the room makes itself (an opening, the places at the draw, the
        # people of the accounts being admitted): a poll or a join needs no unit of work.
        self.sessionmaker = sessionmaker
        self.secret = secret
        self._pending_busy = 0  # signs of stress seen here since the last step
        self._pending_done = 0  # bookings under an opening done in time here since then
        self._recent_busy = 0  # ... both in every process over the last few seconds
        self._recent_done = 0
        self._lately_busy = 0  # signs of stress in every process over the last half minute
        # A poll, join or booking moves the room forward (draw, expiries, admissions) at most
        # every `advance_every` seconds per process; in between it answers from the last state.
        self.advance_every = advance_every
        self._advanced: dict[int, tuple[float, dict[str, str]]] = {}
        # the first and last day of each opening's sessions, and when they were read
        self._days: dict[int, tuple[float, tuple[date, date] | None]] = {}
        # The step under way in this process, per opening (done when it ends, however).
        self._stepping: dict[int, asyncio.Future[None]] = {}
        self._openings: dict[int, OpeningView] = {}
        # the read of every opening from the room's own connections, and when the last began
        self._listing: asyncio.Task[tuple[float, list[OpeningView]]] | None = None
        self._list_read_at = -LIST_AGAIN_S
        self._all_openings: tuple[float, list[OpeningView]] | None = None
        self._reading_openings = False  # a unit of work is reading the list again
        self._sessions: dict[str, tuple[date, int]] = {}  # session id -> (day, district)
        self._refreshing: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()  # claims given back after a failure

    def reset(self, store: Store) -> None:
        """A new store and empty caches (tests, between cases)."""
        self.__init__(store, self.secret, self.advance_every,  # type: ignore[misc]
                      self.sessionmaker)

    @contextlib.asynccontextmanager
    async def _db(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """The caller's session, or a short one of the room's own (read only)."""
        if session is not None:
            yield session
            return
        if self.sessionmaker is None:
            raise RuntimeError("the waiting room needs a session or a sessionmaker")
        async with self.sessionmaker() as own:
            yield own

    async def opening(self, session: AsyncSession | None, opening_id: int) -> OpeningView:
        """The opening `opening_id` (NotFound when there is none).

        With the caller's session (a page's unit of work), read from it. Without one (the
        queue's API, which has no unit of work), an opening this process has not seen yet is
        looked up in the list of every opening, read from the room's own connections: one read
        at a time in this process, each starting at least LIST_AGAIN_S after the last. The
        answer is NotFound only when a list read that began after this request did not have
        it, so an opening just made in another process is never missed; a crowd joining a
        process new to an opening waits for one read; and a flood of made-up ids costs at
        most one small read every LIST_AGAIN_S, not a read each on the connections the room's
        steps need. Trouble getting a connection is Busy (503 + Retry-After), not a 500."""
        found = self._openings.get(opening_id)
        if found is not None:
            return found
        if session is not None:
            row = await session.get(Opening, opening_id)
            if row is None:
                raise errors.NotFound()
            found = self._openings[opening_id] = OpeningView.of(row)
            return found
        asked_at = time.monotonic()
        while True:
            listing = self._listing
            # a read already done is not awaited again: its callback clearing `_listing` runs
            # a turn later, and awaiting a done task yields nothing (the loop would spin)
            if listing is None or listing.done():
                listing = self._listing = asyncio.get_running_loop().create_task(
                    self._read_list())
                listing.add_done_callback(self._listed)
            read_at, views = await asyncio.shield(listing)
            for view in views:
                if view.id == opening_id:
                    found = self._openings.setdefault(opening_id, view)
                    return found
            if read_at >= asked_at:
                raise errors.NotFound()

    async def _read_list(self) -> tuple[float, list[OpeningView]]:
        """Every opening, from the room's own connections (when the read began, the views)."""
        wait = self._list_read_at + LIST_AGAIN_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        before = self._all_openings
        async with busy_on_database_trouble(), self._db(None) as db:
            read_at = self._list_read_at = time.monotonic()
            rows = (await db.execute(select(Opening))).scalars().all()
        return read_at, self._take_list(rows, read_at, before)

    def _take_list(self, rows: Sequence[Opening], read_at: float,
                   before: tuple[float, list[OpeningView]] | None) -> list[OpeningView]:
        """The views of every opening just read (at `read_at`), kept as this process's list
        unless it was emptied since `before` (an opening created here meanwhile)."""
        views = [OpeningView.of(r) for r in rows]
        for view in views:  # a close by hand reaches this process's views too
            if view.id in self._openings:
                self._openings[view.id] = view
        if self._all_openings is before:
            self._all_openings = (read_at, views)
        return views

    def _listed(self, done: asyncio.Task[tuple[float, list[OpeningView]]]) -> None:
        if self._listing is done:  # not a newer read's
            self._listing = None
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone

    async def still_governing(self, session: AsyncSession, district_id: int | None
                              ) -> list[int]:
        """The openings not yet closed whose scope meets that of a new opening for
        `district_id` (None: the whole state): each would govern the same sessions, and the
        gate would ask a person for a hold in one room while the other counted the same places
        (docs/surge.md). Read from the database, not this process's list: another process may
        have created one a moment ago."""
        if session.get_bind().dialect.name == "postgresql":
            # one creation at a time, so that two made at once do not both find none (SQLite
            # has one writer already); held until this transaction ends
            await session.execute(select(func.pg_advisory_xact_lock(OPENINGS_LOCK)))
        query = select(Opening.id).where(Opening.closed_at.is_(None)).order_by(Opening.id)
        if district_id is not None:
            query = query.where((Opening.district_id.is_(None))
                                | (Opening.district_id == district_id))
        found = []
        for oid in (await session.execute(query)).scalars():
            if (await self.store.meta(oid)).get("closed") != "1":
                found.append(oid)
        return found

    async def closed(self, view: OpeningView) -> None:
        """An opening closed by hand has committed (its row's `closed_at`, the durable
        record): bookings in its scope no longer need its holds (within a second in every
        process: the openings are read again that often), and the room's state says it
        closed, so everyone still waiting is told at their next poll, in every process — in
        this one even before their ticket's time, as when the places run out: its view of the
        room is the closed room's state."""
        self._openings[view.id] = view
        self._all_openings = None
        self._advanced.pop(view.id, None)
        await self.store.close(view.id)
        meta = await self.store.meta(view.id)
        if meta.get("closed") == "1":
            self._advanced[view.id] = (_now(), meta)

    def opening_created(self, row: Opening) -> None:
        self._openings[row.id] = OpeningView.of(row)
        self._all_openings = None

    async def _current_openings(self, session: AsyncSession) -> list[OpeningView]:
        """Every opening, read again at most every OPENINGS_TTL_S. One reader at a time: while
        a booking reads the list again, the others in this process take the list it replaces
        (at most a read's time older), instead of each sending the same read at the moment it
        went stale — with fifty bookings in flight, fifty reads a second per process."""
        cached = self._all_openings
        if cached is not None and (self._reading_openings
                                   or time.monotonic() - cached[0] < OPENINGS_TTL_S):
            return cached[1]
        self._reading_openings = True
        try:
            read_at = time.monotonic()
            rows = (await session.execute(select(Opening))).scalars().all()
        finally:
            self._reading_openings = False
        return self._take_list(rows, read_at, cached)

    async def _session_scope(self, session: AsyncSession, session_id: str
                             ) -> tuple[date, int] | None:
        found = self._sessions.get(session_id)
        if found is None:
            row = (await session.execute(
                select(VaccinationSession.date, Centre.district_id)
                .join(Centre, Centre.id == VaccinationSession.centre_id)
                .where(VaccinationSession.id == session_id))).first()
            if row is None:
                return None
            if len(self._sessions) >= SESSION_CACHE_MAX:
                self._sessions.clear()
            found = self._sessions[session_id] = (row[0], int(row[1]))
        return found

    def note_busy(self) -> None:
        """A sign of stress (a 503, a slow booking): admissions slow down, in every process."""
        self._pending_busy += 1

    def note_done(self) -> None:
        """A booking under an opening done in time: weighs against the signs of stress."""
        self._pending_done += 1

    def _rate(self, opening: OpeningView) -> float:
        return rules.effective_rate(float(opening.admit_per_second), self._recent_busy,
                                    self._recent_done, BUSY_WINDOW_S, self._lately_busy)

    async def advance(self, session: AsyncSession | None, opening: OpeningView
                      ) -> dict[str, str]:
        """The room's state, moved forward at most every `advance_every` seconds per process.

        A view is dated when its step began (what it read is at least that old), and a caller
        is answered with a step that began at most `advance_every` before it asked. One step at
        a time per process: who asks while a step is under way waits for it and takes its
        result when it is recent enough, else the next step's, which then began after they
        asked (at most two steps' wait). Polls queued one by one behind a lock would each find
        the last step too old and take another (a convoy of seconds, seen in the benchmark);
        taking the result of any step under way, however old, answered a poll made after the
        opening time with a room not yet opened (a step begun before it, seen in CI)."""
        oid = opening.id
        asked = _now()
        while True:
            last = self._advanced.get(oid)
            if last is not None and asked - self.advance_every <= last[0] <= _now():
                return dict(last[1])
            running = self._stepping.get(oid)
            if running is None:
                break
            await asyncio.wait([running])  # then look again: its view, or take the next step
        running = self._stepping[oid] = asyncio.get_running_loop().create_future()
        began = _now()
        started = time.monotonic()
        try:
            found = await self._advance(session, opening)
            seen = self._advanced.get(oid)
            if seen is None or not (began <= seen[0] and seen[1].get("closed") == "1"):
                # (a view of the room closed by hand after this step began is the newer one)
                self._advanced[oid] = (began, found)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise errors.Busy() from exc  # no database in time for the draw: ask again
        finally:
            del self._stepping[oid]
            running.set_result(None)
        took = time.monotonic() - started
        if took > SLOW_STEP_S:  # for the operators: the room is moving slowly
            log.warning("surge.step.slow", opening=oid, step_s=round(took, 3))
        return dict(found)

    async def _advance(self, session: AsyncSession | None, opening: OpeningView
                       ) -> dict[str, str]:
        """Open the room when it is time (the draw), return expired holds, admit in order, and
        close when every place is used or held and no hold can come back (one atomic step)."""
        now = _now()
        oid = opening.id
        meta = await self.store.meta(oid)
        if opening.closed_at is not None and meta.get("closed") != "1":
            await self.store.close(oid)  # closed by hand; the room's state lost (a restart)
            meta = await self.store.meta(oid)
        if meta.get("opened") != "1":
            if now < opening.opens_at.timestamp() or meta.get("closed") == "1":
                return meta  # not yet, or closed by hand before its time: no draw
            async with self.store.lock(oid):  # the draw, once; the step below counts places
                await self.store.draw(oid, rules.shuffled, {
                    "places": "0", "reserved": "0", "used": "0", "next": "0",
                    "closed": "0", "credit": "1", "counted_at": "0",
                    "credit_at": f"{opening.opens_at.timestamp():.3f}"})
            meta = await self.store.meta(oid)
        seen, done = self._pending_busy, self._pending_done
        self._pending_busy = self._pending_done = 0
        self._recent_busy, self._recent_done, self._lately_busy = await self.store.busy(
            seen, done, time.time())
        rate = self._rate(opening)
        needs: dict[str, list[list[str]]] = {}
        places: dict[str, int] | None = None
        used_seen: int | None = None
        lookahead = 0
        if meta.get("opened") == "1" and meta.get("closed") != "1":
            # Who may be admitted in this step, and what each one's people can book.
            credit = rules.admission_credit(float(meta["credit"]), rate,
                                            now - float(meta["credit_at"]))
            nxt = int(meta["next"])
            # While the last step told people that nothing is left of the kinds they can book
            # (places of some kind gone for good), the people next in line are looked at beyond
            # the admission credit too: who can only book those is told at once (they are given
            # nothing), so that a crowd waiting for places that are gone hears it in minutes, not
            # at the admission rate.
            if int(meta.get("told", 0)) > 0:
                lookahead = NONE_LOOKAHEAD
            batch = await self.store.at(oid, nxt, nxt + int(credit) + lookahead)
            if int(meta.get("back", 0)) > 0:  # people back in line go first (store.recheck)
                batch = await self.store.back(oid, int(credit) + lookahead) + batch
            # Counted again about every second, and always before the room may close: when no
            # hold is live and nothing seems left. The room closes only on a count made in its
            # closing step (store.step), and one made with no hold live is exact (no booking
            # made with a hold can be between its commit and its use).
            closable = (int(meta.get("reserved", 0)) <= int(meta.get("used", 0))
                        and int(meta.get("places", 0)) <= int(meta.get("reserved", 0)))
            recount = closable or now - float(meta.get("counted_at", 0)) >= RECOUNT_S
            if batch or recount:
                try:
                    keys = [k for k in meta.get("pools", "").split(",") if k]
                    async with self._db(session) as db:
                        if recount:
                            # The room follows the database: places taken or given back
                            # outside it (a help desk's booking, a capacity change, a
                            # cancellation) change what it may promise. `used` was read before
                            # the count, and a hold is used only once its booking committed,
                            # so no booking is counted twice (the count can only come out
                            # low, until the next count; the room never closes on it).
                            used = {k: p[2] for k, p in (await self.store.pools(oid)).items()}
                            used_seen = sum(used.values())
                            free = await places_by_pool(db, opening)
                            places = {k: free.get(k, 0) + used.get(k, 0)
                                      for k in set(free) | set(used)}
                            keys = list(places)
                        total = (sum(places.values()) if places is not None
                                 else int(meta["places"]))
                        if total <= int(meta["reserved"]):
                            # Every place held (most of a big opening): only holds expiring in
                            # this step can let anyone in, so look up only the head of the line.
                            batch = batch[:FULL_ROOM_LOOKUP + lookahead]
                        needs = await self._needs(db, opening, batch, keys)
                except (SQLAlchemyError, OSError, TimeoutError) as exc:
                    # No database connection in time: admit nobody in this step (expiries still
                    # happen; the room does not close without a count); the next step tries
                    # again.
                    log.warning("surge.step.no_sizes", opening=oid, error=type(exc).__name__)
        # The stores expire a hold at the time they keep; the gate and the answers use it
        # HOLD_GRACE_S earlier.
        meta = await self.store.step(oid, now, rate, now + opening.hold_seconds + HOLD_GRACE_S,
                                     needs, places, lookahead, used_seen)
        return meta

    async def _needs(self, session: AsyncSession, opening: OpeningView, accounts: list[str],
                     pools: list[str]) -> dict[str, list[list[str]]]:
        """What the people of each account can book when admitted: for each of them (up to
        4), the pools of the places they could take (`people_needs`, rules.candidates).
        Someone with nothing left to book (a schedule complete, no session for their age) is
        left out. An account with nobody registered yet holds one first-dose place of the open
        share (the person they will add, most likely due a first dose)."""
        if not accounts:
            return {}
        async def days() -> tuple[date, date] | None:
            # read again at most every DAYS_AGAIN_S: new sessions are published rarely, and
            # booking checks the dose's day itself
            seen = self._days.get(opening.id)
            if seen is None or not 0 <= _now() - seen[0] < DAYS_AGAIN_S:
                seen = self._days[opening.id] = (_now(), await bookable_days(session, opening))
            return seen[1]

        found = await people_needs(session, opening.first_day, Beneficiary.account_id,
                                   [int(a) for a in accounts], days=days)
        newcomer = rules.candidates(rules.Need(kind="first", vaccine_id=None, age=None,
                                               group="none"), pools)
        out: dict[str, list[list[str]]] = {}
        for account in accounts:
            needs = found.get(int(account))
            if needs is None:
                out[account] = [newcomer] if newcomer else []
                continue
            options = [rules.candidates(n, pools) for n in needs[:4]]
            out[account] = [o for o in options if o]
        return out

    async def join(self, session: AsyncSession | None, opening: OpeningView, actor: Actor
                   ) -> Status:
        if not actor.is_citizen:
            raise errors.Forbidden()
        oid, account = opening.id, str(actor.id)
        meta = await self.advance(session, opening)
        member = await self.store.join(oid, account, _now() >= opening.opens_at.timestamp())
        index = -1 if member == "pre" else int(member)
        return await self._status(session, opening, actor, index, meta)

    async def status(self, session: AsyncSession | None, opening: OpeningView, actor: Actor,
                     token: str) -> Status:
        index, early, told, waiting = _ticket(self.secret, token, opening.id, actor)
        last = self._advanced.get(opening.id)  # the room as this process last saw it
        if early > 0 and (last is None or not (waiting or told is not None)
                          or not _news(last[1], index)):
            # Too early, unless this process already knows there is news: the room has closed
            # (everyone still waiting is told at once), or this person's turn has come.
            raise too_early(early)
        if told is not None and (last is None or not _still_none(last[1], told)):
            # Told `none`, and the room may have found more places since: back in line (at
            # their own place) before the room moves on, so that this step already counts
            # them ahead of everyone behind.
            await self.store.recheck(opening.id, str(actor.id))
        if told is None and last is not None and index >= 0 and _news(last[1], index):
            # This process has seen the turn come (or the room close): both only ever move
            # forward, and what the person holds is in the store, written in the same atomic
            # step. So the answer waits for no step of the room: under load a step takes
            # hundreds of milliseconds, and someone admitted would learn of it that much later
            # (their hold's time running). Waiting people's polls move the room on.
            meta = dict(last[1])
        else:
            meta = await self.advance(session, opening)
        if _still_none(meta, told):
            assert told is not None
            return self._none(opening, actor.id, index, told)
        if index < 0 and meta.get("opened") == "1":  # drawn at the opening
            member = await self.store.member(opening.id, str(actor.id))
            index = -1 if member in (None, "pre") else int(member)
        return await self._status(session, opening, actor, index, meta)

    def _answer(self, opening: OpeningView, account: int, index: int, state: str,
                position: int | None, ahead: int | None, wait: int | None,
                hold: int | None, told: int | None = None) -> Status:
        poll = rules.poll_after_s(state, wait)
        token = _token(self.secret, opening.id, account, index, poll, told,
                       waiting=state == "waiting", state=state,
                       hold_end=None if hold is None else _now() + hold)
        return Status(state, position, ahead, wait, hold, token, poll)

    def _none(self, opening: OpeningView, account: int, index: int, told: int) -> Status:
        """Nothing left of their kind, told when the room had grown `told` times."""
        return self._answer(opening, account, index, "none", index + 1, 0, 0, None, told)

    def _waiting(self, opening: OpeningView, account: int, index: int, meta: dict[str, str]
                 ) -> Status | None:
        """The answer for someone still waiting, which needs no lookup at all (the ticket and
        the room's state); None when a lookup is needed."""
        rate = self._rate(opening)
        if meta.get("opened") != "1" and meta.get("closed") == "1":  # closed before its time
            return self._answer(opening, account, index, "closed", None, None, None, None)
        if meta.get("opened") != "1":
            until = opening.opens_at.timestamp() - _now()
            return self._answer(opening, account, index, "waiting", None, None,
                                rules.estimated_wait_s(0, rate, until), None)
        if 0 <= index and index >= int(meta["next"]) and meta.get("closed") != "1":
            # Admission is in queue order: nobody at or behind `next` holds anything yet.
            ahead = index - int(meta["next"])
            return self._answer(opening, account, index, "waiting", index + 1, ahead,
                                rules.estimated_wait_s(ahead + 1, rate), None)
        return None

    def quick_status_now(self, opening_id: int, bearer: str, ticket: str
                         ) -> Status | errors.DomainError | None:
        """A status poll answered from this process's memory alone, with no I/O at all (two
        signature checks): a poll before the ticket's time (RateLimited), or a person still
        waiting while this process's view of the room is fresh. None: ask `quick_status` (which
        may read the draw's record) or the full route. Synchronous, so that the server's
        protocol can answer with it before a request becomes a task (teeka.web.server)."""
        found = self._quick_status(opening_id, bearer, ticket)
        return None if isinstance(found, _DrawLookup) else found

    async def quick_status(self, opening_id: int, bearer: str, ticket: str
                           ) -> Status | errors.DomainError | None:
        """`quick_status_now`, and for a ticket from before the draw the place the draw gave
        (one Redis read). None: ask the full route."""
        found = self._quick_status(opening_id, bearer, ticket)
        if not isinstance(found, _DrawLookup):
            return found
        member = await self.store.member(opening_id, str(found.actor.id))
        if member is None or member == "pre":
            return None
        return self._waiting(found.opening, found.actor.id, int(member), found.meta)

    def _quick_status(self, opening_id: int, bearer: str, ticket: str
                      ) -> Status | errors.DomainError | _DrawLookup | None:
        known = self._known(opening_id, bearer)
        if known is None:
            return None
        opening, last, actor = known
        try:
            index, early, told, waiting = _ticket(self.secret, ticket, opening_id, actor)
        except errors.DomainError:
            return None
        if early > 0 and told is None:
            # Too early, unless this process knows of news — as the full route answers. With
            # no view here (none yet, or set aside after a hold was used while every place was
            # held: use_hold) that is still the answer: only a poll at its time needs a step.
            return None if last is not None and waiting and _news(last[1], index) \
                else too_early(early)
        if last is None or not self._fresh_enough(opening, last[0], _now()):
            return None
        if told is not None:  # told `none`: the same answer while the room has found no more
            return self._none(opening, actor.id, index, told) if _still_none(last[1], told) \
                else None
        if index < 0 and last[1].get("opened") == "1":
            # Joined before the draw: where did the draw put this person? (one Redis read)
            return _DrawLookup(opening, actor, last[1])
        return self._waiting(opening, actor.id, index, last[1])

    def _known(self, opening_id: int, bearer: str
               ) -> tuple[OpeningView, tuple[float, dict[str, str]] | None, Actor] | None:
        """What the fast paths need from memory: the opening, this process's view of its room
        (None when it has none) and the citizen of the bearer token; None when the opening or
        the citizen is missing."""
        opening = self._openings.get(opening_id)
        actor = citizen_actor(self.secret, bearer)
        if opening is None or actor is None:
            return None
        return opening, self._advanced.get(opening_id), actor

    def has_news(self, opening_id: int, ticket: str, bearer: str) -> bool:
        """Whether a status poll carries a valid ticket of someone with news (turn come, room
        closed) in this process's view, sent by that someone (`bearer`: the citizen token): the
        load shedder lets it through the crowd's bound, so that an admitted person learns it
        even while the crowd is being shed. Someone else's ticket would only be refused by the
        route, after passing that bound."""
        last = self._advanced.get(opening_id)
        if last is None or not ticket:
            return False
        claims = signing.read_token(self.secret, ticket, kind="queue", now=clock.now())
        if claims is None or claims.get("op") != opening_id:
            return False
        index = int(claims.get("idx", -1))
        told = claims.get("told")
        if isinstance(told, int):  # told `none`: news only once the room has found more places
            news = not _still_none(last[1], told)
        elif claims.get("w") != 1:  # given with nothing left to wait for: no news to bring
            return False
        else:
            # news: the turn has come, the room has closed, or the draw has been made (a
            # ticket from before it learns its place once)
            news = _news(last[1], index) or (index < 0 and last[1].get("opened") == "1")
        if not news:
            return False
        actor = citizen_actor(self.secret, bearer)  # only now: news is rare among the crowd
        return actor is not None and str(actor.id) == claims.get("sub")

    def _fresh_enough(self, opening: OpeningView, viewed_at: float, now: float) -> bool:
        """Whether this process's view may answer a poll now: up to QUICK_VIEW_S old. From
        `advance_every` on, one background task moves the room forward meanwhile, so that the
        polls keep being answered from memory instead of queueing for the step."""
        age = now - viewed_at
        if age < 0 or age >= QUICK_VIEW_S:
            return False
        if age >= self.advance_every and opening.id not in self._refreshing:
            task = asyncio.create_task(self._refresh(opening))
            self._refreshing[opening.id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(opening.id, None))
        return True

    async def _refresh(self, opening: OpeningView) -> None:
        try:
            await self.advance(None, opening)
        except Exception as exc:  # the next poll goes the full way and reports it
            log.warning("surge.refresh.failed", opening=opening.id, error=type(exc).__name__)

    async def quick_join(self, opening_id: int, bearer: str) -> Status | None:
        """Joining from this process's memory and one atomic store step (no database): when
        the opening is known here and this process's view of the room is fresh. None: ask the
        full route (joining is idempotent, so asking it again is harmless)."""
        known = self._known(opening_id, bearer)
        if known is None:
            return None
        opening, last, actor = known
        now = _now()
        if last is None or not self._fresh_enough(opening, last[0], now):
            return None
        member = await self.store.join(opening_id, str(actor.id),
                                       now >= opening.opens_at.timestamp())
        return self._waiting(opening, actor.id, -1 if member == "pre" else int(member), last[1])

    async def _status(self, session: AsyncSession | None, opening: OpeningView, actor: Actor,
                      index: int, meta: dict[str, str]) -> Status:
        quick = self._waiting(opening, actor.id, index, meta)
        if quick is not None:
            return quick

        def answer(state: str, position: int | None, ahead: int | None, wait: int | None,
                   hold: int | None) -> Status:
            return self._answer(opening, actor.id, index, state, position, ahead, wait, hold)

        rate = self._rate(opening)
        if index < 0:  # joined, but not in the draw's record (yet)
            return answer("waiting", None, None, rules.estimated_wait_s(0, rate), None)
        # The hold; someone told `none` before the room found more places is put back in line
        # at their own place, ahead of everyone still waiting (store.recheck).
        held, rank = await self.store.recheck(opening.id, str(actor.id))
        if held is not None:
            _, expires, state = parse_hold(held)
            if state == "back" and meta.get("closed") != "1":
                ahead = max(rank, 0)
                return answer("waiting", index + 1, ahead,
                              rules.estimated_wait_s(ahead + 1, rate), None)
            if state == "back":
                return answer("closed", index + 1, None, None, None)
            if state == "none":
                return self._none(opening, actor.id, index, int(expires))
            if state == "live":
                left = _told_end(expires) - _now()
                if left <= 0:  # over for the person; its place goes back at the grace's end
                    return answer("expired", index + 1, 0, 0, None)
                return answer("admitted", index + 1, 0, 0, int(left))
            return answer(state, index + 1, 0, 0, None)
        if meta.get("closed") == "1":
            return answer("closed", index + 1, None, None, None)
        ahead = max(index - int(meta["next"]), 0)
        return answer("waiting", index + 1, ahead, rules.estimated_wait_s(ahead + 1, rate), None)

    async def _governing(self, session: AsyncSession, session_id: str) -> list[OpeningView]:
        """The current openings whose scope holds this session (none without openings, without
        a database read)."""
        openings = await self._current_openings(session)
        if not openings:
            return []
        scope = await self._session_scope(session, session_id)
        if scope is None:
            return []
        day, district = scope
        return [o for o in openings if o.closed_at is None
                and o.first_day <= day and o.district_id in (None, district)]

    async def gate(self, session: AsyncSession, actor: Actor, session_id: str,
                   people: int = 1, key: str | None = None) -> Pass:
        """The opening that governs booking this session now, if any, and the places the
        booking may take; raises when it may not be booked now (before the opening, or without
        a live hold while the room is open), or for more `people` than the hold kept places for
        (HoldTooSmall: the room counts the places a hold keeps, and more taken would be places
        promised to others). The places it may take are those the hold keeps and those nobody's
        hold keeps: a person whose own share is full at the slot they chose would otherwise
        take a place of the open share there that the room keeps for someone else.

        The booking claims the hold until it has used it or failed (`Pass.claim`; the caller
        releases a failed booking's claim with `release`): another booking of the same account
        meanwhile is BookingInProgress, since two at once would each take the places the one
        hold keeps. The same booking sent again (its idempotency `key`, even after the claim ran
        out) passes and joins the claim with a mark of its own (the key makes it wait for the
        first and answer with its booking): if the first fails, the hold stays claimed until
        the twin is done too."""
        for opening in await self._governing(session, session_id):
            # The gate only looks (this process's fresh view, or the room's state in Redis);
            # moving the room forward is left to the polls, so a booking never waits for it.
            last = self._advanced.get(opening.id)
            meta = (last[1] if last is not None and 0 <= _now() - last[0] < GATE_VIEW_S
                    else await self.store.meta(opening.id))
            if meta.get("closed") == "1":
                continue
            if meta.get("opened") != "1":
                if _now() < opening.opens_at.timestamp():
                    raise errors.NotOpenYet(at=opening.opens_at.astimezone(clock.LOCAL_TZ)
                                            .strftime("%d-%m-%Y %H:%M"))
                raise errors.HoldRequired()  # open, the draw is being made: join the queue
            now, mark = _now(), secrets.token_hex(8)
            booking = (hashlib.sha256(key.encode()).hexdigest()[:16] if key
                       else secrets.token_hex(8))
            try:
                held, kept, pools, claimed = await self.store.claim_hold(
                    opening.id, str(actor.id), now=now,
                    live_after=now - LATE_ANSWER_S + HOLD_GRACE_S, people=people, mark=mark,
                    until=now + CLAIM_S, key=booking)
            except BaseException as exc:
                if _answer_may_be_lost(exc):
                    # The store may have made the claim and only its answer been lost: this
                    # booking fails, so its mark goes back (nothing, if it was never made) —
                    # else the person's next try would be BookingInProgress for the claim's
                    # 30 s. Not awaited: with the store in trouble, the answer waits for no
                    # second call.
                    self._give_back_later(opening.id, str(actor.id), mark)
                raise
            if held is None:
                raise errors.HoldRequired()
            size, expires, state = parse_hold(held)
            ended = state != "live" or _told_end(expires) + LATE_ANSWER_S <= now
            if ended or people > size:
                if claimed:  # the store saw the end a rounding later: give the claim back
                    await self.store.release_hold(opening.id, str(actor.id), mark)
                raise errors.HoldRequired() if ended else errors.HoldTooSmall(size=size)
            if claimed == 0:
                raise errors.BookingInProgress()
            return Pass(opening, rules.may_take(kept, pools), mark, booking, twin=claimed == 2)
        return FREE_PASS

    async def staff_gate(self, session: AsyncSession, session_id: str,
                         people: Sequence[str] | int) -> Pass:
        """Staff book without the queue (a help desk, for people without phones), but not the
        places the room keeps: while an opening governing the session is open and holds are
        live, each person booked (`people`: their reference ids, or how many when not known)
        needs a place of a kind they can book at this session beyond the places live holds keep
        of that kind in the scope (PlacesHeld otherwise; someone with no such place at all is
        left to the booking's own answer).

        Such bookings are taken one at a time per opening: on PostgreSQL a transaction lock on
        the opening, held until the booking commits or rolls back, so that the next one counts
        after the last one's place is taken (two at the same moment would both see the one
        spare place, and an admitted person would find it gone). SQLite has one writer and one
        connection: its transactions are already one at a time.

        The pass it returns lets the booking take only such places (surge.rules.spare_places):
        the count above is by kind over the whole scope, and a person whose own share is full
        at this slot would otherwise take a place of another kind that the room keeps."""
        may_take: dict[str, int] | None = None
        for opening in sorted(await self._governing(session, session_id), key=lambda o: o.id):
            meta = await self.store.meta(opening.id)
            if meta.get("opened") != "1" or meta.get("closed") == "1":
                continue
            if int(meta.get("reserved", 0)) - int(meta.get("used", 0)) <= 0:
                continue  # no live hold
            if STAFF_ONE_AT_A_TIME and session.get_bind().dialect.name == "postgresql":
                await session.execute(select(func.pg_advisory_xact_lock(STAFF_LOCK_CLASS,
                                                                        opening.id)))
            mine = await session_pools(session, session_id)
            pools = await self.store.pools(opening.id)
            free = await places_by_pool(session, opening)
            # by unmarked key: holds made before a share's release keep its released places
            all_held = {k: p[1] for k, p in pools.items()}
            spare_here = rules.spare_places(free, all_held)
            held_here = rules.unmarked_sums(all_held)
            held = {k: held_here.get(rules.unmarked(k), 0) for k in mine}
            spare = {k: spare_here.get(rules.unmarked(k), 0) for k in mine}
            if isinstance(people, int):
                need = [mine] * people
            else:
                found = await people_needs(session, opening.first_day,
                                           Beneficiary.reference_id, list(people))
                need = [c for needs in found.values() for n in needs
                        if (c := rules.candidates(n, mine))]
            if rules.assign(spare, held, need)[1]:
                raise errors.PlacesHeld()
            may_take = spare_here if may_take is None else {
                k: min(n, may_take[k]) for k, n in spare_here.items() if k in may_take}
        return Pass(None, may_take)

    def _give_back_later(self, opening: int, account: str, mark: str) -> None:
        async def give_back() -> None:
            # A moment later: a claim still on its way (in a socket's buffer behind a slow
            # script) is then made before it is given back, not after.
            await asyncio.sleep(GIVE_BACK_AFTER_S)
            try:
                await self.store.release_hold(opening, account, mark)
            except Exception as exc:  # the store still in trouble: the claim runs out
                log.warning("claim_not_given_back", opening=opening, error=type(exc).__name__)

        task = asyncio.get_running_loop().create_task(give_back())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def finished(self, wait_s: float) -> None:
        """At shutdown: wait (at most `wait_s` seconds) for claims still to be given back."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=wait_s)

    async def release(self, opening: OpeningView, actor: Actor, mark: str) -> None:
        """A booking that passed the gate failed (refused, rolled back): its claim on the hold
        ends, so the person may try again at once."""
        await self.store.release_hold(opening.id, str(actor.id), mark)

    async def use_hold(self, opening: OpeningView, actor: Actor, booked: list[str],
                       booking: str = "") -> None:
        """A committed booking made with the hold (`booked`: the pool of each place it took;
        `booking`: its key, hashed): the places it used stay taken, the rest return. The same
        booking reported again (a replay) counts nothing twice."""
        await self.store.use_hold(opening.id, str(actor.id), booked, booking=booking)
        last = self._advanced.get(opening.id)
        if last is not None and int(last[1].get("reserved", 0)) >= int(last[1].get("places", 1)):
            # Every place is held: this may have been the last use, and the room may close.
            # The next poll here looks at the room as it is now, so nobody waits for nothing.
            self._advanced.pop(opening.id, None)
