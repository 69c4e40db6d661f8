"""The waiting room holds places of the kind a person can book (docs/surge.md, "Kinds of
places"): an opening's scope has places for several age bands, dose kinds, vaccines and
priority shares, and an admitted person must find one they can take. Before, the room counted
every place in the scope and admitted young people against places only the old could book."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from teeka.kit import clock
from teeka.surge import rules
from tests.factories import bulk_citizens, publish
from tests.surge.test_waiting_room import SLOT, book, drawn_store, join, make_opening, status

YOUNG = "first/open/1/18-44/"
OLD = "first/open/1/45-/"


async def test_admitted_people_hold_places_of_their_own_kind(client, world, maker,
                                                              settings) -> None:
    first_day = clock.today() + timedelta(days=1)
    young_sid = await publish(maker, world, centre_id=world.centre_a, min_age=18, max_age=44,
                              dose1=2)
    old_sid = await publish(maker, world, centre_id=world.centre_a, min_age=45, dose1=5)
    young = await bulk_citizens(maker, settings, 4, birth_year=first_day.year - 30)
    old = await bulk_citizens(maker, settings, 1, birth_year=first_day.year - 60)
    oid = await make_opening(client, world)
    tokens = [(await join(client, h, oid))["token"] for h, _ in young]
    clock.shift(timedelta(seconds=61))
    seen = [await status(client, h, oid, t) for (h, _), t in zip(young, tokens, strict=True)]
    tokens = [s["token"] for s in seen]
    # seven places in the scope, but only two a 30-year-old can book: two admitted; the next
    # waits (a live hold on those two may still come back), and so does everyone behind
    admitted = [i for i, s in enumerate(seen) if s["state"] == "admitted"]
    assert len(admitted) == 2, [s["state"] for s in seen]
    assert sorted(s["state"] for s in seen) == ["admitted", "admitted", "waiting", "waiting"]
    for i in admitted:  # nobody admitted finds their places gone
        h, ref = young[i]
        r = await book(client, h, young_sid, ref, f"young-{i:04d}")
        assert r.status_code == 201, r.text
    clock.shift(timedelta(seconds=3))
    left = [i for i in range(4) if i not in admitted]
    told = [await status(client, young[i][0], oid, tokens[i]) for i in left]
    # nothing left of their kind, and no hold that could come back: told at once, while the
    # room stays open for the places of another kind
    assert [s["state"] for s in told] == ["none", "none"]
    h, ref = old[0]
    ticket = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=3))
    assert (await status(client, h, oid, ticket))["state"] == "admitted"
    assert (await book(client, h, old_sid, ref, "old-00001")).status_code == 201


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_store_keeps_places_by_pool(kind: str) -> None:
    oid = 987656
    store = await drawn_store(kind, oid, "abcd", counted_at="0")
    needs = {"a": [[YOUNG]], "b": [[YOUNG]], "c": [[OLD]], "d": [[OLD], [YOUNG]]}
    meta = await store.step(oid, now=100.0, rate=10, expires=160.0, sizes=needs,
                            places={YOUNG: 1, OLD: 2})
    # a holds the one young place; b's places are all held by a live hold: b waits, and so
    # does everyone behind b (admission stays in queue order)
    assert await store.admitted(oid) == ["a"] and meta["next"] == "1"
    assert meta["places"] == "3" and meta["reserved"] == "1" and meta["closed"] == "0"
    assert await store.pools(oid) == {YOUNG: (1, 1, 0), OLD: (2, 0, 0), "*": (0, 0, 0)}
    # what a booking's gate reads, in one go: the hold, its pools, and the room's pools
    assert await store.claim_hold(oid, "a", now=100.0, live_after=130.0, people=1, mark="m",
                                  until=130.0, key="k") == (
        "1:160.000:live", [YOUNG], {YOUNG: (1, 1, 0), OLD: (2, 0, 0), "*": (0, 0, 0)}, 1)
    assert (await store.claim_hold(oid, "b", now=100.0, live_after=130.0, people=1, mark="n",
                                   until=130.0, key="k")) == (None, [], (await store.pools(oid)), 0)
    assert await store.use_hold(oid, "a", [YOUNG])
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes=needs)
    # nothing young left and no hold that could come back: b is told so (`none`); c holds an
    # old place; d's two people: the old one gets the last old place, the young one none
    assert await store.admitted(oid) == ["a", "b", "c", "d"]
    assert await store.hold(oid, "b") == "0:1:none"  # told after the first count (grown 1)
    assert await store.hold(oid, "d") == "1:161.000:live"
    assert (await store.pools(oid))[OLD] == (2, 2, 0)
    assert meta["reserved"] == "3" and meta["used"] == "1" and meta["closed"] == "0"
    # the holds expire: their places go back to their own pool, and the room stays open
    meta = await store.step(oid, now=170.0, rate=10, expires=230.0, sizes={})
    assert (await store.pools(oid))[OLD] == (2, 0, 0) and meta["closed"] == "0"
    # places used in a pool the count did not know yet count there (the next count adds them)
    await store.join(oid, "e", True)
    await store.step(oid, now=171.0, rate=10, expires=231.0, sizes={"e": [[OLD]]})
    assert await store.use_hold(oid, "e", ["second/open/1/45-/"])
    pools = await store.pools(oid)
    assert pools[OLD] == (2, 0, 0) and pools["second/open/1/45-/"] == (0, 0, 1)
    # every place used or gone and no live hold: the room closes
    meta = await store.step(oid, now=172.0, rate=10, expires=232.0, sizes={},
                            places={YOUNG: 1, OLD: 0, "second/open/1/45-/": 1})
    assert meta["closed"] == "1" and meta["places"] == "2" and meta["used"] == "2"
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_share_released_while_held_is_not_promised_twice(kind: str) -> None:
    """The count puts a released share's places under its released key; holds made before stay
    under the old key. One BPL place, held by a; after the release b (who may book released
    places) waits for a's hold instead of being admitted to the same place. Until 27 Nov b was
    admitted: two holds for one place."""
    bpl, bpl_r = "first/bpl/1/18-/", "first/bpl/1/18-/r"
    oid = 987661
    store = await drawn_store(kind, oid, "ab", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[bpl]]},
                     places={bpl: 1})
    assert await store.hold(oid, "a") == "1:160.000:live"
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={"b": [[bpl_r]]},
                            places={bpl: 0, bpl_r: 1})
    assert await store.hold(oid, "b") is None and meta["next"] == "1"  # b waits for a's hold
    assert (await store.pools(oid))[bpl_r][1] == 0
    # a's hold expires: its place is b's
    await store.step(oid, now=170.0, rate=10, expires=230.0, sizes={"b": [[bpl_r]]})
    assert await store.hold(oid, "b") == "1:230.000:live"
    await store.reset(oid)


def test_free_places_take_a_released_shares_old_holds_into_account() -> None:
    bpl, bpl_r, open_ = "first/bpl/1/18-/", "first/bpl/1/18-/r", "first/open/1/18-/"
    assert rules.free_places({bpl: (0, 1, 0), bpl_r: (3, 0, 1), open_: (2, 1, 0)}) == {
        bpl: -1, bpl_r: 1, open_: 1}
    assert rules.assign({bpl_r: 0}, {bpl: 1}, [[bpl_r]]) == ([], True)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_told_none_comes_back_in_line_when_places_come_back(kind: str) -> None:
    """Being told `none` is not final: when a count finds more places (a share released to
    everyone, a cancellation), whoever was told and asks again is put back in line at their
    own place in the queue, ahead of everyone who came after them."""
    oid = 987658
    store = await drawn_store(kind, oid, "abc", counted_at="0")
    needs = {"a": [[YOUNG]], "b": [[YOUNG]], "c": [[OLD]]}
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes=needs,
                     places={YOUNG: 1, OLD: 2})
    assert await store.use_hold(oid, "a", [YOUNG])
    await store.step(oid, now=101.0, rate=10, expires=161.0, sizes=needs)
    assert await store.hold(oid, "b") == "0:1:none"  # the young place is gone
    assert await store.hold(oid, "c") == "1:161.000:live"  # one old place is left
    # asking again before the room has found anything more: still none, not back in line
    assert await store.recheck(oid, "b") == ("0:1:none", -1)
    # a count with as many places as before (places used with holds count): no growth
    meta = await store.step(oid, now=102.0, rate=10, expires=162.0, sizes={},
                            places={YOUNG: 1, OLD: 2})
    assert meta["grown"] == "1" and await store.recheck(oid, "b") == ("0:1:none", -1)
    await store.join(oid, "d", True)  # d comes after the opening, young too: told none
    await store.step(oid, now=103.0, rate=10, expires=163.0, sizes={"d": [[YOUNG]]})
    assert await store.hold(oid, "d") == "0:1:none"
    # a young place comes back (a cancellation); e joins after that
    meta = await store.step(oid, now=104.0, rate=10, expires=164.0, sizes={},
                            places={YOUNG: 2, OLD: 2})
    assert meta["grown"] == "2"
    await store.join(oid, "e", True)
    # b asks again: back in line, first; d has not asked (yet)
    assert await store.recheck(oid, "b") == ("0:1:back", 0)
    assert (await store.meta(oid))["back"] == "1" and await store.back(oid, 5) == ["b"]
    # the back line is looked at before the queue: b holds the place (e waits for that hold)
    meta = await store.step(oid, now=105.0, rate=10, expires=165.0,
                            sizes={"b": [[YOUNG]], "e": [[YOUNG]]})
    assert await store.hold(oid, "b") == "1:165.000:live"
    assert await store.hold(oid, "e") is None
    assert meta["back"] == "0" and await store.back(oid, 5) == []
    assert await store.use_hold(oid, "b", [YOUNG])  # b books: e is told none
    await store.step(oid, now=105.5, rate=10, expires=165.5, sizes={"e": [[YOUNG]]})
    assert await store.hold(oid, "e") == "0:2:none"
    assert await store.recheck(oid, "e") == ("0:2:none", -1)  # told after the growth
    # d asks now: back in line (told before the growth), looked at first, told again
    assert await store.recheck(oid, "d") == ("0:1:back", 0)
    meta = await store.step(oid, now=106.0, rate=10, expires=166.0, sizes={"d": [[YOUNG]]})
    assert await store.hold(oid, "d") == "0:2:none" and meta["back"] == "0"
    # the admissions log stays the queue's order of first turns
    assert await store.admitted(oid) == ["a", "b", "c", "d", "e"]
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_back_line_goes_before_the_queue(kind: str) -> None:
    """While anyone is back in line, nobody is admitted from the queue (they came before)."""
    oid = 987659
    store = await drawn_store(kind, oid, "ab", counted_at="0")
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={"a": [[YOUNG]]},
                     places={OLD: 1})
    assert await store.hold(oid, "a") == "0:1:none"
    await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={},
                     places={OLD: 1, YOUNG: 1})
    assert (await store.recheck(oid, "a"))[0] == "0:1:back"
    # a's needs not known in this step (not looked up): the room waits, b is not admitted
    meta = await store.step(oid, now=102.0, rate=10, expires=162.0, sizes={"b": [[OLD]]})
    assert meta["next"] == "1" and await store.hold(oid, "b") is None
    # then a first, and the queue in the same step
    meta = await store.step(oid, now=103.0, rate=10, expires=163.0,
                            sizes={"a": [[YOUNG]], "b": [[OLD]]})
    assert await store.hold(oid, "a") == "1:163.000:live"
    assert await store.hold(oid, "b") == "1:163.000:live" and meta["next"] == "2"
    await store.reset(oid)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_the_room_does_not_close_before_its_first_count(kind: str) -> None:
    """The draw counts nothing: until the first count, an empty room is not a closed one."""
    oid = 987657
    store = await drawn_store(kind, oid, "", counted_at="0")
    assert (await store.step(oid, now=100.0, rate=10, expires=160.0, sizes={}))["closed"] == "0"
    meta = await store.step(oid, now=101.0, rate=10, expires=161.0, sizes={}, places={})
    assert meta["closed"] == "1"  # counted: nothing at all in the scope
    await store.reset(oid)


def test_candidates_follow_the_order_booking_tries_buckets() -> None:
    shares = ["first/aay/1/18-44/", "first/bpl/1/18-44/", "first/bpl/1/18-44/r",
              "first/open/1/18-44/", "first/open/2/18-44/", "first/open/1/45-/",
              "second/open/1/18-44/", "second/open/2/18-44/"]
    aay = rules.Need(kind="first", vaccine_id=None, age=30, group="aay")
    # own share, then open (any vaccine for a first dose), then shares released to everyone
    assert rules.candidates(aay, shares) == [
        "first/aay/1/18-44/", "first/open/1/18-44/", "first/open/2/18-44/",
        "first/bpl/1/18-44/r"]
    second = rules.Need(kind="second", vaccine_id=2, age=50, group="none")
    assert rules.candidates(second, shares) == []  # no 45+ second-dose places of vaccine 2
    assert rules.candidates(rules.Need("second", 2, 44, "none"), shares) == [
        "second/open/2/18-44/"]
    assert rules.candidates(rules.Need("first", None, None, "none"), shares) == [
        "first/open/1/18-44/", "first/open/1/45-/", "first/open/2/18-44/",
        "first/bpl/1/18-44/r"]
    assert rules.Pool.parse("*") is None
    assert rules.pool_key("first", "open", 1, 45, None, released=True) == "first/open/1/45-/"


def test_assign_places_each_person_or_waits() -> None:
    free, held = {"A": 1, "B": 0}, {"A": 0, "B": 1}
    assert rules.assign(free, held, [["A"], ["A"]]) == (["A"], False)  # one place for two
    assert rules.assign(free, held, [["B"], ["A"]]) == ([], True)  # B's hold may come back
    assert rules.assign(free, {}, [["B"], ["A"]]) == (["A"], False)
    assert rules.assign(free, held, []) == ([], False)


async def test_the_count_is_by_kind_and_a_released_share_is_everyones(
        world, maker) -> None:
    """The room's count (one grouped sum over the scope): per dose kind, share, vaccine and age
    band; a priority share's places count as released (anyone's) from their release time."""
    from datetime import time

    from teeka.db import session_scope
    from teeka.surge.service import OpeningView, places_by_pool

    first_day = clock.today() + timedelta(days=1)
    await publish(maker, world, centre_id=world.centre_a, dose1=4, dose2=3,
                  shares={"open": 50, "aay": 50}, share_release_time=time(5, 0))
    await publish(maker, world, centre_id=world.centre_a, dose1=2, min_age=45)
    await publish(maker, world, centre_id=world.centre_a, dose1=9, day=clock.today())
    await publish(maker, world, centre_id=world.centre_c, dose1=7)  # another district
    opening = OpeningView(id=1, district_id=109, first_day=first_day, opens_at=clock.now(),
                          hold_seconds=600, admit_per_second=10)
    async with session_scope(maker) as db:
        before = await places_by_pool(db, opening)
    vaccine = int(next(iter(before)).split("/")[2])
    expect = {f"first/open/{vaccine}/18-/": 2, f"first/aay/{vaccine}/18-/": 2,
              f"second/open/{vaccine}/18-/": 2, f"second/aay/{vaccine}/18-/": 1,
              f"first/open/{vaccine}/45-/": 2}
    assert {k: v for k, v in before.items() if v} == expect
    release = datetime.combine(first_day, time(5, 0), tzinfo=clock.LOCAL_TZ).astimezone(UTC)
    clock.shift(release - clock.now() + timedelta(seconds=1))
    async with session_scope(maker) as db:
        after = await places_by_pool(db, opening)
    assert {k: v for k, v in after.items() if v} == {
        (k + "r" if "/aay/" in k else k): v for k, v in expect.items()}


async def test_the_count_leaves_out_sessions_already_past(world, maker) -> None:
    """An opening that is still open days after its first day: the places of sessions already
    past are not bookable, so the room does not count them (until 27 Nov it did: it promised
    them, and never closed)."""
    from teeka.db import session_scope
    from teeka.surge.service import OpeningView, places_by_pool

    first_day = clock.today() + timedelta(days=1)
    await publish(maker, world, centre_id=world.centre_a, dose1=3, day=first_day)
    await publish(maker, world, centre_id=world.centre_a, dose1=2,
                  day=first_day + timedelta(days=1))
    opening = OpeningView(id=1, district_id=109, first_day=first_day, opens_at=clock.now(),
                          hold_seconds=600, admit_per_second=10)
    async with session_scope(maker) as db:
        assert sum((await places_by_pool(db, opening)).values()) == 5
    clock.shift(timedelta(days=1))  # the first day is today: still bookable
    async with session_scope(maker) as db:
        assert sum((await places_by_pool(db, opening)).values()) == 5
    clock.shift(timedelta(days=1))
    async with session_scope(maker) as db:
        assert sum((await places_by_pool(db, opening)).values()) == 2


async def test_the_count_leaves_out_centres_out_of_service(world, maker) -> None:
    """Booking refuses a centre taken out of service (`active` false), so the room neither
    counts its places nor its days, in a district's opening or a statewide one."""
    from sqlalchemy import update

    from teeka.db import session_scope
    from teeka.models import Centre
    from teeka.surge.service import OpeningView, bookable_days, places_by_pool

    first_day = clock.today() + timedelta(days=1)
    await publish(maker, world, centre_id=world.centre_a, dose1=3, day=first_day)
    await publish(maker, world, centre_id=world.centre_b, dose1=2,
                  day=first_day + timedelta(days=1))
    async with session_scope(maker) as db:
        await db.execute(update(Centre).where(Centre.id == world.centre_b).values(active=False))
    for district in (109, None):
        opening = OpeningView(id=1, district_id=district, first_day=first_day,
                              opens_at=clock.now(), hold_seconds=600, admit_per_second=10)
        async with session_scope(maker) as db:
            assert sum((await places_by_pool(db, opening)).values()) == 3
            assert await bookable_days(db, opening) == (first_day, first_day)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_telling_people_nothing_is_left_takes_no_admission_credit(kind: str) -> None:
    """Who can only book places that are gone is told at once (`none`) without waiting for
    the admission rate: it takes no credit, and a step may look ahead of the credit for them
    (`told`: how many the last step told; the service looks ahead while it is > 0)."""
    oid = 987658
    store = await drawn_store(kind, oid, "abcde", counted_at="0", credit="1")
    needs = {"a": [[YOUNG]], "b": [[YOUNG]], "c": [[YOUNG]], "d": [[OLD]], "e": [[OLD]]}
    meta = await store.step(oid, now=100.0, rate=1, expires=700.0, sizes=needs,
                            places={YOUNG: 1, OLD: 2})
    assert await store.admitted(oid) == ["a"] and meta["told"] == "0"
    assert await store.use_hold(oid, "a", [YOUNG])
    # no credit left this second: nobody is admitted, but b and c are told at once; d could
    # be admitted and waits for credit
    meta = await store.step(oid, now=100.0, rate=1, expires=700.0, sizes=needs, lookahead=10)
    assert await store.admitted(oid) == ["a", "b", "c"]
    assert meta["told"] == "2" and meta["next"] == "3"
    assert await store.hold(oid, "c") == "0:1:none" and await store.hold(oid, "d") is None
    meta = await store.step(oid, now=101.0, rate=1, expires=701.0, sizes=needs, lookahead=10)
    assert await store.admitted(oid) == ["a", "b", "c", "d"] and meta["told"] == "0"
    assert await store.hold(oid, "d") == "1:701.000:live"
    await store.reset(oid)


