"""The waiting room keeps its promise when places change outside it: a help desk's booking, a
move of an appointment into the opening's scope. The room counts its places again while it
admits, staff may not take the places it keeps for admitted people, and a citizen moves an
appointment into an open room's scope only with a hold (docs/surge.md)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from teeka.i18n import translate
from teeka.kit import clock
from tests.factories import add_beneficiary, bulk_citizens, publish, slot_of
from tests.staff import csrf_of, hidden, register, staff_client
from tests.surge.test_waiting_room import SLOT, book, drawn_store, join, make_opening, status

HELD = ("Every free place here is being kept for people admitted from the waiting room. Try "
        "again in a few minutes, when their places are used or given back.")


async def helpdesk_person(c) -> str:
    r = await register(c)
    assert r.status_code == 303, r.text
    found = re.search(r"/staff/helpdesk/people/(\d{14})", r.headers["location"])
    assert found
    return found[1]


async def helpdesk_book(c, ref: str, sid: str):
    page = await c.get(f"/staff/helpdesk/people/{ref}/book")
    assert page.status_code == 200
    return await c.post(f"/staff/helpdesk/people/{ref}/book", data={
        "csrf": csrf_of(page.text), "key": hidden(page.text, "key"), "choice": f"{sid}|{SLOT}"})


async def admitted_alone(client, world, maker, settings):
    """Five places in Raipur, an opening there, and one citizen (one person) who joined it and
    was admitted at its time: (session id, opening id, (headers, reference id), ticket)."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    oid = await make_opening(client, world)
    ((h, ref),) = await bulk_citizens(maker, settings, 1)
    t = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    assert (await status(client, h, oid, t))["state"] == "admitted"
    return sid, oid, (h, ref), t


async def test_the_room_counts_again_and_staff_never_take_held_places(app, client, world, maker,
                                                                      settings,
                                                                      still_clock) -> None:
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    people = await bulk_citizens(maker, settings, 4)
    oid = await make_opening(client, world, rate=1)  # one admission a second, opening in 60 s
    tokens = [(await join(client, h, oid))["token"] for h, _ in people]
    # just after the opening: the draw, and one admission
    clock.shift(timedelta(seconds=60.05))
    seen = [await status(client, h, oid, t) for (h, _), t in zip(people, tokens, strict=True)]
    tokens = [s["token"] for s in seen]
    first = [i for i, s in enumerate(seen) if s["state"] == "admitted"]
    assert len(first) == 1
    async with staff_client(app, "helpdesk") as c:
        # One place held, three free: the help desk books one of the other two (no queue for
        # people without phones) ...
        walk_in = await helpdesk_person(c)
        r = await helpdesk_book(c, walk_in, sid)
        assert r.status_code == 303, r.text
        # ... and the room, counting again, admits one more person, not two: two places left
        clock.shift(timedelta(seconds=5))  # when the admitted person's answer said to ask
        seen = [await status(client, h, oid, t) for (h, _), t in zip(people, tokens, strict=True)]
        tokens = [s["token"] for s in seen]
        admitted = [i for i, s in enumerate(seen) if s["state"] == "admitted"]
        assert len(admitted) == 2 and set(first) < set(admitted)
        assert [s["state"] for s in seen].count("waiting") == 2
        # every free place is held now: the help desk may not take one
        other = await helpdesk_person(c)
        r = await helpdesk_book(c, other, sid)
        assert r.status_code == 409
        assert translate("hi", HELD) in r.text or HELD in r.text
        # nobody admitted finds the places gone
        for i in admitted:
            h, ref = people[i]
            r = await book(client, h, sid, ref, f"kept-{i:05d}")
            assert r.status_code == 201, r.text
        # no live hold: the help desk competes for places as ever (none are left now)
        r = await helpdesk_book(c, other, sid)
        assert r.status_code == 409 and translate("hi", HELD) not in r.text and HELD not in r.text
    left = [i for i in range(4) if i not in admitted]
    clock.shift(timedelta(seconds=3))  # when they ask again: every place is used, all are told
    assert {(await status(client, people[i][0], oid, tokens[i]))["state"] for i in left} == \
        {"closed"}


