"""Where the waiting room keeps its state: Redis when configured (shared by every process and
host), or this process's memory (the embedded default).

Every change is one atomic step — a Lua script in Redis, a stretch of code without `await` in
memory — so the hot paths (joining, a booking using its hold, the room moving forward) need no
lock and cost one round trip however many processes share the room. Only the draw at the
opening takes the opening's lock (once), because it reads the pre-queue, shuffles it here with
the system's random source, and writes it back.

The queue an opening admits from is the drawn list (everyone who joined before the opening, in
the drawn order) followed by the late list (who joined after, first come first served); a
member's value is its index in that queue, or "pre" before the draw. Entries are account ids;
how many places an account holds (its people, 1-4) is looked up when it is admitted and given to
the step (`sizes`; an account without one stops the step there). Holds are
"size:expires:state" with state live / used / expired.

A live hold is claimed by the booking that passes the gate with it (`claim_hold`: the claim's
end, the booking's random mark and its idempotency key (hashed), "until:marks:key"), until that
booking has committed and used the hold (`use_hold` drops the claim) or has failed
(`release_hold`, by its mark). Another booking of the same account meanwhile is not let
through: two at once would each take the places the one hold keeps, and the second would take
places kept for others. The same booking sent again (the same key: a double submit, a retry
after a lost answer, even after the claim ran out) is let through as a twin (`claim_hold`
answers 2) and adds its own mark to the claim (to a claim that ran out: its mark alone, the
marks there being of bookings that died or whose outcome is unknown): the key's unique row makes it wait for the first
and answer with its booking, and the claim lasts until the last of its marks is released, so
no other booking slips in while a twin is in flight. A claim left by a process that died, or by
a commit whose outcome is unknown, ends by itself. `use_hold` records the key of every booking
whose places it counted ("usedby", comma-separated), so that a booking reported again counts
nothing twice.

`places` is what the room may promise: live holds plus places used with a hold may not exceed
it. It is counted from the database at the draw and again now and then while admitting (the
step's `places`), so places taken or given back outside the room — a help desk's booking, a
capacity change, a cancellation — change what it admits (surge.service, "the room follows the
database").

Places are kept by kind (`pools`, teeka.surge.rules.pool_key: dose kind, priority share,
vaccine, age band): per pool the places counted, the places live holds keep and the places used
with holds. An account is admitted when each of its people gets a place of a kind they can book
(`needs`: each person's candidate pools, in order; `rules.assign`); a person with no such place
left gets none, an account with nobody to place is told so at once (hold state `none`; that
takes no admission credit, and a step may look `lookahead` accounts beyond the credit for
them; `told` in the meta: how many the last step told), and when a person's places are all
held but a live hold there may still come back, the room waits for it (admission stays in
queue order). `places`, `reserved` and `used` in the meta are the sums over the pools, and
`pools` the pools' names (comma-separated). A size (an int) instead of a list of candidates,
and a count instead of a dict, stand for the one pool "*" (the store's own tests).

Being told `none` is not final. A count that finds more places in some pool than the last one
(a priority share released to everyone, a cancellation, capacity added) adds one to `grown` in
the meta; a `none` hold records the `grown` it was told at ("0:<grown>:none"). When such a
person asks again after the room has grown (`recheck`: a status poll or a join), they go back
into line at their own queue index (the `back` line, ordered by index; hold state `back`; `back`
in the meta: how many). A step looks at the back line first, with the same arithmetic, and
admits nobody from the queue while anyone is in it: everyone there came before everyone still
waiting, so the order of the queue holds. Who is told `none` again waits for the next growth.
Only people who ask again are looked at again (a person who has left would only hold places
for nobody until their hold expired).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from teeka.surge.rules import admission_credit, assign, free_places, unmarked

Shuffle = Callable[[list[str]], list[str]]
# An account's people, each with the pools they could book (or just how many, in pool "*")
Needs = Mapping[str, int | Sequence[Sequence[str]]]
ANY = "*"
# A booking's gate: the account's hold, the pools it keeps places in, the room's pools, and
# whether this booking claimed the hold (1), is the same booking as the one that has (2), or
# neither (0)
Claimed = tuple[str | None, list[str], dict[str, tuple[int, int, int]], int]
BUSY_WINDOW_S = 5.0  # signs of stress (503s, slow bookings) count this long
LATELY_S = 30  # ... and, for climbing back after stress (rules.effective_rate), this long


class Store(Protocol):
    def lock(self, opening: int) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def meta(self, opening: int) -> dict[str, str]: ...
    async def member(self, opening: int, account: str) -> str | None: ...
    async def hold(self, opening: int, account: str) -> str | None: ...
    async def claim_hold(self, opening: int, account: str, *, now: float, live_after: float,
                         people: int, mark: str, until: float, key: str) -> Claimed: ...
    async def release_hold(self, opening: int, account: str, mark: str) -> None: ...
    async def at(self, opening: int, start: int, stop: int) -> list[str]: ...
    async def admitted(self, opening: int) -> list[str]: ...
    async def join(self, opening: int, account: str, after_open: bool) -> str: ...
    async def draw(self, opening: int, shuffle: Shuffle, initial: dict[str, str]) -> None: ...
    async def step(self, opening: int, now: float, rate: float, expires: float,
                   sizes: Needs, places: int | Mapping[str, int] | None = None,
                   lookahead: int = 0, used_seen: int | None = None) -> dict[str, str]: ...
    async def pools(self, opening: int) -> dict[str, tuple[int, int, int]]: ...
    async def use_hold(self, opening: int, account: str, booked: int | Sequence[str],
                       *, booking: str = "") -> bool: ...
    async def recheck(self, opening: int, account: str) -> tuple[str | None, int]: ...
    async def back(self, opening: int, n: int) -> list[str]: ...
    async def busy(self, seen: int, done: int, now: float) -> tuple[int, int, int]: ...
    async def close(self, opening: int) -> None: ...
    async def reset(self, opening: int) -> None: ...


def parse_hold(value: str) -> tuple[int, str, str]:
    """A hold's "size:expires:state" as (size, expires, state)."""
    size, expires, state = value.split(":")
    return int(size), expires, state