async def test_staff_never_take_a_kept_place_of_the_kind_they_book(app, client, world, maker,
                                                                   settings) -> None:
    """A help desk books without the queue, but not a place of the kind the room keeps for
    someone it admitted — even while other kinds have free places (one sum over the scope let
    a help desk take the last young place from under an admitted young person)."""
    import re

    from teeka.i18n import translate
    from tests.staff import register, staff_client
    from tests.surge.test_room_and_database import HELD, helpdesk_book

    first_day = clock.today() + timedelta(days=1)
    young_sid = await publish(maker, world, centre_id=world.centre_a, min_age=18, max_age=44,
                              dose1=1)
    old_sid = await publish(maker, world, centre_id=world.centre_a, min_age=45, dose1=3)
    [(h, ref)] = await bulk_citizens(maker, settings, 1, birth_year=first_day.year - 30)
    oid = await make_opening(client, world)
    ticket = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    assert (await status(client, h, oid, ticket))["state"] == "admitted"

    async def walk_in(c, born: int) -> str:
        r = await register(c, birth_year=str(born))
        assert r.status_code == 303, r.text
        found = re.search(r"/staff/helpdesk/people/(\d{14})", r.headers["location"])
        assert found
        return found[1]

    async with staff_client(app, "helpdesk") as c:
        young = await walk_in(c, first_day.year - 25)
        r = await helpdesk_book(c, young, young_sid)
        assert r.status_code == 409, r.text
        assert translate("hi", HELD) in r.text or HELD in r.text
        old = await walk_in(c, first_day.year - 70)
        r = await helpdesk_book(c, old, old_sid)  # old places are nobody's to keep
        assert r.status_code == 303, r.text
    assert (await book(client, h, young_sid, ref, "kept-young-1")).status_code == 201


