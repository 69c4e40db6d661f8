"""Queries and THE guarded statements that change capacity counters.

Read docs/booking-and-capacity.md before touching anything here. Every change of
`capacity_bucket.booked` goes through `take_place` / `return_place`, and every change of
capacity through `set_capacity`. Each is one UPDATE whose WHERE clause is the guard: the database
evaluates it on the latest committed row version while holding the row lock, so two
transactions can never both pass it for the same last place.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.booking.rules import BucketView, GivenDose, Schedule
from teeka.booking.schemas import AppointmentRead, SessionAvailability
from teeka.kit import clock
from teeka.kit.clock import LOCAL_TZ
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    AuditEntry,
    Beneficiary,
    BeneficiaryStatus,
    Booking,
    CapacityBucket,
    Centre,
    DoseRecord,
    OutboxMessage,
    SessionSlot,
    VaccinationSession,
    Vaccine,
    VaccineInterval,
)
from teeka.models.schedule import Share

# Set to False only by the canary test, to show that the race is real without the guard.
GUARD_ENABLED = True

# The hot path uses Core statements on the tables (no ORM identity map, no unit-of-work flush).
_bucket = cast(Table, CapacityBucket.__table__)
_appointment = cast(Table, Appointment.__table__)
_booking = cast(Table, Booking.__table__)
_audit = cast(Table, AuditEntry.__table__)
_outbox = cast(Table, OutboxMessage.__table__)


async def _run(session: AsyncSession, statement: Any, params: Any = None
               ) -> CursorResult[*tuple[Any, ...]]:
    """Execute a Core statement on the session's connection (its transaction), without the
    ORM's execution path."""
    conn = await session.connection()
    result: CursorResult[*tuple[Any, ...]] = await conn.execute(statement, params)
    return result


_TAKE = (update(_bucket)
         .where(_bucket.c.id == bindparam("bucket_id"), _bucket.c.booked < _bucket.c.capacity)
         .values(booked=_bucket.c.booked + 1))
_RETURN = (update(_bucket)
           .where(_bucket.c.id == bindparam("bucket_id"), _bucket.c.booked > 0)
           .values(booked=_bucket.c.booked - 1))


async def take_place(session: AsyncSession, bucket_id: int) -> bool:
    """Take one place from a bucket if one is free. True when taken."""
    session.info["capacity_changed"] = True
    if not GUARD_ENABLED:
        return await _take_place_unguarded(session, bucket_id)
    result = await _run(session, _TAKE, {"bucket_id": bucket_id})
    return result.rowcount == 1


async def _take_place_unguarded(session: AsyncSession, bucket_id: int) -> bool:
    """The classic read-check-write race, kept only for the canary test."""
    row = (await session.execute(select(CapacityBucket.booked, CapacityBucket.capacity)
                                 .where(CapacityBucket.id == bucket_id))).one()
    if row.booked >= row.capacity:
        return False
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_sleep(0.02)"))  # widen the window
    await session.execute(update(CapacityBucket).where(CapacityBucket.id == bucket_id)
                          .values(booked=row.booked + 1)
                          .execution_options(synchronize_session=False))
    return True


async def return_place(session: AsyncSession, bucket_id: int) -> None:
    """Give one place back. A counter that would go negative is a bug: fail loudly."""
    session.info["capacity_changed"] = True
    result = await _run(session, _RETURN, {"bucket_id": bucket_id})
    if result.rowcount != 1:
        raise RuntimeError(f"capacity bucket {bucket_id} would go negative")


async def cancel_booked(session: AsyncSession, appointment_id: str) -> int | None:
    """Cancel an appointment if it is still booked and give its place back: the place the row
    holds when it is cancelled (RETURNING), not one read before (a move committed in between
    has already given that one back). Its bucket's id; None when it was not booked."""
    bucket_id: int | None = (await session.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id, Appointment.status == AppointmentStatus.BOOKED)
        .values(status=AppointmentStatus.CANCELLED, updated_at=clock.now())
        .returning(Appointment.bucket_id)
        .execution_options(synchronize_session=False))).scalar_one_or_none()
    if bucket_id is not None:
        await return_place(session, bucket_id)
    return bucket_id