def _pools_of(flat: Mapping[str, str]) -> dict[str, tuple[int, int, int]]:
    """The pools hash of the Redis store (p:/h:/u:<pool>) as pool -> (places, held, used)."""
    found: dict[str, list[int]] = {}
    for field, value in flat.items():
        found.setdefault(field[2:], [0, 0, 0])["phu".index(field[0])] = int(value)
    return {k: (p[0], p[1], p[2]) for k, p in found.items()}


def _needs(sizes: Needs) -> dict[str, list[list[str]]]:
    return {a: ([[ANY]] * n if isinstance(n, int) else [list(p) for p in n])
            for a, n in sizes.items()}


def _count(places: int | Mapping[str, int] | None) -> dict[str, int] | None:
    return {ANY: places} if isinstance(places, int) else (
        None if places is None else dict(places))


def _booked(booked: int | Sequence[str]) -> list[str]:
    return [ANY] * booked if isinstance(booked, int) else list(booked)


def _kin(key: str) -> str:
    """A pool key without its share and release mark: the kind, vaccine and age band."""
    parts = key.split("/")
    return key if len(parts) < 4 else f"{parts[0]}/{parts[2]}/{parts[3]}"


def _kept_for(kept: Sequence[str], key: str) -> int:
    """Which of a hold's kept places (`kept`, a pool each) a place booked in pool `key` stands
    for: the same pool; else the same pool before or after its share's release; else one of
    the same kind, vaccine and age band (the person's own share freed a place, tried before
    the open one the room kept); else the last. As the Lua's USE_HOLD."""
    for same in (lambda k: k == key, lambda k: unmarked(k) == unmarked(key),
                 lambda k: _kin(k) == _kin(key)):
        for i, k in enumerate(kept):
            if same(k):
                return i
    return len(kept) - 1