async def test_a_move_into_the_scope_uses_the_hold_for_the_place_it_took(app, client, world,
                                                                         maker, settings) -> None:
    today = await publish(maker, world, centre_id=world.centre_a, day=clock.today(), dose1=3)
    sid = await publish(maker, world, centre_id=world.centre_a, dose1=1)
    oid = await make_opening(client, world)
    [(h, ref)] = await bulk_citizens(maker, settings, 1)
    r = await book(client, h, today, ref, "move-kind-1")
    assert r.status_code == 201, r.text
    appointment = r.json()["appointment_ids"][0]
    ticket = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    ticket = (seen := await status(client, h, oid, ticket))["token"]
    assert seen["state"] == "admitted"
    r = await client.post(f"/api/v1/appointments/{appointment}/reschedule", headers=h,
                          json={"session_id": sid, "slot": "09:00AM-11:00AM"})
    assert r.status_code == 200, r.text
    pools = await app.state.waiting_room.store.pools(oid)
    [(key, counts)] = [(k, v) for k, v in pools.items() if k != "*"]
    assert key.startswith("first/open/") and counts == (1, 0, 1)  # one place, used with the hold
    clock.shift(timedelta(seconds=6))  # when the ticket says to ask again
    assert (await status(client, h, oid, ticket))["state"] == "used"