async def set_capacity(session: AsyncSession, bucket_id: int, capacity: int) -> bool:
    """Change a bucket's capacity unless that would put it below what is booked."""
    session.info["capacity_changed"] = True
    result = await session.execute(
        update(CapacityBucket)
        .where(CapacityBucket.id == bucket_id, CapacityBucket.booked <= capacity)
        .values(capacity=capacity)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the booking request
# Few round trips (docs/booking-and-capacity.md, "Booking"): the idempotency key is claimed
# by one INSERT ... ON CONFLICT DO NOTHING (no savepoint; the same SQL on both engines), and
# the place with its buckets comes in one query with the people, their account, dose history
# and active appointment. The statements are built once, with bound parameters.


def _claim_statements() -> dict[str, Insert]:
    from sqlalchemy.dialects import postgresql, sqlite

    key = [_booking.c.actor, _booking.c.idempotency_key]
    return {
        "postgresql": postgresql.insert(_booking).on_conflict_do_nothing(index_elements=key)
        .returning(_booking.c.id),
        "sqlite": sqlite.insert(_booking).on_conflict_do_nothing(index_elements=key)
        .returning(_booking.c.id),
    }


_CLAIM = _claim_statements()


async def claim_key(session: AsyncSession, *, actor: str, key: str, request_hash: str,
                    confirmation_no: str, now: datetime) -> int | None:
    """Insert the booking row that owns (actor, key); its id, or None when the key is taken.

    On PostgreSQL a concurrent twin's uncommitted row makes this wait until the twin ends: it
    then inserts (the twin rolled back) or returns None (the twin committed: replay it)."""
    stmt = _CLAIM[session.get_bind().dialect.name]
    found = await _run(session, stmt, {
        "confirmation_no": confirmation_no, "actor": actor, "idempotency_key": key,
        "request_hash": request_hash, "created_at": now})
    booking_id = found.scalar_one_or_none()
    return None if booking_id is None else int(booking_id)


@dataclass(frozen=True)
class EarlierBooking:
    confirmation_no: str
    request_hash: str
    appointment_ids: list[str]


_EARLIER = (select(_booking.c.confirmation_no, _booking.c.request_hash, _appointment.c.id)
            .outerjoin(_appointment, _appointment.c.booking_id == _booking.c.id)
            .where(_booking.c.actor == bindparam("actor"),
                   _booking.c.idempotency_key == bindparam("key"))
            .order_by(_appointment.c.created_at, _appointment.c.id))


async def earlier_booking(session: AsyncSession, actor: str, key: str) -> EarlierBooking | None:
    """The committed booking that owns (actor, key) and its appointments, in booking order."""
    rows = (await _run(session, _EARLIER, {"actor": actor, "key": key})).all()
    if not rows:
        return None
    return EarlierBooking(confirmation_no=rows[0][0], request_hash=rows[0][1],
                          appointment_ids=[r[2] for r in rows if r[2] is not None])


@dataclass(frozen=True)
class PlaceView:
    """A bookable place: session, slot and centre, with the slot's buckets by dose kind (a
    snapshot that only orders the attempts: the guarded UPDATE decides)."""

    session_id: str
    date: date
    vaccine_id: int
    min_age: int
    max_age: int | None
    slot_id: int
    slot_label: str
    centre_name_en: str
    district_id: int
    buckets: dict[str, list[BucketView]]


@dataclass
class PersonView:
    """An active beneficiary as booking needs them: their account (for the SMS), the doses
    they were given (dose number, vaccine id, local day) and their active appointment."""

    id: int
    reference_id: str
    account_id: int | None
    name: str
    birth_year: int
    priority_group: str
    mobile: str | None
    language: str | None
    doses: list[tuple[int, int, date]]
    active_appointment_id: str | None


_PLACE = (select(VaccinationSession.date.label("p_date"),
                 VaccinationSession.vaccine_id.label("p_vaccine"),
                 VaccinationSession.min_age.label("p_min_age"),
                 VaccinationSession.max_age.label("p_max_age"), SessionSlot.id.label("p_slot"),
                 Centre.name_en.label("p_centre"), Centre.active.label("p_active"),
                 Centre.district_id.label("p_district"),
                 _bucket.c.id.label("b_id"), _bucket.c.dose_kind.label("b_kind"),
                 _bucket.c.share.label("b_share"), _bucket.c.capacity.label("b_capacity"),
                 _bucket.c.booked.label("b_booked"), _bucket.c.release_at.label("b_release"))
          .join(SessionSlot, SessionSlot.session_id == VaccinationSession.id)
          .join(Centre, Centre.id == VaccinationSession.centre_id)
          .outerjoin(_bucket, _bucket.c.slot_id == SessionSlot.id)
          .where(VaccinationSession.id == bindparam("session_id"),
                 SessionSlot.label == bindparam("label"))
          .subquery("place"))


def _people(*, lock: bool) -> Any:
    """The people of a booking with their account, doses and active appointment. `lock`: their
    rows locked (FOR NO KEY UPDATE OF beneficiary, as a walk-in locks its person first), so a
    walk-in of one of them waits until this booking ends and then sees its appointment."""
    query = (select(Beneficiary.id.label("q_id"), Beneficiary.reference_id.label("q_ref"),
                    Beneficiary.account_id.label("q_account"), Beneficiary.name.label("q_name"),
                    Beneficiary.birth_year.label("q_birth_year"),
                    Beneficiary.priority_group.label("q_group"), Account.mobile.label("q_mobile"),
                    Account.language.label("q_language"), DoseRecord.dose_number.label("d_number"),
                    DoseRecord.vaccine_id.label("d_vaccine"),
                    DoseRecord.administered_at.label("d_at"), _appointment.c.id.label("q_active"))
             .outerjoin(Account, Account.id == Beneficiary.account_id)
             .outerjoin(DoseRecord, DoseRecord.beneficiary_id == Beneficiary.id)
             .outerjoin(_appointment, and_(
                 _appointment.c.beneficiary_id == Beneficiary.id,
                 _appointment.c.status == AppointmentStatus.BOOKED.value))
             .where(Beneficiary.reference_id.in_(bindparam("refs", expanding=True)),
                    Beneficiary.status == BeneficiaryStatus.ACTIVE.value))
    if lock:  # in id order, as every other path that locks several people
        query = query.order_by(Beneficiary.id).with_for_update(key_share=True, of=Beneficiary)
    return query.subquery("people")


def _place_and_people(people: Any) -> Select[Any]:
    """The place's rows (one per bucket) times the people's rows (one per dose given): a
    handful."""
    return (select(_PLACE, people).select_from(_PLACE.outerjoin(people, true()))
            .order_by(_PLACE.c.b_id))


# SQLite (whose transactions run one at a time) and a move (which locks its appointment
# first, then reads: locking the person here would order the two locks the other way round
# from record_dose) read without locks.
_PLACE_AND_PEOPLE = _place_and_people(_people(lock=False))


async def place_and_people(session: AsyncSession, session_id: str, slot_label: str,
                           reference_ids: Sequence[str]
                           ) -> tuple[PlaceView | None, dict[str, PersonView]]:
    """In one query: the session's slot at an active centre with its buckets (None when there
    is none), and the active beneficiaries among `reference_ids` with their account, doses and
    active appointment. Whether the actor may reach them is decided by teeka.auth.access."""
    rows = (await _run(session, _PLACE_AND_PEOPLE, {
        "session_id": session_id, "label": slot_label, "refs": list(reference_ids)})).all()
    return _place_from(rows, session_id, slot_label)


def _claim_and_read_statement(*, lock: bool = True) -> Select[Any]:
    from sqlalchemy.dialects import postgresql

    claim = (postgresql.insert(_booking)
             .values({c: bindparam(c, type_=_booking.c[c].type) for c in (
                 "confirmation_no", "actor", "idempotency_key", "request_hash", "created_at")})
             .on_conflict_do_nothing(index_elements=[_booking.c.actor,
                                                     _booking.c.idempotency_key])
             .returning(_booking.c.id).cte("claim"))
    read = _place_and_people(_people(lock=lock)).order_by(None).subquery("found")
    one = select(literal_column("1").label("one")).subquery("one")
    return (select(select(claim.c.id).scalar_subquery().label("claimed"), read)
            .select_from(one.outerjoin(read, true())).order_by(read.c.b_id))


# PostgreSQL: the key claimed and the place and people read in one statement (the INSERT a
# data-modifying WITH clause). The read does not depend on the claim: when the key was taken
# its rows are simply not used (the earlier booking is replayed). The people's rows are locked
# until the booking ends (a walk-in of one of them waits, then sees the appointment); a walk-in
# that held the lock first is seen by the dose guard of _BOOK_PLACE_PG (this read, having
# waited, still shows the doses of before).
_CLAIM_AND_READ_PG = _claim_and_read_statement()


async def claim_and_read(session: AsyncSession, *, actor: str, key: str, request_hash: str,
                         confirmation_no: str, now: datetime, session_id: str,
                         slot_label: str, reference_ids: Sequence[str]
                         ) -> tuple[int | None, PlaceView | None, dict[str, PersonView]]:
    """`claim_key` and then `place_and_people`: on PostgreSQL in one round trip. When the key
    is taken (None) the place and people are not read (SQLite) or not to be used."""
    if session.get_bind().dialect.name != "postgresql":
        booking_id = await claim_key(session, actor=actor, key=key, request_hash=request_hash,
                                     confirmation_no=confirmation_no, now=now)
        if booking_id is None:
            return None, None, {}
        return (booking_id, *await place_and_people(session, session_id, slot_label,
                                                    reference_ids))
    rows = (await _run(session, _CLAIM_AND_READ_PG, {
        "confirmation_no": confirmation_no, "actor": actor, "idempotency_key": key,
        "request_hash": request_hash, "created_at": now, "session_id": session_id,
        "label": slot_label, "refs": list(reference_ids)})).all()
    claimed = rows[0].claimed
    if claimed is None:
        return None, None, {}
    return int(claimed), *_place_from(rows, session_id, slot_label)


def _place_from(rows: Sequence[Any], session_id: str, slot_label: str
                ) -> tuple[PlaceView | None, dict[str, PersonView]]:
    """The place and the people from the rows of _PLACE_AND_PEOPLE."""
    if not rows or not rows[0].p_active:
        return None, {}
    buckets: dict[int, tuple[str, BucketView]] = {}
    found: dict[str, PersonView] = {}
    for r in rows:
        if r.b_id is not None and r.b_id not in buckets:
            buckets[r.b_id] = (r.b_kind, BucketView(id=r.b_id, share=Share(r.b_share),
                                                    capacity=r.b_capacity, booked=r.b_booked,
                                                    release_at=r.b_release))
        if r.q_ref is None:
            continue
        person = found.get(r.q_ref)
        if person is None:
            person = found[r.q_ref] = PersonView(
                id=r.q_id, reference_id=r.q_ref, account_id=r.q_account, name=r.q_name,
                birth_year=r.q_birth_year, priority_group=r.q_group, mobile=r.q_mobile,
                language=r.q_language, doses=[], active_appointment_id=r.q_active)
        if r.d_number is not None:
            dose = (r.d_number, r.d_vaccine, r.d_at.astimezone(LOCAL_TZ).date())
            if dose not in person.doses:
                person.doses.append(dose)
    by_kind: dict[str, list[BucketView]] = {}
    for kind, bucket in buckets.values():
        by_kind.setdefault(kind, []).append(bucket)
    first = rows[0]
    place = PlaceView(session_id=session_id, date=first.p_date, vaccine_id=first.p_vaccine,
                      min_age=first.p_min_age, max_age=first.p_max_age, slot_id=first.p_slot,
                      slot_label=slot_label, centre_name_en=first.p_centre,
                      district_id=first.p_district, buckets=by_kind)
    return place, found


# ---------------------------------------------------------------- taking a place, with its rows
# On PostgreSQL the guarded UPDATE and the rows that a place taken brings (the appointment, its
# audit entry and, once per booking, the SMS) are one statement: data-modifying WITH clauses,
# each INSERT reading the row of the one before, so that nothing is written unless the guard
# let the UPDATE through. Four round trips become one. The statement is text with typed
# parameters (built once from the tables' columns): its cache key does not grow with the rows.
# SQLite has no data-modifying WITH: there the same steps are separate statements.


def _columns(table: Table, prefix: str, skip: Iterable[str] = ()
             ) -> tuple[str, list[str], list[Any]]:
    """`(columns, values, parameters)` of an INSERT ... SELECT of one row of `table`: each
    value a typed parameter named prefix + column (cast, so that PostgreSQL knows its type in
    a SELECT list)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names, values, params = [], [], []
    for column in table.columns:
        if column is table.autoincrement_column or column.name in skip:
            continue
        names.append(column.name)
        values.append(f"CAST(:{prefix}{column.name} AS {column.type.compile(dialect)})")
        params.append(bindparam(f"{prefix}{column.name}", type_=column.type))
    return ", ".join(names), values, params


def _book_place_statement(*, dose_guard: bool = True) -> Any:
    a_names, a_values, a_params = _columns(_appointment, "a_", skip=("bucket_id",))
    e_names, e_values, e_params = _columns(_audit, "e_", skip=("object_id",))
    m_names, m_values, m_params = _columns(_outbox, "m_")
    # Only names from the tables' metadata are put into the text; every value is a parameter.
    # The SMS is written when its first value (the kind) is given.
    # The dose guard: not when the dose was recorded (a walk-in) after the person was read.
    given = ("EXISTS (SELECT 1 FROM dose_record WHERE beneficiary_id = "
             "CAST(:a_beneficiary_id AS INTEGER) AND dose_number = "
             "CAST(:a_dose_number AS INTEGER))") if dose_guard else "false"
    sql = f"""WITH took AS (
    UPDATE capacity_bucket SET booked = booked + 1
    WHERE id = CAST(:bucket_id AS INTEGER) AND booked < capacity AND NOT {given}
    RETURNING id),
made AS (
    INSERT INTO appointment ({a_names}, bucket_id)
    SELECT {", ".join(a_values)}, took.id FROM took RETURNING id),
audited AS (
    INSERT INTO audit_entry ({e_names}, object_id)
    SELECT {", ".join(e_values)}, made.id FROM made),
told AS (
    INSERT INTO outbox_message ({m_names})
    SELECT {", ".join(m_values)} FROM made WHERE {m_values[0]} IS NOT NULL)
SELECT (SELECT count(*) FROM took) AS took, {given} AS given"""  # noqa: S608
    return text(sql).bindparams(*a_params, *e_params, *m_params,
                                bindparam("bucket_id", type_=_bucket.c.id.type))


_BOOK_PLACE_PG = _book_place_statement()
_MESSAGE_COLUMNS = [c.name for c in _outbox.columns if c is not _outbox.autoincrement_column]


async def book_place(session: AsyncSession, appointment: dict[str, Any], audit: dict[str, Any],
                     message: dict[str, Any] | None) -> bool:
    """Take a place in `appointment["bucket_id"]` if one is free and, only then, insert the
    appointment, its audit entry (`audit`, whose object is the appointment; on PostgreSQL taken
    from the row inserted) and `message` (an outbox row; None: none). True when the place was
    taken. An IntegrityError is the appointment's (the person's active appointment made
    meanwhile). Busy when the dose was recorded after the booking read the
    person (a walk-in that locked them first): the retry reads them again and is told why."""
    if not GUARD_ENABLED or session.get_bind().dialect.name != "postgresql":
        if not await take_place(session, appointment["bucket_id"]):
            return False
        await insert_rows(session, [(_appointment, [appointment]), (_audit, [audit]),
                                    (_outbox, [message] if message else [])])
        return True
    session.info["capacity_changed"] = True
    params = {"bucket_id": appointment["bucket_id"]}
    params.update({f"a_{k}": v for k, v in appointment.items() if k != "bucket_id"})
    params.update({f"e_{k}": v for k, v in audit.items() if k != "object_id"})
    params.update({f"m_{k}": None for k in _MESSAGE_COLUMNS})
    params.update({f"m_{k}": v for k, v in (message or {}).items()})
    row = (await _run(session, _BOOK_PLACE_PG, params)).one()
    if row.given:
        raise errors.Busy()
    return bool(row.took)


async def insert_rows(session: AsyncSession, batches: Sequence[tuple[Table, list[dict[str, Any]]]]
                      ) -> None:
    """Insert rows into several tables: one INSERT per table (an executemany for several rows).
    (A Core statement with data-modifying WITH clauses for any number of rows cost more server
    CPU than the round trips it saved: its cache key and parameters grow with the rows. The
    booking's place-and-rows statement, `book_place`, is text for exactly one row.)"""
    for table, rows in batches:
        if rows:
            await _run(session, insert(table), rows if len(rows) > 1 else rows[0])


async def schedules(session: AsyncSession) -> dict[int, Schedule]:
    vaccines = (await session.execute(select(Vaccine))).scalars().all()
    intervals = (await session.execute(select(VaccineInterval))).scalars().all()
    return {
        v.id: Schedule(vaccine_id=v.id, code=v.code, doses=v.doses,
                       intervals={i.dose_number: (i.min_days, i.max_days)
                                  for i in intervals if i.vaccine_id == v.id},
                       precaution_after_days=v.precaution_after_days)
        for v in vaccines
    }


# Vaccine schedules are national data that change rarely (a migration, a data load): the booking
# path keeps them per process and database for SCHEDULE_TTL seconds, and reloads at once when it
# meets a vaccine it does not know. A changed interval reaches every process within the TTL.
SCHEDULE_TTL = 60.0
_schedule_cache: weakref.WeakKeyDictionary[Engine, tuple[float, dict[int, Schedule]]] = (
    weakref.WeakKeyDictionary())


async def cached_schedules(session: AsyncSession, need: Iterable[int] = ()
                           ) -> dict[int, Schedule]:
    """`schedules()`, kept for SCHEDULE_TTL seconds; reloaded when a vaccine in `need` is
    missing (a vaccine added meanwhile) or the copy is older than the TTL."""
    engine = session.get_bind()
    if not isinstance(engine, Engine):  # a session bound to one connection: no cache
        return await schedules(session)
    cached = _schedule_cache.get(engine)
    if (cached is not None and time.monotonic() - cached[0] < SCHEDULE_TTL
            and all(v in cached[1] for v in need)):
        return cached[1]
    fresh = await schedules(session)
    _schedule_cache[engine] = (time.monotonic(), fresh)
    return fresh


def forget_schedules() -> None:
    """Drop every cached copy (after changing vaccines or intervals in this process)."""
    _schedule_cache.clear()


async def dose_history(session: AsyncSession, beneficiary_id: int,
                       schedule_of: dict[int, Schedule]) -> list[GivenDose]:
    from teeka.kit.clock import LOCAL_TZ

    rows = (await session.execute(select(DoseRecord).where(
        DoseRecord.beneficiary_id == beneficiary_id))).scalars().all()
    return [GivenDose(dose_number=r.dose_number, vaccine_id=r.vaccine_id,
                      vaccine_code=schedule_of[r.vaccine_id].code,
                      day=r.administered_at.astimezone(LOCAL_TZ).date()) for r in rows]


async def active_appointment(session: AsyncSession, beneficiary_id: int) -> Appointment | None:
    return (await session.execute(select(Appointment).where(
        Appointment.beneficiary_id == beneficiary_id,
        Appointment.status == AppointmentStatus.BOOKED))).scalar_one_or_none()


async def recount_mismatches(session: AsyncSession) -> Sequence[tuple[int, int, int]]:
    """(bucket id, counter, recount) for every bucket whose counter differs from the number of
    appointments holding a place in it (booked or completed). Empty when all is well (used by
    tests and `teeka check`)."""
    held = (select(Appointment.bucket_id, func.count().label("n"))
            .where(Appointment.status.in_([AppointmentStatus.BOOKED,
                                           AppointmentStatus.COMPLETED]))
            .group_by(Appointment.bucket_id).subquery())
    rows = await session.execute(
        select(CapacityBucket.id, CapacityBucket.booked, func.coalesce(held.c.n, 0))
        .outerjoin(held, held.c.bucket_id == CapacityBucket.id)
        .where(CapacityBucket.booked != func.coalesce(held.c.n, 0)))
    return [(r[0], r[1], r[2]) for r in rows]


# ---------------------------------------------------------------- read side

_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")

async def bucket_totals(session: AsyncSession, session_ids: list[str]
                        ) -> dict[str, dict[str, int]]:
    """Free places per session and dose kind (read side; never used to decide a booking)."""
    rows = await session.execute(
        select(CapacityBucket.session_id, CapacityBucket.dose_kind,
               func.sum(CapacityBucket.capacity - CapacityBucket.booked))
        .where(CapacityBucket.session_id.in_(session_ids))
        .group_by(CapacityBucket.session_id, CapacityBucket.dose_kind))
    out: dict[str, dict[str, int]] = {}
    for sid, kind, free in rows:
        out.setdefault(sid, {})[kind] = max(int(free or 0), 0)
    return out


def in_scope(query: _Q, *, district_id: int | None, pincode: int | None,
             centre_id: int | None) -> _Q:
    """Narrow a query that joins Centre to a district, a PIN code and/or one centre."""
    if district_id is not None:
        query = query.where(Centre.district_id == district_id)
    if pincode is not None:
        query = query.where(Centre.pincode == pincode)
    if centre_id is not None:
        query = query.where(Centre.id == centre_id)
    return query


async def find_sessions(session: AsyncSession, *, district_id: int | None = None,
                        pincode: int | None = None, centre_id: int | None = None,
                        day: date, days: int = 1) -> list[SessionAvailability]:
    query = (select(VaccinationSession, Centre, Vaccine)
             .join(Centre, Centre.id == VaccinationSession.centre_id)
             .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
             .where(Centre.active.is_(True), VaccinationSession.date >= day,
                    VaccinationSession.date < day + timedelta(days=days))
             .order_by(Centre.id, VaccinationSession.date, VaccinationSession.min_age))
    query = in_scope(query, district_id=district_id, pincode=pincode, centre_id=centre_id)
    rows = (await session.execute(query.limit(5000))).all()
    ids = [r[0].id for r in rows]
    if not ids:
        return []
    totals = await bucket_totals(session, ids)
    slots: dict[str, list[str]] = {}
    for sid, label in await session.execute(
            select(SessionSlot.session_id, SessionSlot.label)
            .where(SessionSlot.session_id.in_(ids)).order_by(SessionSlot.ordinal)):
        slots.setdefault(sid, []).append(label)
    out = []
    for vs, centre, vaccine in rows:
        t = totals.get(vs.id, {})
        d1, d2, d3 = t.get("first", 0), t.get("second", 0), t.get("precaution", 0)
        out.append(SessionAvailability(
            session_id=vs.id, centre_id=centre.id, centre_name=centre.name_en,
            centre_name_hi=centre.name_hi, pincode=centre.pincode, district_id=centre.district_id,
            date=vs.date, vaccine=vaccine.code, min_age=vs.min_age, max_age=vs.max_age,
            fee_type=centre.fee_type, slots=slots.get(vs.id, []), available_dose1=d1,
            available_dose2=d2, available_precaution=d3, available=d1 + d2 + d3))
    return out


async def appointment_read(session: AsyncSession, appointment_id: str) -> AppointmentRead:
    row = (await session.execute(
        select(Appointment, Booking, Beneficiary, VaccinationSession, SessionSlot, Centre)
        .join(Booking, Booking.id == Appointment.booking_id)
        .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
        .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
        .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
        .join(Centre, Centre.id == VaccinationSession.centre_id)
        .where(Appointment.id == appointment_id))).one()
    appt, booking, person, vs, slot, centre = row
    return AppointmentRead(appointment_id=appt.id, confirmation_no=booking.confirmation_no,
                           beneficiary_reference_id=person.reference_id, centre_id=centre.id,
                           centre_name=centre.name_en, session_id=vs.id, date=vs.date,
                           slot=slot.label, dose=appt.dose_number, status=appt.status)