class MemoryStore:
    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._meta: dict[int, dict[str, str]] = {}
        self._members: dict[int, dict[str, str]] = {}
        self._pre: dict[int, list[str]] = {}
        self._drawn: dict[int, list[str]] = {}
        self._late: dict[int, list[str]] = {}
        self._holds: dict[int, dict[str, str]] = {}
        self._expiry: dict[int, dict[str, float]] = {}
        self._admitted: dict[int, list[str]] = {}
        self._pools: dict[int, dict[str, list[int]]] = {}  # pool -> [places, held, used]
        self._hold_pools: dict[int, dict[str, list[str]]] = {}
        self._back: dict[int, dict[str, int]] = {}  # account -> its queue index
        # account -> (until, marks, key) of the booking that claimed its hold (its mark and
        # the marks of its twins: the same booking sent again while it is in flight)
        self._claims: dict[int, dict[str, tuple[float, tuple[str, ...], str]]] = {}
        # account -> the keys of the bookings whose places were counted as used with its hold
        self._used_by: dict[int, dict[str, set[str]]] = {}
        self._per_second: dict[tuple[str, int], int] = {}  # ("busy" | "done", second) -> count

    @contextlib.asynccontextmanager
    async def lock(self, opening: int) -> AsyncIterator[None]:
        async with self._locks.setdefault(opening, asyncio.Lock()):
            yield

    async def meta(self, opening: int) -> dict[str, str]:
        return dict(self._meta.get(opening, {}))

    async def member(self, opening: int, account: str) -> str | None:
        return self._members.get(opening, {}).get(account)

    async def hold(self, opening: int, account: str) -> str | None:
        return self._holds.get(opening, {}).get(account)

    async def claim_hold(self, opening: int, account: str, *, now: float, live_after: float,
                         people: int, mark: str, until: float, key: str) -> Claimed:
        """The account's hold, the pools it keeps places in, the room's pools, and whether the
        hold is now claimed for this booking (1: `mark` and `key`, until `until`): only a live
        hold kept past `live_after`, for at least `people`, and not claimed by another booking
        whose claim lasts past `now` — unless that booking has the same `key` (2: a twin, whose
        `mark` joins the claim, which lasts until the last of its marks is released)."""
        held = self._holds.get(opening, {}).get(account)
        claimed = 0
        if held is not None:
            size, expires, state = parse_hold(held)
            claims = self._claims.setdefault(opening, {})
            other = claims.get(account)
            if state == "live" and float(expires) > live_after and people <= size:
                if other is not None and other[2] == key:  # as the Lua: even run out
                    # run out: its marks are of bookings that died or whose outcome is unknown
                    marks = (*other[1], mark) if other[0] > now else (mark,)
                    claims[account] = (max(other[0], until), marks, key)
                    claimed = 2
                elif other is None or other[0] <= now:
                    claims[account] = (until, (mark,), key)
                    claimed = 1
        return (held, list(self._hold_pools.get(opening, {}).get(account, [])),
                await self.pools(opening), claimed)

    async def release_hold(self, opening: int, account: str, mark: str) -> None:
        """A booking that claimed the hold (or joined the claim as a twin) failed: once no
        booking of the claim is left in flight, the hold is free for the next one."""
        claims = self._claims.get(opening, {})
        if account in claims and mark in claims[account][1]:
            until, marks, key = claims[account]
            i = marks.index(mark)  # the first of that mark, as the Redis script does
            left = marks[:i] + marks[i + 1:]
            if left:
                claims[account] = (until, left, key)
            else:
                del claims[account]

    def _queue(self, opening: int) -> list[str]:
        return self._drawn.get(opening, []) + self._late.get(opening, [])

    async def at(self, opening: int, start: int, stop: int) -> list[str]:
        return self._queue(opening)[start:stop]

    async def admitted(self, opening: int) -> list[str]:
        return list(self._admitted.get(opening, []))

    async def join(self, opening: int, account: str, after_open: bool) -> str:
        members = self._members.setdefault(opening, {})
        if account in members:
            return members[account]
        meta = self._meta.setdefault(opening, {})
        if meta.get("opened") == "1":
            late = self._late.setdefault(opening, [])
            late.append(account)
            members[account] = str(int(meta["drawn_n"]) + len(late) - 1)
        elif after_open:  # after the opening time, before the draw: first come, first served
            self._late.setdefault(opening, []).append(account)
            members[account] = "pre"
        else:
            self._pre.setdefault(opening, []).append(account)
            members[account] = "pre"
        return members[account]

    async def draw(self, opening: int, shuffle: Shuffle, initial: dict[str, str]) -> None:
        meta = self._meta.setdefault(opening, {})
        if meta.get("opened") == "1":
            return
        drawn = shuffle(self._pre.pop(opening, []))
        self._drawn[opening] = drawn
        members = self._members.setdefault(opening, {})
        for i, account in enumerate(drawn + self._late.get(opening, [])):
            members[account] = str(i)
        closed = meta.get("closed") == "1"  # closed by hand meanwhile: it stays closed
        meta.update(initial, opened="1", drawn_n=str(len(drawn)))
        if closed:
            meta["closed"] = "1"
        self._pools[opening] = {ANY: [int(initial.get("places", 0)), 0, 0]}

    async def step(self, opening: int, now: float, rate: float, expires: float,
                   sizes: Needs, places: int | Mapping[str, int] | None = None,
                   lookahead: int = 0, used_seen: int | None = None) -> dict[str, str]:
        meta = self._meta.setdefault(opening, {})
        if meta.get("opened") != "1" or meta.get("closed") == "1":
            return dict(meta)
        pools = self._pools.setdefault(opening, {})
        count = _count(places)
        if count is not None:
            if any(v > (pools[k][0] if k in pools else 0) for k, v in count.items()):
                meta["grown"] = str(int(meta.get("grown", 0)) + 1)  # more places than before
            for key in set(pools) | set(count):
                pools.setdefault(key, [0, 0, 0])[0] = count.get(key, 0)
            meta["counted_at"] = f"{now:.3f}"
        grown = meta.get("grown", "0")
        holds = self._holds.setdefault(opening, {})
        hold_pools = self._hold_pools.setdefault(opening, {})
        expiry = self._expiry.setdefault(opening, {})
        for account in [a for a, t in expiry.items() if t <= now]:
            size, _, state = parse_hold(holds[account])
            if state == "live":
                for key in hold_pools.pop(account, []):
                    pools[key][1] -= 1
                holds[account] = f"{size}:0:expired"
            del expiry[account]
        credit = admission_credit(float(meta["credit"]), rate, now - float(meta["credit_at"]))
        nxt = int(meta["next"])
        needs = _needs(sizes)
        told = 0

        def consider(account: str) -> str:
            """One account's turn: "held", "none", or "stop" (the room waits here)."""
            nonlocal credit, told
            need = needs.get(account)
            if need is None:
                return "stop"
            free = free_places(pools)
            if not any(v > 0 for v in free.values()):
                return "stop"  # nothing left to hold: wait for live holds, or close
            picked, wait = assign(free, {k: p[1] for k, p in pools.items()}, need)
            if wait or (picked and credit < 1):
                return "stop"
            if picked:
                for key in picked:
                    pools.setdefault(key, [0, 0, 0])[1] += 1
                hold_pools[account] = picked
                holds[account] = f"{len(picked)}:{expires:.3f}:live"
                expiry[account] = expires
                credit -= 1
                return "held"
            # nothing left of the kinds this account's people can book: told, no credit
            holds[account] = f"0:{grown}:none"
            told += 1
            return "none"

        batch = self._queue(opening)[nxt:nxt + int(credit) + lookahead]
        back = self._back.setdefault(opening, {})
        for account in sorted(back, key=back.__getitem__)[:int(credit) + lookahead]:
            if consider(account) == "stop":
                break
            del back[account]
        if not back:  # the queue only after everyone back in line (they came before)
            for account in batch:
                if consider(account) == "stop":
                    break
                self._admitted.setdefault(opening, []).append(account)
                nxt += 1
        self._sums(meta, pools)
        meta.update(next=str(nxt), credit=repr(credit), credit_at=f"{now:.3f}", told=str(told),
                    back=str(len(back)))
        # Closed only on a count made in this step (never on an old one, nor before the first):
        # a count made while a booking had committed but not yet used its hold is low by that
        # place until the next count; closing on it would send people away from a free place.
        if (count is not None and not expiry
                and all(p[0] - p[1] - p[2] <= 0 for p in pools.values())
                and (used_seen is None or used_seen == sum(p[2] for p in pools.values()))):
            meta["closed"] = "1"
        return dict(meta)

    @staticmethod
    def _sums(meta: dict[str, str], pools: dict[str, list[int]]) -> None:
        meta.update(pools=",".join(sorted(pools)), places=str(sum(p[0] for p in pools.values())),
                    reserved=str(sum(p[1] + p[2] for p in pools.values())),
                    used=str(sum(p[2] for p in pools.values())))

    async def pools(self, opening: int) -> dict[str, tuple[int, int, int]]:
        return {k: (p[0], p[1], p[2]) for k, p in self._pools.get(opening, {}).items()}

    async def use_hold(self, opening: int, account: str, booked: int | Sequence[str],
                       *, booking: str = "") -> bool:
        holds = self._holds.setdefault(opening, {})
        value = holds.get(account)
        pools = self._pools.setdefault(opening, {})
        used_by = self._used_by.setdefault(opening, {})
        if booking and booking in used_by.get(account, ()):
            return False  # this booking counted already (reported again: a replay)
        self._claims.get(opening, {}).pop(account, None)
        if value is not None and parse_hold(value)[2] in ("used", "expired"):
            if booking:
                used_by.setdefault(account, set()).add(booking)
            # As the Lua: a booking that passed the gate while the hold was live, committed
            # after another used it or after it expired: its places count as used.
            for key in _booked(booked):
                pools.setdefault(key, [0, 0, 0])[2] += 1
            self._sums(self._meta[opening], pools)
            return False
        if value is None or parse_hold(value)[2] != "live":
            return False
        size, expires, _ = parse_hold(value)
        hold_pools = self._hold_pools.setdefault(opening, {})
        left = hold_pools.pop(account, [])
        took = _booked(booked)  # where the booking took its places
        for key in took:
            # each place taken comes off the place the hold kept for that person (_kept_for):
            # held there no more, used where it was taken
            pools.setdefault(key, [0, 0, 0])[2] += 1
            if left:
                gone = left.pop(_kept_for(left, key))
                pools[gone][1] -= 1
        rest = left[:max(size - len(took), 0)]
        for key in left[len(rest):]:
            pools[key][1] -= 1
        self._sums(self._meta[opening], pools)
        if booking:
            used_by.setdefault(account, set()).add(booking)
        if rest:
            # people of the account not booked yet (another age band, booked one at a time):
            # their places stay kept, and the hold live, until it ends
            hold_pools[account] = rest
            holds[account] = f"{len(rest)}:{expires}:live"
            return True
        holds[account] = f"{size}:0:used"
        self._expiry.setdefault(opening, {}).pop(account, None)
        return True

    async def recheck(self, opening: int, account: str) -> tuple[str | None, int]:
        """The account's hold; told `none` before the room last grew (and still open): back in
        line at its queue index. With its place in the back line (-1: not in it)."""
        holds = self._holds.setdefault(opening, {})
        back = self._back.setdefault(opening, {})
        meta = self._meta.setdefault(opening, {})
        value = holds.get(account)
        if value is not None and meta.get("closed") != "1":
            _, told_at, state = parse_hold(value)
            if state == "none" and int(told_at) < int(meta.get("grown", 0)):
                back[account] = int(self._members[opening][account])
                value = holds[account] = f"0:{told_at}:back"
                meta["back"] = str(len(back))
        rank = (sorted(back.values()).index(back[account]) if account in back else -1)
        return value, rank

    async def back(self, opening: int, n: int) -> list[str]:
        back = self._back.get(opening, {})
        return sorted(back, key=back.__getitem__)[:max(n, 0)]

    async def busy(self, seen: int, done: int, now: float) -> tuple[int, int, int]:
        """As RedisStore.busy: counts a second each."""
        second = int(now)
        for kind, n in (("busy", seen), ("done", done)):
            if n:
                self._per_second[kind, second] = self._per_second.get((kind, second), 0) + n
        for key in [k for k in self._per_second if k[1] <= second - LATELY_S]:
            del self._per_second[key]

        def over(kind: str, seconds: int) -> int:
            return sum(self._per_second.get((kind, second - i), 0) for i in range(seconds))

        window = int(BUSY_WINDOW_S)
        return over("busy", window), over("done", window), over("busy", LATELY_S)

    async def close(self, opening: int) -> None:
        """Closed by hand: the step admits nobody more, the draw is not made."""
        self._meta.setdefault(opening, {})["closed"] = "1"

    async def reset(self, opening: int) -> None:
        for part in (self._meta, self._members, self._pre, self._drawn, self._late,
                     self._holds, self._expiry, self._admitted, self._pools, self._hold_pools,
                     self._back, self._claims, self._used_by):
            part.pop(opening, None)


