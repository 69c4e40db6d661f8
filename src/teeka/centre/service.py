"""District administration: centres, sessions with slots and capacities."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_centre_admin, access_district
from teeka.auth.actor import Actor
from teeka.booking import displace
from teeka.booking import repository as booking_repo
from teeka.booking.displace import Displaced, MoveGate
from teeka.booking.rules import apportion, split_capacity
from teeka.centre import rules
from teeka.centre.schemas import CapacityChange, CentreCreate, SessionCreate
from teeka.kit import clock, ids
from teeka.models import (
    Block,
    CapacityBucket,
    Centre,
    CentreFee,
    DoseKind,
    SessionSlot,
    Share,
    VaccinationSession,
    Vaccine,
)

MAX_DAYS_AHEAD = 90


async def vaccine_by_code(session: AsyncSession, code: str) -> Vaccine:
    vaccine = (await session.execute(select(Vaccine).where(Vaccine.code == code.upper()))
               ).scalar_one_or_none()
    if vaccine is None:
        raise errors.Invalid(detail="unknown vaccine '{code}'", code=code[:40])
    return vaccine


async def create_centre(session: AsyncSession, *, actor: Actor, data: CentreCreate) -> Centre:
    access_district(actor, data.district_id)
    block = await session.get(Block, data.block_id)
    if block is None or block.district_id != data.district_id:
        raise errors.Invalid(detail="block is not in this district")
    if data.opens_at >= data.closes_at:
        raise errors.Invalid(detail="centre closes before it opens")
    centre = Centre(**data.model_dump(exclude={"fees"}), active=True)
    session.add(centre)
    await session.flush()
    priced: set[int] = set()
    for code, fee in data.fees.items():
        vaccine = await vaccine_by_code(session, code)
        if fee < 0:
            raise errors.Invalid(detail="fee must not be negative")
        if vaccine.id in priced:  # "covishield" and "COVISHIELD": one vaccine, two fees
            raise errors.Invalid(detail="a vaccine's fee is given twice")
        priced.add(vaccine.id)
        session.add(CentreFee(centre_id=centre.id, vaccine_id=vaccine.id, fee=fee))
    await session.flush()
    await log_action(session, actor=actor.label, action="centre.centre.created",
                     object_type="centre", object_id=centre.id)
    return centre


async def publish_session(session: AsyncSession, *, actor: Actor, data: SessionCreate
                          ) -> VaccinationSession:
    """Publish one session: its slots, and in each slot one capacity bucket per dose kind and
    priority share (docs/booking-and-capacity.md)."""
    await access_centre_admin(session, actor, data.centre_id)
    if data.date < clock.today():
        raise errors.SessionPast()
    if data.date > clock.today() + timedelta(days=MAX_DAYS_AHEAD):
        raise errors.Invalid(detail="sessions can be published at most {days} days ahead",
                             days=MAX_DAYS_AHEAD)
    vaccine = await vaccine_by_code(session, data.vaccine)
    rules.check_age_band(data.min_age, data.max_age)
    labels = [rules.slot_label(*rules.parse_slot(s.label)) for s in data.slots]
    if len(set(labels)) != len(labels):
        raise errors.Invalid(detail="a slot is given twice")
    shares = rules.parse_shares(";".join(f"{k}:{v}" for k, v in data.shares.items()))
    release_at = None
    if shares and data.share_release_time is not None:
        release_at = clock.local_datetime(data.date, data.share_release_time.hour,
                                          data.share_release_time.minute)
    vs = VaccinationSession(id=ids.new_uuid(), centre_id=data.centre_id, date=data.date,
                            vaccine_id=vaccine.id, min_age=data.min_age, max_age=data.max_age,
                            walkin_allowance=data.walkin_allowance, walkins_used=0,
                            created_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(vs)
            await session.flush()
    except IntegrityError as exc:
        raise errors.Invalid(detail="this centre already has a session for that day, "
                                    "vaccine and age band") from exc
    for ordinal, (label, spec) in enumerate(zip(labels, data.slots, strict=True)):
        slot = SessionSlot(session_id=vs.id, label=label, ordinal=ordinal)
        session.add(slot)
        await session.flush()
        for kind, total in ((DoseKind.FIRST, spec.dose1), (DoseKind.SECOND, spec.dose2),
                            (DoseKind.PRECAUTION, spec.precaution)):
            if total == 0:
                continue
            for share, capacity in split_capacity(total, shares).items():
                session.add(CapacityBucket(
                    slot_id=slot.id, session_id=vs.id, dose_kind=kind, share=share,
                    capacity=capacity, booked=0,
                    release_at=None if share == Share.OPEN else release_at))
    await session.flush()
    session.info["capacity_changed"] = True
    await log_action(session, actor=actor.label, action="centre.session.published",
                     object_type="session", object_id=vs.id, slots=len(labels))
    return vs


async def change_slot_capacity(session: AsyncSession, *, actor: Actor, slot_id: int,
                               change: CapacityChange, gate: MoveGate | None = None
                               ) -> Displaced:
    """Set a slot's capacity for one dose kind, spread over its shares as they were split.

    When a share would fall below what is already booked in it: refused (nothing changes),
    unless `change.move_affected` — then the people booked last in it are moved to the best
    place they can book nearby and told, or cancelled and told when there is none
    (teeka.booking.displace; `gate`: the booking gate for staff under a waiting room)."""
    slot = await session.get(SessionSlot, slot_id)
    if slot is None:
        raise errors.NotFound()
    vs = await session.get(VaccinationSession, slot.session_id)
    assert vs is not None
    await access_centre_admin(session, actor, vs.centre_id)
    ids_ = list((await session.execute(
        select(CapacityBucket.id).where(CapacityBucket.slot_id == slot_id,
                                        CapacityBucket.dose_kind == change.dose_kind)
    )).scalars())
    if not ids_:
        raise errors.Invalid(detail="this slot has no places for that dose")
    # Locked before the counts are read: a booking, cancellation or move of these places waits
    # for this change, and the counts below stay true until it commits.
    buckets = await displace.lock_buckets(session, ids_)
    old_total = sum(b.capacity for b in buckets)
    if len(buckets) == 1:
        targets = {Share(buckets[0].share): change.capacity}
    else:
        weights = {Share(b.share): float(b.capacity) for b in buckets}
        if not old_total:  # closed at 0: the split is the session's other places'
            weights = await _split_of_session(session, vs.id, weights)
        targets = apportion(change.capacity, weights)
    booked = sum(b.booked for b in buckets)
    leaving = {b.id: b.booked - targets[Share(b.share)] for b in buckets
               if b.booked > targets[Share(b.share)]}
    done = Displaced()
    if leaving:
        if not change.move_affected:
            raise errors.CapacityBelowBooked(booked=booked)
        # A place whose dose is given stays used: only people still to come can move.
        given = await displace.doses_given(session, list(leaving))
        if any(given.get(b.id, 0) > targets[Share(b.share)] for b in buckets):
            raise errors.CapacityBelowBooked(booked=booked)
        if vs.date < clock.today():
            raise errors.SessionPast()
        done = await displace.make_room(session, actor=actor, slot=slot, vs=vs,
                                        kind=change.dose_kind, leaving=leaving, gate=gate)
    for bucket in buckets:
        if not await booking_repo.set_capacity(session, bucket.id, targets[Share(bucket.share)]):
            raise errors.CapacityBelowBooked(booked=booked)
    await log_action(session, actor=actor.label, action="centre.slot.capacity_changed",
                     object_type="slot", object_id=slot_id, dose_kind=change.dose_kind,
                     old=old_total, new=change.capacity, moved=done.moved,
                     cancelled=done.cancelled, not_told=len(done.not_told))
    return done


async def close_session(session: AsyncSession, *, actor: Actor, session_id: str,
                        gate: MoveGate | None = None) -> Displaced:
    """Close a session that cannot go ahead (no vaccine, no staff, the centre shut): every
    place and the walk-in allowance to what is used, and every person booked in it moved to
    the best place they can book elsewhere and told, or cancelled and told
    (teeka.booking.displace). Closing a closed session again changes nothing."""
    vs = await session.get(VaccinationSession, session_id)
    if vs is None:
        raise errors.NotFound()
    await access_centre_admin(session, actor, vs.centre_id)
    if vs.date < clock.today():
        raise errors.SessionPast()
    ids_ = list((await session.execute(
        select(CapacityBucket.id).where(CapacityBucket.session_id == vs.id))).scalars())
    buckets = await displace.lock_buckets(session, ids_)
    # A place whose dose is given stays used; everyone still to come leaves.
    given = await displace.doses_given(session, [b.id for b in buckets if b.booked])
    done = Displaced()
    groups: dict[tuple[int, str], dict[int, int]] = {}
    for b in buckets:
        if b.booked > given.get(b.id, 0):
            groups.setdefault((b.slot_id, b.dose_kind), {})[b.id] = b.booked - given.get(b.id, 0)
    for (slot_id, kind), leaving in sorted(groups.items()):
        slot = await session.get(SessionSlot, slot_id)
        assert slot is not None
        one = await displace.make_room(session, actor=actor, slot=slot, vs=vs, kind=kind,
                                       leaving=leaving, gate=gate, whole_session=True)
        done.add(one)
    for bucket in buckets:
        if not await booking_repo.set_capacity(session, bucket.id, given.get(bucket.id, 0)):
            raise errors.Busy()  # cannot be: the places are locked and everyone left
    # In SQL, not from the row read above: a walk-in recorded meanwhile counts.
    await session.execute(
        update(VaccinationSession).where(VaccinationSession.id == vs.id)
        .values(walkin_allowance=VaccinationSession.walkins_used)
        .execution_options(synchronize_session=False))
    await log_action(session, actor=actor.label, action="centre.session.closed",
                     object_type="session", object_id=vs.id, moved=done.moved,
                     cancelled=done.cancelled, not_told=len(done.not_told))
    return done


async def _split_of_session(session: AsyncSession, session_id: str,
                            shares: dict[Share, float]) -> dict[Share, float]:
    """The weights to split a slot's places over `shares` when all of them were set to 0:
    a session's places are split by the same shares in every slot and dose kind
    (publish_session), so the largest other group of the session's buckets with these shares
    and places still in them; when there is none, equal parts (every share keeps a part)."""
    groups: dict[tuple[int, str], dict[Share, float]] = {}
    for slot_id, kind, share, capacity in (await session.execute(
            select(CapacityBucket.slot_id, CapacityBucket.dose_kind, CapacityBucket.share,
                   CapacityBucket.capacity).where(CapacityBucket.session_id == session_id))):
        groups.setdefault((slot_id, kind), {})[Share(share)] = float(capacity)
    found = [g for g in groups.values() if set(g) == set(shares) and sum(g.values()) > 0]
    if not found:
        return dict.fromkeys(shares, 1.0)
    return max(found, key=lambda g: sum(g.values()))