async def test_moving_an_appointment_into_an_open_room_needs_a_hold(client, world, maker,
                                                                    settings) -> None:
    today = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=3)
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1)
    oid = await make_opening(client, world)  # from tomorrow: today's session is not in it
    (h, ref), (h2, ref2) = await bulk_citizens(maker, settings, 2)
    r = await book(client, h, today, ref, "move-00001")
    assert r.status_code == 201, r.text
    appointment, confirmation = r.json()["appointment_ids"][0], r.json()["confirmation_no"]
    t2 = (await join(client, h2, oid))["token"]
    clock.shift(timedelta(seconds=61))
    assert (await status(client, h2, oid, t2))["state"] == "admitted"  # holds the one place
    # moving into the scope while the room is open, without a turn: refused, nothing changes
    move = {"session_id": sid, "slot": SLOT}
    r = await client.post(f"/api/v1/appointments/{appointment}/reschedule", headers=h, json=move)
    assert r.status_code == 409 and r.json()["code"] == "HoldRequired"
    r = await client.post("/api/v2/appointment/reschedule", headers=h, json={
        "appointment_id": confirmation, **move})
    assert r.status_code == 409, r.text  # the national surface too
    r = await client.get(f"/api/v1/appointments/{appointment}", headers=h)
    assert r.json()["session_id"] == today
    # the person with the turn books the place kept for them
    assert (await book(client, h2, sid, ref2, "move-00002")).status_code == 201


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_new_count_changes_what_the_store_may_promise(kind: str) -> None:
    """The step's `places`: a lower count admits fewer (never below what is held), a higher
    one more; the room closes when what is held and used reaches the count."""
    oid = 987655
    store = await drawn_store(kind, oid, "abcde", places="3")
    ones = dict.fromkeys("abcde", 1)
    meta = await store.step(oid, now=100.0, rate=10, expires=700.0, sizes={"a": 1})
    assert meta["reserved"] == "1"
    # two places were taken outside the room: one left beyond a's hold... and it is a's
    meta = await store.step(oid, now=101.0, rate=10, expires=701.0, sizes=ones, places=1)
    assert meta["places"] == "1" and meta["counted_at"] == "101.000"
    assert meta["reserved"] == "1" and meta["next"] == "1"
    # places given back (a cancellation, more capacity): two more are admitted, in order
    meta = await store.step(oid, now=102.0, rate=10, expires=702.0, sizes=ones, places=3)
    assert await store.admitted(oid) == ["a", "b", "c"] and meta["closed"] == "0"
    for account in "abc":
        assert await store.use_hold(oid, account, 1)
    # every place used, no hold live: the room closes, but only on a count made in that step
    meta = await store.step(oid, now=103.0, rate=10, expires=703.0, sizes=ones)
    assert meta["closed"] == "0"
    meta = await store.step(oid, now=103.5, rate=10, expires=703.5, sizes=ones, places=3)
    assert meta["closed"] == "1" and meta["places"] == "3"
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_count_made_while_a_booking_commits_does_not_close_the_room(kind: str) -> None:
    """A count reads the places used with holds, then the database. A booking that commits
    in between is counted as taken in the database and still held in the room: the count is
    low by its place until the next one. The room must not close on such a count when the
    holds are done; it closes only on a count made in its closing step (the service counts
    again before a room with no live hold and nothing left may close)."""
    oid = 987654
    store = await drawn_store(kind, oid, "abc", places="2")
    meta = await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": 1, "b": 1},
                            places=2)
    assert await store.admitted(oid) == ["a", "b"] and meta["reserved"] == "2"
    # a's booking has committed (the database has one place left) but a's hold is not used
    # yet when the room counts: 1 free + 0 used = 1 place, of which 2 are held
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={"c": 1}, places=1)
    assert meta["places"] == "1" and meta["next"] == "2"
    assert await store.use_hold(oid, "a", 1)
    # b lets the hold run out: b's place is free again (the database: 1 free, 1 used)
    meta = await store.step(oid, now=161.0, rate=10, expires=221.0, sizes={"c": 1})
    assert meta["reserved"] == "1" and meta["used"] == "1"
    assert meta["closed"] == "0"  # no live hold and nothing left by the old count: not closed
    # the next count is exact (no hold live): c is admitted to the place b gave back
    meta = await store.step(oid, now=161.5, rate=10, expires=221.5, sizes={"c": 1}, places=2)
    assert meta["closed"] == "0" and await store.admitted(oid) == ["a", "b", "c"]
    assert await store.hold(oid, "c") == "1:221.500:live"
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_hold_used_between_the_used_read_and_the_step_does_not_close_the_room(
        kind: str) -> None:
    """The room reads the places used with holds, counts the free places in the database, then
    steps. A booking that commits between the read and the count, and uses its hold before the
    step, makes that count low by its place: the step would see nothing left and no live hold,
    and close with a place free. Given what it read (`used_seen`), the store does not close on
    such a count; the next one is right. Until 27 Nov it closed."""
    key = "first/open/1/18-/"
    oid = 987662
    store = await drawn_store(kind, oid, "a", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[key]]},
                     places={key: 2})
    assert await store.hold(oid, "a") == "1:160.000:live"
    used = sum(p[2] for p in (await store.pools(oid)).values())  # the service reads: 0
    # a's booking commits (the database: 1 free) and uses its hold before the step
    assert await store.use_hold(oid, "a", [key])
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={},
                            places={key: 1 + used}, used_seen=used)
    assert meta["closed"] == "0"
    used = sum(p[2] for p in (await store.pools(oid)).values())
    meta = await store.step(oid, now=102.0, rate=10, expires=162.0, sizes={},
                            places={key: 1 + used}, used_seen=used)
    assert meta["closed"] == "0" and meta["places"] == "2" and meta["used"] == "1"
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_second_booking_made_with_one_hold_counts_its_place(kind: str) -> None:
    """A booking that passed the gate with the live hold commits after the hold was used (two
    bookings of one account at once, before the gate claimed holds; or one whose claim ran
    out, its process stalled). Its place is taken all the same: it counts as used, and the
    room admits nobody into it (until 27 Nov it was free to the room until the next count)."""
    key = "first/open/1/18-/"
    oid = 987663
    store = await drawn_store(kind, oid, "ab", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[key]]},
                     places={key: 2})
    assert await store.use_hold(oid, "a", [key])
    assert not await store.use_hold(oid, "a", [key])  # the twin: not the hold's, but counted
    assert (await store.pools(oid))[key] == (2, 0, 2)
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={"b": [[key]]})
    assert await store.hold(oid, "b") is None and meta["used"] == "2"  # nothing to hold
    await store.reset(oid)