# KEYS for every script: meta, members, pre, drawn, late, holds, expiry, admitted, pools (a hash:
# p:<pool> places, h:<pool> held by live holds, u:<pool> used with holds), hold pools (account
# -> the pools its live hold keeps, comma-separated), back (a sorted set: accounts told `none`
# who asked again after the room grew, scored by their queue index), claims (account ->
# "until:marks:key" of the booking that claimed its hold), usedby (account -> the keys of the
# bookings whose places its hold counted, comma-separated)
PARTS = ("meta", "members", "pre", "drawn", "late", "holds", "expiry", "admitted", "pools",
         "hpools", "back", "claims", "usedby")

# ARGV: account, "1" when it is past the opening time (then first come, first served, even
# before the draw has been made)
JOIN = """
local m = redis.call('HGET', KEYS[2], ARGV[1])
if m then return m end
if redis.call('HGET', KEYS[1], 'opened') == '1' then
  local n = redis.call('RPUSH', KEYS[5], ARGV[1])
  local idx = tonumber(redis.call('HGET', KEYS[1], 'drawn_n')) + n - 1
  redis.call('HSET', KEYS[2], ARGV[1], idx)
  return tostring(idx)
end
if ARGV[2] == '1' then
  redis.call('RPUSH', KEYS[5], ARGV[1])
else
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], 'pre')
return 'pre'
"""

