"""The waiting room for an opening (docs/surge.md).

* Joining needs a logged-in account; one position per account. Who joins before the opening
  time is shuffled at the opening; after that it is first come, first served.
* The position lives in a signed, expiring token; a status check reads one small record.
* People are admitted in queue order at a set rate (slowed when the backend shows stress), and
  only while places remain: each admission HOLDS as many places as the account has people (1-4)
  for `hold_seconds`. The room never holds more places than the scope had when it opened; an
  unused hold returns its places when it expires; a booking made with a hold uses it up.
* When every place is held or used and no hold can come back, the room closes and everyone
  still waiting is told at once.
* While an opening is open, places in its scope are booked only with a live hold
  (`check_hold` before booking, `use_hold` after).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.kit import clock, signing
from teeka.models import (
    Beneficiary,
    BeneficiaryStatus,
    CapacityBucket,
    Centre,
    Opening,
    VaccinationSession,
)
from teeka.surge import rules
from teeka.surge.store import Store

TOKEN_HOURS = 6


@dataclass(frozen=True)
class Status:
    state: str  # "waiting" | "admitted" | "used" | "expired" | "closed"
    position: int | None  # 1-based place in the queue; None before the draw
    ahead: int | None
    estimated_wait_s: int | None
    hold_expires_in_s: int | None
    token: str


def _now() -> float:
    return clock.now().timestamp()


def _token(secret: str, opening: int, account: int, index: int) -> str:
    return signing.issue_token(secret, subject=str(account), kind="queue", now=clock.now(),
                               ttl=timedelta(hours=TOKEN_HOURS),
                               extra={"op": opening, "idx": index})


def read_token(secret: str, token: str, opening: int, actor: Actor) -> int:
    """The queue index in a valid token of this account for this opening; -1 before the draw.
    A forged, expired, or someone else's token is refused."""
    claims = signing.read_token(secret, token or "", kind="queue", now=clock.now())
    if claims is None or claims.get("op") != opening or claims.get("sub") != str(actor.id):
        raise errors.QueueTokenInvalid()
    return int(claims["idx"])


async def places_in_scope(session: AsyncSession, opening: Opening) -> int:
    query = (select(func.coalesce(func.sum(CapacityBucket.capacity - CapacityBucket.booked), 0))
             .join(VaccinationSession, VaccinationSession.id == CapacityBucket.session_id)
             .where(VaccinationSession.date >= opening.first_day))
    if opening.district_id is not None:
        query = query.join(Centre, Centre.id == VaccinationSession.centre_id).where(
            Centre.district_id == opening.district_id)
    return int((await session.execute(query)).scalar_one())