async def test_the_room_counts_again_before_it_closes(client, world, maker, settings,
                                                      still_clock) -> None:
    """Every place used and no hold live: before the room closes and tells everyone, it counts
    the places again, even if it counted less than a second before. Here a district adds a
    place just after the last admitted person booked: the person next in line gets it instead
    of being told that the queue has closed."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=2)
    people = await bulk_citizens(maker, settings, 3)
    oid = await make_opening(client, world)
    tokens = [(await join(client, h, oid))["token"] for h, _ in people]
    clock.shift(timedelta(seconds=61))
    seen = [await status(client, h, oid, t) for (h, _), t in zip(people, tokens, strict=True)]
    admitted = [i for i, s in enumerate(seen) if s["state"] == "admitted"]
    assert len(admitted) == 2
    (last,) = [i for i in range(3) if i not in admitted]
    for i in admitted:
        h, ref = people[i]
        assert (await book(client, h, sid, ref, f"first-{i:05d}")).status_code == 201
    slot_id = await slot_of(maker, sid)
    r = await client.put(f"/api/v1/admin/slots/{slot_id}/capacity",
                         headers=world.headers("raipur_admin"),
                         json={"dose_kind": "first", "capacity": 3})
    assert r.status_code == 200, r.text
    # the last one asks again (a join answers at once): the place added is theirs
    h, ref = people[last]
    assert (await join(client, h, oid))["state"] == "admitted"
    assert (await book(client, h, sid, ref, "added-00001")).status_code == 201


async def test_a_booking_retried_while_the_room_is_open_gets_the_booking_it_made(
        client, world, maker, settings) -> None:
    """The answer to a booking made with a hold was lost (or the form sent twice): the retry
    with the same key gets that booking, not HoldRequired — its hold was used by the booking
    it repeats. Another request under the same key is still refused, and so is a new key."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=3)
    oid = await make_opening(client, world)
    (h, ref), (h2, ref2) = await bulk_citizens(maker, settings, 2)
    t = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    assert (await status(client, h, oid, t))["state"] == "admitted"
    asked = {"session_id": sid, "slot": SLOT, "beneficiaries": [ref], "dose": 1}
    key = {**h, "Idempotency-Key": "retry-00001"}
    first = await client.post("/api/v1/appointments", headers=key, json=asked)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/appointments", headers=key, json=asked)
    assert again.status_code == 201, again.text
    assert again.json()["confirmation_no"] == first.json()["confirmation_no"]
    assert again.json()["appointment_ids"] == first.json()["appointment_ids"]
    # the national surface, with its own key
    r = await client.post("/api/v2/appointment/schedule", headers=key, json=asked)
    assert r.status_code == 200, r.text
    assert r.json()["appointment_confirmation_no"] == first.json()["confirmation_no"]
    # a different request under that key is refused as ever
    r = await client.post("/api/v1/appointments", headers=key, json={**asked, "dose": 2})
    assert r.status_code == 422 and r.json()["code"] == "IdempotencyKeyReused"
    # the room is still open and the hold is used: anything else needs a turn
    r = await book(client, h, sid, ref, "retry-00002")
    assert r.status_code == 409 and r.json()["code"] == "HoldRequired"
    # someone else's key is not theirs to replay
    r = await book(client, h2, sid, ref2, "retry-00001")
    assert r.status_code == 409 and r.json()["code"] == "HoldRequired"