# ARGV: n drawn, k initial pairs, the pairs, the n drawn entries (in the drawn order). Who
# joined after the opening time is already on the late list (indices after the drawn); who
# joined the pre-queue while the draw was being made (after it was read) is put after them.
DRAW = """
if redis.call('HGET', KEYS[1], 'opened') == '1' then return 0 end
local n = tonumber(ARGV[1])
local k = tonumber(ARGV[2])
local closed = redis.call('HGET', KEYS[1], 'closed') == '1'  -- closed by hand: stays closed
for i = 1, k do redis.call('HSET', KEYS[1], ARGV[1 + 2 * i], ARGV[2 + 2 * i]) end
if closed then redis.call('HSET', KEYS[1], 'closed', '1') end
local base = 2 + 2 * k
for i = 1, n do
  local e = ARGV[base + i]
  redis.call('RPUSH', KEYS[4], e)
  redis.call('HSET', KEYS[2], e, i - 1)
end
redis.call('LTRIM', KEYS[3], n, -1)
local rest = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
for _, e in ipairs(rest) do redis.call('RPUSH', KEYS[5], e) end
for i, e in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
  redis.call('HSET', KEYS[2], e, n + i - 1)
end
redis.call('HSET', KEYS[1], 'drawn_n', n, 'opened', '1')
redis.call('DEL', KEYS[9], KEYS[10])
redis.call('HSET', KEYS[9], 'p:*', redis.call('HGET', KEYS[1], 'places') or 0, 'h:*', 0, 'u:*', 0)
return 1
"""

# ARGV: now, admission rate per second, expiry time of new holds, look-ahead (how many accounts
# beyond the credit may be told `none`), the places used with holds as the service read them
# before its count (-1: not given; when more have been used since, the count may be low by
# them and the room does not close on it), the number of pools counted now (-1: keep the last
# count) and that many pool, places pairs, then account, needs pairs (the accounts next in line;
# needs: each person's candidate pools, "|" between pools, ";" between people). The room admits
# in queue order while it has credit; telling an account that nothing is left for it takes no
# credit (teeka.surge.rules: admission_credit and assign, the same arithmetic as the memory
# store).
STEP = """
local function meta()
  return redis.call('HGETALL', KEYS[1])
end
if redis.call('HGET', KEYS[1], 'opened') ~= '1' or redis.call('HGET', KEYS[1], 'closed') == '1'
then return meta() end
local P, H, U = {}, {}, {}
local flat = redis.call('HGETALL', KEYS[9])
for i = 1, #flat, 2 do
  local t, k, v = string.sub(flat[i], 1, 1), string.sub(flat[i], 3), tonumber(flat[i + 1])
  if t == 'p' then P[k] = v elseif t == 'h' then H[k] = v else U[k] = v end
end
local c = tonumber(ARGV[6])
local i = 7
if c >= 0 then
  local before, grew = {}, false
  for k, v in pairs(P) do
    before[k] = v
    P[k] = 0
  end
  for _ = 1, c do
    local k, v = ARGV[i], tonumber(ARGV[i + 1])
    P[k] = v
    if v > (before[k] or 0) then grew = true end
    i = i + 2
  end
  redis.call('HSET', KEYS[1], 'counted_at', ARGV[1])
  if grew then redis.call('HINCRBY', KEYS[1], 'grown', 1) end
end
local grown = redis.call('HGET', KEYS[1], 'grown') or '0'
for _, a in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', ARGV[1])) do
  local h = redis.call('HGET', KEYS[6], a)
  if h then
    local size, state = string.match(h, '^(%d+):[^:]*:(%a+)$')
    if state == 'live' then
      local kept = redis.call('HGET', KEYS[10], a)
      if kept then
        for k in string.gmatch(kept, '[^,]+') do H[k] = (H[k] or 0) - 1 end
        redis.call('HDEL', KEYS[10], a)
      end
      redis.call('HSET', KEYS[6], a, size .. ':0:expired')
    end
  end
  redis.call('ZREM', KEYS[7], a)
end
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next'))
local d = tonumber(redis.call('HGET', KEYS[1], 'drawn_n'))
local rate = tonumber(ARGV[2])
local credit = tonumber(redis.call('HGET', KEYS[1], 'credit'))
local elapsed = math.max(tonumber(ARGV[1]) - tonumber(redis.call('HGET', KEYS[1], 'credit_at')), 0)
credit = math.min(credit + rate * elapsed, rate + 1)
local limit = math.min(d + redis.call('LLEN', KEYS[5]),
                       nxt + math.floor(credit) + tonumber(ARGV[4]))
local batch = {}
if nxt < limit then
  if nxt < d then
    for _, e in ipairs(redis.call('LRANGE', KEYS[4], nxt, math.min(limit, d) - 1)) do
      batch[#batch + 1] = e
    end
  end
  if limit > d then
    for _, e in ipairs(redis.call('LRANGE', KEYS[5], math.max(nxt - d, 0), limit - d - 1)) do
      batch[#batch + 1] = e
    end
  end
end
local needs = {}
while i < #ARGV do
  needs[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end
-- Free places of a pool (rules.free_places): a released key's places less the shortfall of
-- its key from before the release, whose holds keep the same places
local function own(k) return (P[k] or 0) - (H[k] or 0) - (U[k] or 0) end
local function free(k)
  local f = own(k)
  if string.sub(k, -2) == '/r' then
    local before = own(string.sub(k, 1, -2))
    if before < 0 then f = f + before end
  end
  return f
end
local function anyfree()
  for k, _ in pairs(P) do
    if free(k) > 0 then return true end
  end
  return false
end
local told = 0
-- One account's turn: 'held', 'none', or 'stop' (the room waits here)
local function consider(a)
  local need = needs[a]
  if need == nil or not anyfree() then return 'stop' end
  local taken, picked, wait = {}, {}, false
  for person in string.gmatch(need, '[^;]+') do
    local options, choice = {}, nil
    for k in string.gmatch(person, '[^|]+') do options[#options + 1] = k end
    for _, k in ipairs(options) do
      if free(k) - (taken[k] or 0) > 0 then
        choice = k
        break
      end
    end
    if choice == nil then
      for _, k in ipairs(options) do
        if (H[k] or 0) > 0 then wait = true end
        if string.sub(k, -2) == '/r' and (H[string.sub(k, 1, -2)] or 0) > 0 then wait = true end
      end
      if wait then break end
    else
      taken[choice] = (taken[choice] or 0) + 1
      picked[#picked + 1] = choice
    end
  end
  if wait or (#picked > 0 and credit < 1) then return 'stop' end
  if #picked > 0 then
    for _, k in ipairs(picked) do H[k] = (H[k] or 0) + 1 end
    redis.call('HSET', KEYS[6], a, #picked .. ':' .. ARGV[3] .. ':live')
    redis.call('HSET', KEYS[10], a, table.concat(picked, ','))
    redis.call('ZADD', KEYS[7], ARGV[3], a)
    credit = credit - 1
    return 'held'
  end
  redis.call('HSET', KEYS[6], a, '0:' .. grown .. ':none')
  told = told + 1
  return 'none'
end
-- First who is back in line (they came before everyone still waiting), then the queue
local room = math.floor(credit) + tonumber(ARGV[4])
if room > 0 then
  for _, a in ipairs(redis.call('ZRANGE', KEYS[11], 0, room - 1)) do
    if consider(a) == 'stop' then break end
    redis.call('ZREM', KEYS[11], a)
  end
end
if redis.call('ZCARD', KEYS[11]) == 0 then
  for _, a in ipairs(batch) do
    if consider(a) == 'stop' then break end
    redis.call('RPUSH', KEYS[8], a)
    nxt = nxt + 1
  end
end
local keys = {}
for k, _ in pairs(P) do keys[k] = true end
for k, _ in pairs(H) do keys[k] = true end
for k, _ in pairs(U) do keys[k] = true end
local places, reserved, used, left = 0, 0, 0, false
local names = {}
for k, _ in pairs(keys) do
  names[#names + 1] = k
  local p, h, u = P[k] or 0, H[k] or 0, U[k] or 0
  places, reserved, used = places + p, reserved + h + u, used + u
  if p - h - u > 0 then left = true end
  redis.call('HSET', KEYS[9], 'p:' .. k, p, 'h:' .. k, h, 'u:' .. k, u)
end
table.sort(names)
redis.call('HSET', KEYS[1], 'places', places, 'reserved', reserved, 'used', used, 'next', nxt,
           'credit', tostring(credit), 'credit_at', ARGV[1], 'told', told,
           'pools', table.concat(names, ','), 'back', redis.call('ZCARD', KEYS[11]))
local seen = tonumber(ARGV[5])
if c >= 0 and not left and redis.call('ZCARD', KEYS[7]) == 0 and (seen < 0 or seen == used)
then
  redis.call('HSET', KEYS[1], 'closed', '1')
end
return meta()
"""