async def test_the_queue_page_tells_when_nothing_is_left_of_your_kind(client, world, maker,
                                                                      settings) -> None:
    """Without JavaScript, in Hindi: an account with nobody registered holds a first-dose place;
    an opening with only second-dose places has none for it."""
    from tests.citizen.test_pages import page_login, submit

    await publish(maker, world, centre_id=world.centre_a, dose1=0, dose2=5)
    oid = await make_opening(client, world)
    assert await page_login(client, maker, settings, next_path=f"/queue/{oid}") == \
        f"/queue/{oid}"
    page = await client.get(f"/queue/{oid}")
    assert (await submit(client, page, f"/queue/{oid}/join", {})).status_code == 303
    clock.shift(timedelta(seconds=61))
    page = await client.get(f"/queue/{oid}", headers={"Accept-Language": "hi"})
    assert "इस बार ऐसा कोई स्थान नहीं बचा है जिसे आपके खाते के लोग" in page.text
    # places of their kind may still come back: the page looks again every minute
    assert '<meta http-equiv="refresh" content="60">' in page.text
    assert "यदि इस बार में उनके प्रकार के स्थान फिर से उपलब्ध होते हैं" in page.text
    page = await client.get(f"/queue/{oid}", headers={"Accept-Language": "en"})
    assert "No place is left in this opening that the people on your account can book" in \
        page.text