class WaitingRoom:
    def __init__(self, store: Store, secret: str) -> None:
        self.store = store
        self.secret = secret
        self.busy_marks: list[float] = []  # recent 503s seen by this process

    def note_busy(self) -> None:
        now = time.monotonic()
        self.busy_marks = [t for t in self.busy_marks if now - t < 5] + [now]

    def _rate(self, opening: Opening) -> float:
        now = time.monotonic()
        recent = sum(1 for t in self.busy_marks if now - t < 5)
        return rules.effective_rate(float(opening.admit_per_second), recent)

    async def advance(self, session: AsyncSession, opening: Opening) -> dict[str, str]:
        """Open the room when it is time (the draw), return expired holds, admit in order."""
        now = _now()
        oid = opening.id
        async with self.store.lock(oid):
            meta = await self.store.meta(oid)
            if meta.get("opened") != "1":
                if now < opening.opens_at.timestamp():
                    return meta
                places = await places_in_scope(session, opening)
                drawn = rules.shuffled(await self.store.take_pre(oid))
                start = await self.store.length(oid)
                await self.store.push(oid, drawn)
                for i, entry in enumerate(drawn):
                    await self.store.set_member(oid, entry.split(":")[0], str(start + i))
                meta = {"opened": "1", "places": str(places), "reserved": "0", "used": "0",
                        "next": "0", "closed": "0"}
            if meta.get("closed") == "1":
                await self.store.set_meta(oid, meta)
                return meta
            reserved = int(meta["reserved"])
            for account in await self.store.expired_holds(oid, now):
                held_size, _, state = (await self.store.hold(oid, account) or "0:0:live").split(":")
                if state == "live":
                    reserved -= int(held_size)
                    await self.store.set_hold(oid, account, f"{held_size}:0:expired", None)
            nxt, places = int(meta["next"]), int(meta["places"])
            allowed = rules.admissions_allowed(self._rate(opening),
                                               now - opening.opens_at.timestamp())
            length = await self.store.length(oid)
            batch = await self.store.at(oid, nxt, min(length, allowed))
            for entry in batch:  # "account:size" (size = people on the account, taken at joining)
                account, size = entry.split(":")[0], int(entry.split(":")[1])
                if reserved + size > places:
                    break
                reserved += size
                await self.store.set_hold(oid, account,
                                          f"{size}:{now + opening.hold_seconds:.3f}:live",
                                          now + opening.hold_seconds)
                nxt += 1
            meta.update(reserved=str(reserved), next=str(nxt))
            # Closed: every place is held or used, and no hold is left that could come back.
            if reserved >= places and await self.store.live_holds(oid) == 0:
                meta["closed"] = "1"
            await self.store.set_meta(oid, meta)
            return meta

    async def _size(self, session: AsyncSession, account_id: int) -> int:
        n = (await session.execute(select(func.count()).select_from(Beneficiary).where(
            Beneficiary.account_id == account_id,
            Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one()
        return min(max(int(n), 1), 4)

    async def join(self, session: AsyncSession, opening: Opening, actor: Actor) -> Status:
        if not actor.is_citizen:
            raise errors.Forbidden()
        oid, account = opening.id, str(actor.id)
        meta = await self.advance(session, opening)
        size = await self._size(session, actor.id)
        async with self.store.lock(oid):
            member = await self.store.member(oid, account)
            if member is None:
                if (await self.store.meta(oid)).get("opened") == "1":
                    index = await self.store.push(oid, [f"{account}:{size}"]) - 1
                    member = str(index)
                else:
                    await self.store.add_pre(oid, f"{account}:{size}")
                    member = "pre"
                await self.store.set_member(oid, account, member)
        index = -1 if member == "pre" else int(member)
        return await self._status(session, opening, actor, index, meta)

    async def status(self, session: AsyncSession, opening: Opening, actor: Actor,
                     token: str) -> Status:
        index = read_token(self.secret, token, opening.id, actor)
        meta = await self.advance(session, opening)
        if index < 0 and meta.get("opened") == "1":  # drawn at the opening
            member = await self.store.member(opening.id, str(actor.id))
            index = -1 if member in (None, "pre") else int(member)
        return await self._status(session, opening, actor, index, meta)

    async def _status(self, session: AsyncSession, opening: Opening, actor: Actor, index: int,
                      meta: dict[str, str]) -> Status:
        token = _token(self.secret, opening.id, actor.id, index)
        rate = self._rate(opening)
        if meta.get("opened") != "1" or index < 0:
            until = opening.opens_at.timestamp() - _now()
            return Status("waiting", None, None, rules.estimated_wait_s(0, rate, until), None,
                          token)
        held = await self.store.hold(opening.id, str(actor.id))
        if held is not None:
            _, expires, state = held.split(":")
            if state == "live":
                return Status("admitted", index + 1, 0, 0,
                              max(0, int(float(expires) - _now())), token)
            return Status(state, index + 1, 0, 0, None, token)
        if meta.get("closed") == "1":
            return Status("closed", index + 1, None, None, None, token)
        ahead = max(index - int(meta["next"]), 0)
        return Status("waiting", index + 1, ahead, rules.estimated_wait_s(ahead + 1, rate), None,
                      token)

    async def gate(self, session: AsyncSession, actor: Actor, session_id: str) -> Opening | None:
        """The opening that governs booking this session now, if any; raises when it may not be
        booked now (before the opening, or without a live hold while the room is open)."""
        vs = await session.get(VaccinationSession, session_id)
        if vs is None:
            return None
        centre = await session.get(Centre, vs.centre_id)
        assert centre is not None
        openings = (await session.execute(select(Opening).where(
            Opening.first_day <= vs.date,
            (Opening.district_id.is_(None)) | (Opening.district_id == centre.district_id))
        )).scalars().all()
        for opening in openings:
            meta = await self.advance(session, opening)
            if meta.get("opened") != "1":
                raise errors.NotOpenYet(at=opening.opens_at.astimezone(clock.LOCAL_TZ)
                                        .strftime("%d-%m-%Y %H:%M"))
            if meta.get("closed") == "1":
                continue
            held = await self.store.hold(opening.id, str(actor.id))
            if held is None or not held.endswith(":live") or float(held.split(":")[1]) <= _now():
                raise errors.HoldRequired()
            return opening
        return None

    async def use_hold(self, opening: Opening, actor: Actor, booked: int) -> None:
        """A booking made with the hold: the places it used stay taken, the rest return."""
        oid, account = opening.id, str(actor.id)
        async with self.store.lock(oid):
            held = await self.store.hold(oid, account)
            if held is None or not held.endswith(":live"):
                return
            size = int(held.split(":")[0])
            meta = await self.store.meta(oid)
            used = min(booked, size)
            meta["reserved"] = str(int(meta["reserved"]) - (size - used))
            meta["used"] = str(int(meta.get("used", "0")) + used)
            await self.store.set_hold(oid, account, f"{size}:0:used", None)
            await self.store.set_meta(oid, meta)