# ARGV: account, the key of the booking (hashed; "" when not known), then the pool of each place
# booked with the hold
USE_HOLD = """
local by = redis.call('HGET', KEYS[13], ARGV[1])
if ARGV[2] ~= '' and by and string.find(',' .. by .. ',', ',' .. ARGV[2] .. ',', 1, true) then
  return 0  -- this booking counted already (reported again: a replay)
end
local h = redis.call('HGET', KEYS[6], ARGV[1])
if not h then return 0 end
local size, state = string.match(h, '^(%d+):[^:]*:(%a+)$')
local n = #ARGV - 2
local function counted()
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[13], ARGV[1], by and (by .. ',' .. ARGV[2]) or ARGV[2])
  end
end
if state == 'used' or state == 'expired' then
  counted()
  -- a booking that passed the gate while the hold was live, committed after another used it
  -- (its claim ran out) or after it expired: its places are taken all the same, and count as
  -- used until the next count
  for j = 3, #ARGV do redis.call('HINCRBY', KEYS[9], 'u:' .. ARGV[j], 1) end
  redis.call('HDEL', KEYS[12], ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'reserved', n)
  redis.call('HINCRBY', KEYS[1], 'used', n)
  return 0
end
if state ~= 'live' then return 0 end
redis.call('HDEL', KEYS[12], ARGV[1])
counted()
size = tonumber(size)
local expires = string.match(h, '^%d+:([^:]*):')
local left = {}
local kept = redis.call('HGET', KEYS[10], ARGV[1])
if kept then
  for k in string.gmatch(kept, '[^,]+') do left[#left + 1] = k end
end
local used = n
local reserved = 0
local function unmark(k)
  if string.sub(k, -2) == '/r' then return string.sub(k, 1, -2) end
  return k
end
local function kin(k)
  local kind, _, vaccine, band = string.match(k, '^([^/]*)/([^/]*)/([^/]*)/([^/]*)/')
  if kind == nil then return k end
  return kind .. '/' .. vaccine .. '/' .. band
end
-- As MemoryStore.use_hold (_kept_for): each place taken comes off the place the hold kept for
-- that person (the same pool; else the same unmarked; else the same kind, vaccine and age band;
-- else the last): held there no more, used where it was taken
local function kept_for(k)
  for i, v in ipairs(left) do if v == k then return i end end
  for i, v in ipairs(left) do if unmark(v) == unmark(k) then return i end end
  for i, v in ipairs(left) do if kin(v) == kin(k) then return i end end
  return #left
end
for j = 3, used + 2 do
  redis.call('HINCRBY', KEYS[9], 'u:' .. ARGV[j], 1)
  reserved = reserved + 1
  if #left > 0 then
    local at = kept_for(ARGV[j])
    redis.call('HINCRBY', KEYS[9], 'h:' .. left[at], -1)
    reserved = reserved - 1
    table.remove(left, at)
  end
end
local rest = math.max(math.min(#left, size - used), 0)
for i = rest + 1, #left do
  redis.call('HINCRBY', KEYS[9], 'h:' .. left[i], -1)
  reserved = reserved - 1
end
redis.call('HINCRBY', KEYS[1], 'reserved', reserved)
redis.call('HINCRBY', KEYS[1], 'used', used)
if rest > 0 then
  -- people of the account not booked yet: their places stay kept, the hold live until it ends
  local still = {}
  for i = 1, rest do still[i] = left[i] end
  redis.call('HSET', KEYS[10], ARGV[1], table.concat(still, ','))
  redis.call('HSET', KEYS[6], ARGV[1], rest .. ':' .. expires .. ':live')
  return 1
end
redis.call('HDEL', KEYS[10], ARGV[1])
redis.call('HSET', KEYS[6], ARGV[1], size .. ':0:used')
redis.call('ZREM', KEYS[7], ARGV[1])
return 1
"""