async def test_told_none_is_back_in_line_when_a_share_is_released(client, world, maker,
                                                                  settings) -> None:
    """A young person told that nothing is left of their kind, while a priority share's places
    keep the room open, asks again after that share is released to everyone: back in line at
    their own place, ahead of someone who joined after the release (before, `none` was final
    and the later arrival took the released place)."""
    from datetime import time

    # 10:00 in the morning (local) on the day of the sessions, whatever the time of the run
    day = clock.today() + timedelta(days=1)
    clock.shift(clock.local_datetime(day, 10) - clock.now())
    sid = await publish(maker, world, centre_id=world.centre_a, day=day, min_age=18, max_age=44,
                        dose1=2, shares={"open": 50, "aay": 50},
                        share_release_time=time(10, 5))
    r = await client.post("/api/v1/admin/openings", headers=world.headers("raipur_admin"), json={
        "district_id": 109, "first_day": day.isoformat(),
        "opens_at": (clock.now() + timedelta(seconds=60)).isoformat(),
        "hold_seconds": 600, "admit_per_second": 1000})
    assert r.status_code == 201, r.text
    oid = int(r.json()["id"])
    (h1, ref1), (h2, ref2), (h3, _) = await bulk_citizens(maker, settings, 3,
                                                          birth_year=day.year - 30)
    t1 = (await join(client, h1, oid))["token"]
    clock.shift(timedelta(seconds=30))
    t2 = (await join(client, h2, oid))["token"]
    clock.shift(timedelta(seconds=31))
    s1 = await status(client, h1, oid, t1)
    s2 = await status(client, h2, oid, t2)
    first, second = (h1, ref1, s1), (h2, ref2, s2)
    if s2["state"] == "admitted":  # the draw's order
        first, second = second, first
    assert first[2]["state"] == "admitted" and second[2]["state"] == "waiting"
    assert (await book(client, first[0], sid, first[1], "share-first-01")).status_code == 201
    clock.shift(timedelta(seconds=3))
    told = await status(client, second[0], oid, second[2]["token"])
    # the open place is gone; the AAY place is not theirs (yet): told, the room stays open
    assert told["state"] == "none" and told["poll_after_s"] == 60
    again = await status(client, second[0], oid, told["token"])  # nothing new: the same answer
    assert again["state"] == "none"
    # 10:05: the AAY share's place is everyone's. Someone joins after that, and asks first
    clock.shift(clock.local_datetime(day, 10, 5) - clock.now() + timedelta(seconds=1))
    late = await join(client, h3, oid)
    assert late["state"] == "waiting"
    clock.shift(timedelta(seconds=3))
    # the one told `none` asks again: back in line at their own place, ahead of the late one
    back = await status(client, second[0], oid, again["token"])
    assert back["state"] == "admitted" and back["position"] == told["position"], back
    clock.shift(timedelta(seconds=3))
    late = await status(client, h3, oid, late["token"])
    assert late["state"] == "waiting", late  # the place is kept for who came first
    assert (await book(client, second[0], sid, second[1], "share-second-1")).status_code == 201
    clock.shift(timedelta(seconds=3))
    # nothing is left at all now: the late arrival hears the queue has closed
    assert (await status(client, h3, oid, late["token"]))["state"] in ("closed", "none")