async def test_a_hold_books_at_most_the_people_it_kept_places_for(client, world, maker,
                                                                  settings) -> None:
    """Admitted with one person registered, an account that registers more may book for one:
    the room kept one place for it, and the others are places promised to other people."""
    sid, _oid, (h, ref), _t = await admitted_alone(client, world, maker, settings)
    late = await add_beneficiary(client, h, name="Registered Later")
    both = {"session_id": sid, "slot": SLOT, "beneficiaries": [ref, late]}
    r = await client.post("/api/v1/appointments", json=both,
                          headers={**h, "Idempotency-Key": "small-00001",
                                   "Accept-Language": "en"})
    assert r.status_code == 409 and r.json()["code"] == "HoldTooSmall"
    assert "people of your account: 1." in r.json()["message"]
    r = await client.post("/api/v2/appointment/schedule", json={**both, "dose": 1},
                          headers={**h, "Idempotency-Key": "small-00002"})
    assert r.status_code == 409, r.text
    r = await book(client, h, sid, ref, "small-00003")  # the one it kept a place for
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_hold_is_claimed_by_one_booking_at_a_time(kind: str) -> None:
    """The gate claims a live hold for the booking it lets through: another booking of the
    account is not let through until that one has used the hold or given the claim back (or,
    its process gone, the claim has run out)."""
    key = "first/open/1/18-/"
    oid = 987664
    store = await drawn_store(kind, oid, "ab", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[key]]},
                     places={key: 2})

    async def claim(mark: str, now: float = 101.0, people: int = 1, key: str = "") -> int:
        return (await store.claim_hold(oid, "a", now=now, live_after=now + 25, people=people,
                                       mark=mark, until=now + 30, key=key or mark))[3]

    assert await claim("big", people=2) == 0  # more people than the hold kept places for
    assert await claim("one") == 1
    assert await claim("two") == 0  # one booking at a time
    assert await claim("twin", key="one") == 2  # the same booking sent again: let through
    await store.release_hold(oid, "a", "two")  # not its claim: nothing given back
    assert await claim("two") == 0
    await store.release_hold(oid, "a", "one")  # the first failed, its twin is still in flight
    assert await claim("two") == 0
    assert await claim("twin2", key="one") == 2  # the twin's key still holds the claim
    await store.release_hold(oid, "a", "twin")
    await store.release_hold(oid, "a", "twin")  # given back twice: no other mark goes with it
    assert await claim("two") == 0
    await store.release_hold(oid, "a", "twin2")  # the last of them failed: the hold is free
    assert await claim("two") == 1
    assert await claim("three", now=131.5) == 1  # a claim whose process died runs out
    await store.release_hold(oid, "a", "three")
    assert await claim("inside", now=134.9) == 1  # kept until 160: 134.9 + 25 is inside
    await store.release_hold(oid, "a", "inside")
    # a booking whose answer was lost with its commit's outcome, sent again after its claim
    # ran out: the same booking, so it joins the claim (and replays what the first did)
    # instead of claiming the hold afresh as a new booking would
    assert (await store.claim_hold(oid, "a", now=102.0, live_after=127.0, people=1,
                                   mark="lost", until=103.0, key="lost"))[3] == 1
    assert await claim("retry", now=110.0, key="lost") == 2
    assert await claim("other", now=110.0) == 0  # the retry's claim lasts (until 140)
    # the retry failed: the claim goes with it (the run-out first's mark was not kept: that
    # booking died or its outcome is unknown, and would block the account for nothing)
    await store.release_hold(oid, "a", "retry")
    assert await claim("other", now=110.0) == 1
    await store.release_hold(oid, "a", "other")
    assert await claim("late", now=135.0) == 0  # past the hold's end (and the leeway)
    assert await store.use_hold(oid, "a", [key], booking="two")
    assert await claim("after") == 0  # used
    assert (await store.pools(oid))[key] == (2, 0, 1)
    # the booking that used it, reported again (a replay), counts nothing twice; another one
    # that committed after it (its claim ran out) counts its place
    assert not await store.use_hold(oid, "a", [key], booking="two")
    assert (await store.pools(oid))[key] == (2, 0, 1)
    assert not await store.use_hold(oid, "a", [key], booking="other")
    assert (await store.pools(oid))[key] == (2, 0, 2)
    # ... and that one, reported again (its twin's replay), counts nothing twice either
    assert not await store.use_hold(oid, "a", [key], booking="other")
    assert not await store.use_hold(oid, "a", [key], booking="two")
    assert (await store.pools(oid))[key] == (2, 0, 2)
    assert (await store.claim_hold(oid, "b", now=101.0, live_after=126.0, people=1,
                                   mark="b", until=131.0, key="b"))[3] == 0  # no hold at all
    await store.reset(oid)