# ARGV: account, now, live_after, people, mark, until, key. As MemoryStore.claim_hold: the
# hold, the pools it keeps, the room's pools (flat), and 1 when this booking claimed the hold,
# 2 when the booking that has is the same one (its key), 0 otherwise.
CLAIM_HOLD = """
local h = redis.call('HGET', KEYS[6], ARGV[1])
local claimed = 0
if h then
  local size, expires, state = string.match(h, '^(%d+):([^:]*):(%a+)$')
  if state == 'live' and tonumber(expires) > tonumber(ARGV[3])
     and tonumber(ARGV[4]) <= tonumber(size) then
    local other = redis.call('HGET', KEYS[12], ARGV[1])
    local till, marks, key
    if other then
      till, marks, key = string.match(other, '^([^:]+):([^:]*):(.*)$')
      till = tonumber(till)  -- a claim it cannot read (nil) is no claim: never an error
    end
    if till and key == ARGV[7] then
      -- the same booking again (even after its claim ran out: its first may have committed
      -- with its answer lost): it joins the claim, and replays what the first did
      -- run out: its marks are of bookings that died or whose outcome is unknown
      if till > tonumber(ARGV[2]) then marks = marks .. ',' .. ARGV[5]
      else marks = ARGV[5] end
      local till2 = math.max(till, tonumber(ARGV[6]))
      redis.call('HSET', KEYS[12], ARGV[1], till2 .. ':' .. marks .. ':' .. key)
      claimed = 2
    elseif not till or till <= tonumber(ARGV[2]) then
      redis.call('HSET', KEYS[12], ARGV[1], ARGV[6] .. ':' .. ARGV[5] .. ':' .. ARGV[7])
      claimed = 1
    end
  end
end
return {h or false, redis.call('HGET', KEYS[10], ARGV[1]) or false,
        redis.call('HGETALL', KEYS[9]), claimed}
"""

# ARGV: account, mark. A failed booking's mark leaves the claim; the claim, once no mark is left
# (its twins failed too, or there were none), is dropped.
RELEASE_HOLD = """
local c = redis.call('HGET', KEYS[12], ARGV[1])
if not c then return 0 end
local till, marks, key = string.match(c, '^([^:]*):([^:]*):(.*)$')
if not marks then return 0 end
local left, found = {}, false
for m in string.gmatch(marks, '[^,]+') do
  if m == ARGV[2] and not found then found = true else table.insert(left, m) end
end
if not found then return 0 end
if #left == 0 then
  redis.call('HDEL', KEYS[12], ARGV[1])
else
  redis.call('HSET', KEYS[12], ARGV[1], till .. ':' .. table.concat(left, ',') .. ':' .. key)
end
return 0
"""

# ARGV: account. Its hold; told `none` before the room last grew, and the room still open: back
# in line at its queue index. Returns the hold and its place in the back line (-1: not there).
RECHECK = """
local h = redis.call('HGET', KEYS[6], ARGV[1])
if not h then return {false, -1} end
local told_at, state = string.match(h, '^%d+:([^:]*):(%a+)$')
if state == 'none' and redis.call('HGET', KEYS[1], 'closed') ~= '1'
   and tonumber(told_at) < tonumber(redis.call('HGET', KEYS[1], 'grown') or '0') then
  redis.call('ZADD', KEYS[11], redis.call('HGET', KEYS[2], ARGV[1]), ARGV[1])
  h = '0:' .. told_at .. ':back'
  redis.call('HSET', KEYS[6], ARGV[1], h)
  redis.call('HSET', KEYS[1], 'back', redis.call('ZCARD', KEYS[11]))
end
local rank = redis.call('ZRANK', KEYS[11], ARGV[1])
return {h, rank or -1}
"""