async def _share_full_here(client, world, maker, settings, spare_bpl: int = 0
                           ) -> tuple[str, str, list]:
    """Two sessions in the opening's scope, each with one BPL place and one open place (and
    `spare_bpl` more BPL places in a third); the BPL place `here` booked before the opening.
    Then a BPL person and two others admitted: the room keeps them a BPL place and the two
    open places. Returns (here, there, [(headers, reference id)] of the BPL person and the
    two others)."""
    from sqlalchemy import update

    from teeka.db import session_scope
    from teeka.models import Beneficiary

    shares = {"bpl": 50, "open": 50}
    here = await publish(maker, world, centre_id=world.centre_a, dose1=2, shares=shares)
    there = await publish(maker, world, centre_id=world.centre_b, dose1=2, shares=shares)
    if spare_bpl:
        await publish(maker, world, centre_id=world.centre_b, dose1=spare_bpl,
                      shares={"bpl": 100}, day=clock.today() + timedelta(days=2))
    people = await bulk_citizens(maker, settings, 4)
    async with session_scope(maker) as db:
        await db.execute(update(Beneficiary).where(Beneficiary.reference_id.in_(
            [people[0][1], people[1][1]])).values(priority_group="bpl"))
    early, bpl, *others = people
    r = await book(client, early[0], here, early[1], "bpl-before-1")
    assert r.status_code == 201, r.text
    oid = await make_opening(client, world)
    tokens = [(await join(client, h, oid))["token"] for h, _ in [bpl, *others]]
    clock.shift(timedelta(seconds=61))
    seen = [await status(client, h, oid, t)
            for (h, _), t in zip([bpl, *others], tokens, strict=True)]
    assert [s["state"] for s in seen] == ["admitted"] * 3
    return here, there, [bpl, *others]


async def test_a_person_whose_share_is_full_here_takes_no_place_kept_for_another(
        client, world, maker, settings) -> None:
    """Admitted, a BPL person holds a BPL place; at a slot where the BPL share is full they
    would take the open place the room keeps for someone else, who would then find nothing
    left. They are told the places there are kept for others; everyone admitted books."""
    here, there, [bpl, one, two] = await _share_full_here(client, world, maker, settings)
    r = await client.post("/api/v1/appointments",
                          headers={**bpl[0], "Idempotency-Key": "bpl-here-01",
                                   "Accept-Language": "en"},
                          json={"session_id": here, "slot": SLOT, "beneficiaries": [bpl[1]]})
    assert r.status_code == 409 and r.json()["code"] == "PlacesKept", r.text
    assert "kept for other people admitted" in r.json()["message"]
    r = await client.post("/api/v1/appointments",
                          headers={**bpl[0], "Idempotency-Key": "bpl-here-02",
                                   "Accept-Language": "hi"},
                          json={"session_id": here, "slot": SLOT, "beneficiaries": [bpl[1]]})
    assert r.status_code == 409 and "दूसरे लोगों के लिए रखे गए" in r.json()["message"]
    assert (await book(client, bpl[0], there, bpl[1], "bpl-there-1")).status_code == 201
    assert (await book(client, one[0], here, one[1], "one-here-01")).status_code == 201
    assert (await book(client, two[0], there, two[1], "two-there-1")).status_code == 201


async def test_staff_take_no_place_of_another_kind_kept_for_someone(app, client, world, maker,
                                                                    settings) -> None:
    """A help desk books a BPL walk-in: a BPL place is spare (not kept), but not at the slot
    it chose, where only the open place is left — and the room keeps that one for someone."""
    import re

    from teeka.i18n import translate
    from tests.staff import register, staff_client
    from tests.surge.test_room_and_database import helpdesk_book

    here, there, [bpl, one, two] = await _share_full_here(client, world, maker, settings,
                                                          spare_bpl=1)
    kept = ("The places left in this slot are kept for other people admitted from the waiting "
            "room. Choose another slot or centre.")
    async with staff_client(app, "helpdesk") as c:
        r = await register(c, priority_group="bpl", birth_year="1960")
        assert r.status_code == 303, r.text
        found = re.search(r"/staff/helpdesk/people/(\d{14})", r.headers["location"])
        assert found
        walk_in = found[1]
        r = await helpdesk_book(c, walk_in, here)
        assert r.status_code == 409, r.text
        assert translate("hi", kept) in r.text or kept in r.text
    assert (await book(client, bpl[0], there, bpl[1], "bpl-there-1")).status_code == 201
    assert (await book(client, one[0], here, one[1], "one-here-01")).status_code == 201
    assert (await book(client, two[0], there, two[1], "two-there-1")).status_code == 201