async def test_a_claim_the_store_cannot_read_is_no_claim() -> None:
    """A claim in Redis that is not of the form until:marks:key (damaged, or written by other
    code) is taken as no claim, not an error on every booking of that account."""
    key = "first/open/1/18-/"
    oid = 987663
    store = await drawn_store("redis", oid, "a", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[key]]},
                     places={key: 2})
    for junk in ("soon:m:k", "x", "1.2.3:m:k"):
        await store.r.hset(store._k(oid, "claims"), "a", junk)
        found = await store.claim_hold(oid, "a", now=101.0, live_after=126.0, people=1,
                                       mark="m", until=131.0, key="k")
        assert found[3] == 1, junk
        await store.release_hold(oid, "a", "m")
    await store.reset(oid)


@pytest.mark.postgres_only
async def test_two_bookings_of_one_account_at_once_use_its_hold_once(client, world, maker,
                                                                     settings) -> None:
    """Admitted with one person, an account that registered a second sends two bookings at
    once, one person each (two tabs, two keys). One is let through; the other is refused:
    together they would take two places where the room kept one, the second promised to
    someone else. (On PostgreSQL, before the claim, both reached the gate before either
    committed, and both were booked. On SQLite the one connection takes them one after the
    other anyway: there the second always found the hold used.)"""
    sid, oid, (h, ref), t = await admitted_alone(client, world, maker, settings)
    late = await add_beneficiary(client, h, name="Registered Later")
    answers = await asyncio.gather(book(client, h, sid, ref, "tabs-00001"),
                                   book(client, h, sid, late, "tabs-00002"))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["code"] in ("BookingInProgress", "HoldRequired")
    if refused.json()["code"] == "BookingInProgress":
        assert refused.headers["retry-after"] == "5"
    assert (await status(client, h, oid, t))["state"] == "used"


async def test_a_refused_booking_gives_its_claim_on_the_hold_back(client, world, maker,
                                                                  settings) -> None:
    """A booking let through with the hold and then refused (here: someone else's person)
    gives the claim back when its work ends: the next booking goes through at once."""
    (_, other), = await bulk_citizens(maker, settings, 1)
    sid, _oid, (h, ref), _t = await admitted_alone(client, world, maker, settings)
    r = await book(client, h, sid, other, "claim-00001")
    assert r.status_code == 404, r.text
    r = await book(client, h, sid, ref, "claim-00002")
    assert r.status_code == 201, r.text