class RedisStore:
    """Keys `teeka:wr:{opening}:{part}`; see the scripts above. The draw's lock is a Redis lock
    (redis-py), so several processes and hosts share one queue."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        # A bounded pool that waits (3 s) for a free connection rather than failing at once when
        # a crowd's requests all want one; past that the request is a 503 (web.errors).
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=3,
                                                        decode_responses=True)
        self.r: Any = aioredis.Redis(connection_pool=pool)
        self._join = self.r.register_script(JOIN)
        self._draw = self.r.register_script(DRAW)
        self._step = self.r.register_script(STEP)
        self._use = self.r.register_script(USE_HOLD)
        self._recheck = self.r.register_script(RECHECK)
        self._claim = self.r.register_script(CLAIM_HOLD)
        self._release = self.r.register_script(RELEASE_HOLD)

    def _k(self, opening: int, part: str) -> str:
        return f"teeka:wr:{opening}:{part}"

    def _keys(self, opening: int) -> list[str]:
        return [self._k(opening, p) for p in PARTS]

    @contextlib.asynccontextmanager
    async def lock(self, opening: int) -> AsyncIterator[None]:
        async with self.r.lock(self._k(opening, "lock"), timeout=30, blocking_timeout=30,
                               sleep=0.01):
            yield

    async def meta(self, opening: int) -> dict[str, str]:
        found: dict[str, str] = await self.r.hgetall(self._k(opening, "meta"))
        return found

    async def member(self, opening: int, account: str) -> str | None:
        found: str | None = await self.r.hget(self._k(opening, "members"), account)
        return found

    async def hold(self, opening: int, account: str) -> str | None:
        found: str | None = await self.r.hget(self._k(opening, "holds"), account)
        return found

    async def claim_hold(self, opening: int, account: str, *, now: float, live_after: float,
                         people: int, mark: str, until: float, key: str) -> Claimed:
        """As MemoryStore.claim_hold, in one round trip (a booking's gate)."""
        value, kept, flat, claimed = await self._claim(
            keys=self._keys(opening),
            args=[account, repr(now), repr(live_after), people, mark, repr(until), key])
        pairs = dict(zip(flat[::2], flat[1::2], strict=True))
        return value, [k for k in (kept or "").split(",") if k], _pools_of(pairs), int(claimed)

    async def release_hold(self, opening: int, account: str, mark: str) -> None:
        await self._release(keys=self._keys(opening), args=[account, mark])

    async def at(self, opening: int, start: int, stop: int) -> list[str]:
        drawn = int(await self.r.llen(self._k(opening, "drawn")))
        out: list[str] = []
        if start < min(stop, drawn):
            out += await self.r.lrange(self._k(opening, "drawn"), start, min(stop, drawn) - 1)
        if stop > drawn:
            out += await self.r.lrange(self._k(opening, "late"), max(start - drawn, 0),
                                       stop - drawn - 1)
        return out

    async def admitted(self, opening: int) -> list[str]:
        found: list[str] = await self.r.lrange(self._k(opening, "admitted"), 0, -1)
        return found

    async def join(self, opening: int, account: str, after_open: bool) -> str:
        return str(await self._join(keys=self._keys(opening),
                                    args=[account, "1" if after_open else "0"]))

    async def draw(self, opening: int, shuffle: Shuffle, initial: dict[str, str]) -> None:
        """Call under the opening's lock."""
        if (await self.r.hget(self._k(opening, "meta"), "opened")) == "1":
            return
        drawn = shuffle(await self.r.lrange(self._k(opening, "pre"), 0, -1))
        pairs = [x for kv in initial.items() for x in kv]
        await self._draw(keys=self._keys(opening),
                         args=[len(drawn), len(initial), *pairs, *drawn])

    async def step(self, opening: int, now: float, rate: float, expires: float,
                   sizes: Needs, places: int | Mapping[str, int] | None = None,
                   lookahead: int = 0, used_seen: int | None = None) -> dict[str, str]:
        count = _count(places)
        counted = [] if count is None else [x for kv in count.items() for x in kv]
        needs = [x for a, need in _needs(sizes).items()
                 for x in (a, ";".join("|".join(options) for options in need))]
        flat = await self._step(keys=self._keys(opening),
                                args=[f"{now:.3f}", repr(rate), f"{expires:.3f}", lookahead,
                                      -1 if used_seen is None else used_seen,
                                      -1 if count is None else len(count), *counted, *needs])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def pools(self, opening: int) -> dict[str, tuple[int, int, int]]:
        return _pools_of(await self.r.hgetall(self._k(opening, "pools")))

    async def use_hold(self, opening: int, account: str, booked: int | Sequence[str],
                       *, booking: str = "") -> bool:
        return bool(await self._use(keys=self._keys(opening),
                                    args=[account, booking, *_booked(booked)]))

    async def recheck(self, opening: int, account: str) -> tuple[str | None, int]:
        value, rank = await self._recheck(keys=self._keys(opening), args=[account])
        return value, int(rank)

    async def back(self, opening: int, n: int) -> list[str]:
        if n <= 0:
            return []
        found: list[str] = await self.r.zrange(self._k(opening, "back"), 0, n - 1)
        return found

    async def busy(self, seen: int, done: int, now: float) -> tuple[int, int, int]:
        """Add this process's recent signs of stress and bookings done in time; the counts over
        every process: stress and done over the last few seconds, stress over the last half
        minute (one key a second each)."""
        second = int(now)
        window = int(BUSY_WINDOW_S)
        async with self.r.pipeline(transaction=False) as pipe:
            for kind, n in (("busy", seen), ("done", done)):
                if n:
                    pipe.incrby(f"teeka:wr:{kind}:{second}", n)
                    pipe.expire(f"teeka:wr:{kind}:{second}", LATELY_S * 2)
            pipe.mget([f"teeka:wr:busy:{second - i}" for i in range(LATELY_S)]
                      + [f"teeka:wr:done:{second - i}" for i in range(window)])
            found = (await pipe.execute())[-1]
        counts = [int(x) if x else 0 for x in found]
        return sum(counts[:window]), sum(counts[LATELY_S:]), sum(counts[:LATELY_S])

    async def close(self, opening: int) -> None:
        await self.r.hset(self._k(opening, "meta"), "closed", "1")

    async def reset(self, opening: int) -> None:
        await self.r.delete(*self._keys(opening))