def test_what_a_booking_with_a_hold_may_take() -> None:
    bpl, bpl_r, open_ = "first/bpl/1/18-/", "first/bpl/1/18-/r", "first/open/1/18-/"
    # places, held, used: the open places all held, one BPL place spare
    pools = {open_: (2, 2, 0), bpl: (2, 1, 0), "*": (0, 0, 0)}
    assert rules.may_take([bpl], pools) == {bpl: 2}
    assert rules.may_take([open_], pools) == {open_: 1, bpl: 1}
    assert rules.may_take(["*"], pools) is None
    # after the release the places are counted under the released key, the holds made before
    # under the old one: the same places
    assert rules.may_take([bpl], {bpl_r: (2, 0, 0), bpl: (0, 1, 0)}) == {bpl: 2}
    assert rules.spare_places({bpl_r: 2, open_: 2}, {bpl: 1, open_: 2}) == {bpl: 1}
    assert rules.unmarked(bpl_r) == bpl and rules.unmarked(open_) == open_


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_booking_for_some_of_an_account_keeps_the_others_places(kind: str) -> None:
    """A hold keeps a place for each person of the account; a session is for one age band, so
    a family of a 30- and a 60-year-old books one at a time. The first booking uses the places
    it took; the others stay kept and the hold live until it ends (before 28 Nov, eighteenth
    session, the first booking used the whole hold: the rest of the family could not book
    until the room closed). A booking that took its place in a pool the hold did not keep
    takes it off the kept place of the same kind, vaccine and age band; what is left at the
    hold's end goes back."""
    oid = 987670
    store = await drawn_store(kind, oid, "fg", counted_at="0")
    elsewhere = "first/share:senior/1/45-/"
    needs = {"f": [[OLD], [YOUNG]], "g": [[OLD], [YOUNG], [YOUNG]]}
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes=needs,
                     places={YOUNG: 3, OLD: 2, elsewhere: 1})
    assert await store.hold(oid, "f") == "2:160.000:live"
    assert await store.hold(oid, "g") == "3:160.000:live"
    assert await store.claim_hold(oid, "f", now=100.0, live_after=130.0, people=1, mark="m",
                                  until=130.0, key="k1") == (
        "2:160.000:live", [OLD, YOUNG], await store.pools(oid), 1)
    assert await store.use_hold(oid, "f", [OLD], booking="k1")
    # the young person's place is still kept, the hold still live (and no longer claimed)
    assert await store.hold(oid, "f") == "1:160.000:live"
    pools = await store.pools(oid)
    assert pools[OLD] == (2, 1, 1) and pools[YOUNG] == (3, 3, 0)
    held, kept, _, claimed = await store.claim_hold(
        oid, "f", now=101.0, live_after=131.0, people=1, mark="n", until=131.0, key="k2")
    assert (held, kept, claimed) == ("1:160.000:live", [YOUNG], 1)
    assert not await store.use_hold(oid, "f", [OLD], booking="k1")  # a replay: nothing more
    assert await store.use_hold(oid, "f", [YOUNG], booking="k2")
    assert (await store.hold(oid, "f")).endswith(":used")
    pools = await store.pools(oid)
    assert pools[OLD] == (2, 1, 1) and pools[YOUNG] == (3, 2, 1)
    # g's booking for one person took a place in a pool the hold did not keep (the senior
    # share): the kept place of the same kind, vaccine and age band comes off
    assert await store.use_hold(oid, "g", [elsewhere], booking="k3")
    assert await store.hold(oid, "g") == "2:160.000:live"
    pools = await store.pools(oid)
    assert pools[OLD] == (2, 0, 1) and pools[YOUNG] == (3, 2, 1) and pools[elsewhere] == (1, 0, 1)
    # the hold ends: the places still kept go back
    meta = await store.step(oid, now=170.0, rate=10, expires=230.0, sizes={})
    assert (await store.hold(oid, "g")).endswith(":expired")
    pools = await store.pools(oid)
    assert pools[OLD] == (2, 0, 1) and pools[YOUNG] == (3, 0, 1) and pools[elsewhere] == (1, 0, 1)
    assert meta["reserved"] == "3" and meta["used"] == "3" and meta["closed"] == "0"
    await store.reset(oid)