@pytest.mark.postgres_only
async def test_the_same_booking_sent_twice_at_once_gets_one_booking(client, world, maker,
                                                                    settings) -> None:
    """A double submit (the same Idempotency-Key) while the first is still being made: the
    second is let through without a claim of its own, waits for the first at the key and
    answers with its booking — not BookingInProgress. The hold is used once."""
    sid, oid, (h, ref), t = await admitted_alone(client, world, maker, settings)
    answers = await asyncio.gather(*(book(client, h, sid, ref, "twice-0001") for _ in range(2)))
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    assert answers[0].json()["confirmation_no"] == answers[1].json()["confirmation_no"]
    assert (await status(client, h, oid, t))["state"] == "used"
    meta = await client._transport.app.state.waiting_room.store.meta(oid)  # type: ignore
    assert meta["used"] == "1"


@pytest.mark.postgres_only
async def test_a_booking_whose_commit_outcome_is_unknown_keeps_the_hold_claimed(
        client, world, maker, settings) -> None:
    """The booking committed, but its answer became a 503: the commit's wait for a standby
    was cancelled (PostgreSQL's warning, here marked on the connection as the notice listener
    marks it). Its claim is not given back as if nothing had been booked: a second booking
    with another key is refused, and the retry with the first key answers with the booking
    and uses the hold."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from teeka.db import UNREPLICATED

    sid, oid, (h, ref), t = await admitted_alone(client, world, maker, settings)
    late = await add_beneficiary(client, h, name="Registered Later")

    def standby_wait_cancelled(session: Session) -> None:
        if session.info.get("capacity_changed"):
            session.connection().info[UNREPLICATED] = True

    event.listen(Session, "before_commit", standby_wait_cancelled)
    try:
        r = await book(client, h, sid, ref, "unknown-01")
    finally:
        event.remove(Session, "before_commit", standby_wait_cancelled)
    assert r.status_code == 503 and r.json()["code"] == "Busy", r.text
    r = await book(client, h, sid, late, "unknown-02")  # another booking meanwhile
    assert r.status_code == 409 and r.json()["code"] == "BookingInProgress", r.text
    r = await book(client, h, sid, ref, "unknown-01")  # the retry: the booking made
    assert r.status_code == 201, r.text
    assert (await status(client, h, oid, t))["state"] == "used"
    r = await book(client, h, sid, late, "unknown-03")
    assert r.status_code == 409 and r.json()["code"] == "HoldRequired", r.text


async def test_a_booking_made_before_the_hold_sent_again_leaves_the_hold_alone(
        client, world, maker, settings) -> None:
    """A booking made before the opening, sent again with its key while the person holds a
    place (an old form posted again, a client's late retry), is answered with that booking —
    and the hold stays theirs: it was not used by it."""
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=5)
    (h, ref), = await bulk_citizens(maker, settings, 1)
    first = await book(client, h, sid, ref, "before-001")
    assert first.status_code == 201, first.text
    oid = await make_opening(client, world)
    t = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    assert (await status(client, h, oid, t))["state"] == "admitted"
    again = await book(client, h, sid, ref, "before-001")
    assert again.status_code == 201, again.text
    assert again.json()["confirmation_no"] == first.json()["confirmation_no"]
    assert (await status(client, h, oid, t))["state"] == "admitted"


async def test_a_district_cut_moves_nobody_into_places_the_room_keeps(app, client, world, maker,
                                                                       settings) -> None:
    """Today's session (outside the opening, which starts tomorrow) loses its places; the
    people booked in it are moved through the staff gate, so the place kept for the admitted
    person is not given to one of them: four move, one is cancelled and told, and the admitted
    person books the place kept for them."""
    sid, _oid, (h, ref), _t = await admitted_alone(client, world, maker, settings)
    today = await publish(maker, world, centre_id=world.centre_b, day=clock.today(), dose1=5)
    people = await bulk_citizens(maker, settings, 5)
    for i, (hp, rp) in enumerate(people):
        r = await book(client, hp, today, rp, f"today-{i:05d}")
        assert r.status_code == 201, r.text
    r = await client.put(f"/api/v1/admin/slots/{await slot_of(maker, today)}/capacity",
                         headers=world.headers("raipur_admin"),
                         json={"dose_kind": "first", "capacity": 0, "move_affected": True})
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["cancelled"]) == (4, 1)
    r = await book(client, h, sid, ref, "kept-for-me")
    assert r.status_code == 201, r.text