async def test_a_family_of_two_age_bands_books_both_with_one_turn(client, world, maker,
                                                                   settings) -> None:
    """Through the API: one account, a 30- and a 60-year-old, one turn: each books at a
    session of their own age band; a third booking has no hold left."""
    first_day = clock.today() + timedelta(days=1)
    young_sid = await publish(maker, world, centre_id=world.centre_a, min_age=18, max_age=44,
                              dose1=3)
    old_sid = await publish(maker, world, centre_id=world.centre_a, min_age=45, dose1=3)
    [(h, young_ref)] = await bulk_citizens(maker, settings, 1, birth_year=first_day.year - 30)
    from tests.factories import add_beneficiary

    old_ref = await add_beneficiary(client, h, name="Dada Ji", birth_year=first_day.year - 60)
    oid = await make_opening(client, world)
    ticket = (await join(client, h, oid))["token"]
    clock.shift(timedelta(seconds=61))
    seen = await status(client, h, oid, ticket)
    assert seen["state"] == "admitted", seen
    r = await book(client, h, old_sid, old_ref, "family-00001")
    assert r.status_code == 201, r.text
    clock.shift(timedelta(seconds=6))
    seen = await status(client, h, oid, seen["token"])
    assert seen["state"] == "admitted", seen  # still their turn: the other place is kept
    r = await book(client, h, young_sid, young_ref, "family-00002")
    assert r.status_code == 201, r.text
    r = await book(client, h, young_sid, young_ref, "family-00003")
    assert r.status_code == 409 and r.json()["code"] == "HoldRequired", r.text


async def test_nobody_holds_a_place_for_a_dose_they_may_not_have_on_any_day_of_the_scope(
        client, world, maker, settings) -> None:
    """The second dose of Covaxin is given 28 to 42 days after the first. With sessions only
    tomorrow: a first dose two days ago is too early, sixty days ago too late — booking would
    refuse both (DoseTooEarly, DoseWindowPassed), so the room holds no place for them (told
    `none` at once) and the place stays for someone who can take it."""
    from sqlalchemy import select

    from teeka.db import session_scope
    from teeka.models import Beneficiary, DoseRecord, StaffUser, VaccinationSession

    sid = await publish(maker, world, centre_id=world.centre_a, vaccine="COVAXIN", dose1=0,
                        dose2=5)
    people = await bulk_citizens(maker, settings, 3)
    async with session_scope(maker) as db:
        vs = await db.get(VaccinationSession, sid)
        vaccinator = (await db.execute(select(StaffUser.id).limit(1))).scalar_one()
        for (_, ref), days_ago in zip(people, (2, 30, 60), strict=True):
            person = (await db.execute(select(Beneficiary).where(
                Beneficiary.reference_id == ref))).scalar_one()
            db.add(DoseRecord(beneficiary_id=person.id, session_id=sid, centre_id=vs.centre_id,
                              vaccine_id=vs.vaccine_id, dose_number=1, batch="B-1",
                              administered_at=clock.now() - timedelta(days=days_ago),
                              vaccinator_id=vaccinator, created_at=clock.now()))
    oid = await make_opening(client, world)
    tokens = [(await join(client, h, oid))["token"] for h, _ in people]
    clock.shift(timedelta(seconds=61))
    seen = [(await status(client, h, oid, t))["state"]
            for (h, _), t in zip(people, tokens, strict=True)]
    assert seen == ["none", "admitted", "none"], seen
    h, ref = people[1]
    r = await client.post("/api/v1/appointments", headers={**h, "Idempotency-Key": "dose2-0001"},
                          json={"session_id": sid, "slot": SLOT, "beneficiaries": [ref]})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_place_booked_in_another_pool_comes_off_that_persons_kept_place(
        kind: str) -> None:
    """A family's hold keeps an adult's place and a child's. The adult books the same place
    after its share was released (its key marked /r), or a place of their own share freed by a
    cancellation (tried before the open place the room kept): the child's place stays kept,
    not the adult's. A booking of more places than the hold keeps counts them all as used."""
    oid = 987671
    store = await drawn_store(kind, oid, "hjk", counted_at="0")
    hcw, child, open_adult = "first/hcw/1/18-44/", "first/open/1/12-17/", "first/open/1/18-44/"
    needs = {"h": [[hcw], [child]], "j": [[open_adult], [child]], "k": [[OLD]]}
    await store.step(oid, now=100.0, rate=10, expires=160.0, sizes=needs,
                     places={hcw: 1, child: 2, open_adult: 2, OLD: 1})
    assert await store.hold(oid, "h") == "2:160.000:live"
    assert await store.use_hold(oid, "h", [hcw + "r"])  # released while held
    assert await store.hold(oid, "h") == "1:160.000:live"
    pools = await store.pools(oid)
    assert pools[hcw] == (1, 0, 0) and pools[hcw + "r"] == (0, 0, 1) and pools[child] == (2, 2, 0)
    assert await store.use_hold(oid, "j", [hcw])  # own share, not the open place kept
    assert await store.hold(oid, "j") == "1:160.000:live"
    pools = await store.pools(oid)
    assert pools[open_adult] == (2, 0, 0) and pools[hcw] == (1, 0, 1)
    assert pools[child] == (2, 2, 0)  # both children's places still kept
    _, kept, _, _ = await store.claim_hold(oid, "j", now=101.0, live_after=131.0, people=1,
                                              mark="m", until=131.0, key="j2")
    assert kept == [child]
    # k's hold keeps one place; two were booked with it (a race): both count as used
    assert await store.use_hold(oid, "k", [OLD, OLD])
    pools = await store.pools(oid)
    assert pools[OLD] == (1, 0, 2)
    meta = await store.meta(oid)
    assert int(meta["used"]) == sum(p[2] for p in pools.values())
    assert int(meta["reserved"]) == sum(p[1] + p[2] for p in pools.values())
    await store.reset(oid)
