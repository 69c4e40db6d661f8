"""Waiting-room arithmetic. Pure."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def admission_credit(credit: float, rate_per_s: float, elapsed_s: float) -> float:
    """How many people the room may admit now: what was left, plus the rate times the time
    since the last step — at most one second's worth (+1), so that after a slow spell (or with
    nobody polling) the room does not admit a rush at once."""
    return min(credit + rate_per_s * max(elapsed_s, 0.0), rate_per_s + 1.0)


def estimated_wait_s(ahead: int, rate_per_s: float, until_open_s: float = 0.0) -> int:
    """An honest estimate: the time until opening plus the people ahead at the admission rate."""
    return math.ceil(max(until_open_s, 0) + (ahead / rate_per_s if rate_per_s > 0 else 0))


def shuffled(accounts: list[str], rng: random.Random | None = None) -> list[str]:
    """Everyone who joined before the opening, in a random order (no advantage in coming early)."""
    out = list(accounts)
    (rng or random.SystemRandom()).shuffle(out)
    return out


STRESS_PRIOR = 10  # signs of stress weigh against this many done bookings before any are seen
DRAIN_AT = 0.5  # a stress share beyond which the room admits fewer people than bookings complete
RAMP = 1.5  # after real stress, admissions at most this many times the bookings completing


def effective_rate(base: float, recent_busy: int, recent_done: int = 0,
                   window_s: float = 0.0, lately_busy: int = 0) -> float:
    """Slow down in proportion to the share of the backend's recent work that shows stress
    (refused with 503, or a booking slower than it should be), never below 10 %.

    With nothing done it halves per 10 signs, as a room that has seen no booking yet cannot
    tell a few refusals from a backend gone; each booking done in time weighs against them, so
    a few pool timeouts among hundreds of bookings a second slow the room a little, not by
    half (seen in the benchmark: 256 bookers on two cores halved admissions while 0.46 cores
    stood idle).

    Given the time the counts cover (`window_s`) the room also follows what bookings complete
    (`recent_done / window_s`). When more than half of the recent work shows stress, admitted
    people are already waiting at the backend's door: it admits fewer people a second than
    bookings complete (the calm share of twice their rate), so that the backlog drains instead
    of holding steady. After real stress (`lately_busy`, the signs over a longer spell, at least
    STRESS_PRIOR) it climbs back from there, at most RAMP times the bookings completing, not
    straight to its full rate. Slowing in proportion alone settled where admissions equal
    completions with the backlog as large as it ever grew, and went back to the full rate as
    soon as a few seconds passed without a refusal: in the benchmark three refusals for every
    booking, admissions in bursts of 500 a second on a backend completing 110, admitted people
    waiting up to a minute and hundreds of their holds running out while the door refused
    them."""
    if recent_busy <= 0 and (window_s <= 0 or lately_busy < STRESS_PRIOR):
        return base
    healthy = STRESS_PRIOR + max(recent_done, 0)
    calm = healthy / (healthy + max(recent_busy, 0))
    rate = base * calm
    if window_s > 0 and (calm < 1 - DRAIN_AT or lately_busy >= STRESS_PRIOR):
        completing = max(recent_done, 0) / window_s
        rate = min(rate, min(RAMP, calm / (1 - DRAIN_AT)) * completing)
    return max(base * 0.1, rate)


def poll_after_s(state: str, estimated_wait_s: int | None) -> int:
    """When a waiting person should ask again: half the estimated wait, 2 to 60 s. Near the
    front that is every 2 s (an admitted person learns it within 2 s; holds last minutes); far
    back, rarely. With people spread along the queue the room is asked about 4-5 times per
    admission in all, so a waiting crowd costs the server little; asking earlier is refused with
    429 at once. Once admitted, used, expired or closed there is nothing to wait for; told
    that nothing is left of their kind, a minute (places may come back: a share released to
    everyone, a cancellation)."""
    if state == "none":
        return 60
    if state != "waiting":
        return 5
    return min(60, max(2, -(-(estimated_wait_s or 0) // 2)))


# ---------------------------------------------------------------- kinds of places
# The room holds places of the kind a person can book (docs/surge.md, "Kinds of places"): a
# pool is the places of one dose kind, priority share, vaccine and age band, and whether the
# share has been released to everyone. Keys are plain strings (they live in Redis).


def pool_key(kind: str, share: str, vaccine_id: int, min_age: int, max_age: int | None,
             released: bool) -> str:
    """`first/open/1/18-44/` — the places a booking takes or a hold keeps. `released` only
    matters for a priority share (open places are everyone's)."""
    band = f"{min_age}-{'' if max_age is None else max_age}"
    return f"{kind}/{share}/{vaccine_id}/{band}/{'r' if released and share != 'open' else ''}"


@dataclass(frozen=True)
class Pool:
    kind: str
    share: str
    vaccine_id: int
    min_age: int
    max_age: int | None
    released: bool

    @classmethod
    def parse(cls, key: str) -> Pool | None:
        """The pool of a key; None for a key of another form (the store's tests use "*")."""
        return _parse(key)


@functools.lru_cache(maxsize=4096)
def _parse(key: str) -> Pool | None:
    parts = key.split("/")
    if len(parts) != 5:
        return None
    kind, share, vaccine, band, released = parts
    low, _, high = band.partition("-")
    return Pool(kind, share, int(vaccine), int(low), int(high) if high else None,
                released == "r")


def unmarked(key: str) -> str:
    """A pool's key without its release mark: the same places before and after their share is
    released (pool_key(..., released=False))."""
    return key[:-1] if key.endswith("/r") else key


def may_take(kept: Sequence[str], pools: Mapping[str, tuple[int, int, int]]
             ) -> dict[str, int] | None:
    """The places a booking made with a hold may take, by unmarked pool key: the places the hold
    keeps (`kept`, a pool each), and in every pool the places nobody's hold keeps (`pools`:
    places, held, used, as the room last counted them). Any other place is promised to someone
    admitted. None: no limit (a hold kept as the stores' tests keep them, of no pool)."""
    if any(Pool.parse(key) is None for key in kept):
        return None
    out = spare_places({k: p[0] - p[2] for k, p in pools.items()},
                       {k: p[1] for k, p in pools.items()})
    for key in kept:
        out[unmarked(key)] = out.get(unmarked(key), 0) + 1
    return out


def spare_places(free: Mapping[str, int], held: Mapping[str, int]) -> dict[str, int]:
    """By unmarked pool key, the free places (`free`, as the database counts them) beyond what
    live holds keep (`held`): what a booking without a hold may take while the room is open."""
    out = unmarked_sums({k: free.get(k, 0) - held.get(k, 0) for k in set(free) | set(held)})
    return {k: n for k, n in out.items() if n > 0}


def unmarked_sums(by_key: Mapping[str, int]) -> dict[str, int]:
    """Figures by pool summed by unmarked key (a share's places move to its released key at the
    release, while the holds made before stay under the old one); keys of no pool left out."""
    out: dict[str, int] = {}
    for key, n in by_key.items():
        if Pool.parse(key) is not None:
            out[unmarked(key)] = out.get(unmarked(key), 0) + n
    return out


@dataclass(frozen=True)
class Need:
    """What one person of an account can book: the dose kind due, the vaccine it must be (a
    later dose is the first one's vaccine; None: any), their age and priority group."""

    kind: str
    vaccine_id: int | None
    age: int | None  # None: not known (any age band)
    group: str


def candidates(need: Need, pools: list[str]) -> list[str]:
    """The pools whose places `need` could book, in the order booking tries buckets
    (teeka.booking.rules.usable_buckets): their own share, the open share, then other shares
    already released."""
    own: list[str] = []
    open_: list[str] = []
    released: list[str] = []
    for key in sorted(pools):
        pool = Pool.parse(key)
        if (pool is None or pool.kind != need.kind
                or (need.vaccine_id is not None and pool.vaccine_id != need.vaccine_id)
                or (need.age is not None and (
                    need.age < pool.min_age
                    or (pool.max_age is not None and need.age > pool.max_age)))):
            continue
        if pool.share == "open":
            open_.append(key)
        elif pool.share == need.group:
            own.append(key)
        elif pool.released:
            released.append(key)
    return own + open_ + released


def free_places(pools: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """The places the room may still promise in each pool (`pools`: places, held, used). When
    a share is released, the count moves its places to the released key while the holds made
    before stay under the old one: that key's shortfall is taken from the released key's
    places (the same places), so they are not promised twice. The same arithmetic runs in
    Lua."""
    free = {k: p[0] - p[1] - p[2] for k, p in pools.items()}
    for key in list(free):
        if key.endswith("/r") and free.get(key[:-1], 0) < 0:
            free[key] += free[key[:-1]]
    return free


def assign(free: dict[str, int], held: dict[str, int], need: list[list[str]]
           ) -> tuple[list[str], bool]:
    """Which pool keeps a place for each person of an account being admitted (`need`: each
    person's candidate pools, in order), given the places `free` per pool (not held, not used)
    and the live holds per pool. Returns the pools picked (a person with no place left of
    their kind gets none) and whether to wait instead: a person's places are all held but a
    live hold there may still come back. The same arithmetic runs in the store's step (Lua
    and memory)."""
    taken: dict[str, int] = {}
    picked: list[str] = []
    for options in need:
        choice = next((k for k in options if free.get(k, 0) - taken.get(k, 0) > 0), None)
        if choice is None:
            if any(held.get(k, 0) > 0 or (k.endswith("/r") and held.get(k[:-1], 0) > 0)
                   for k in options):  # (a hold made before the release keeps these places)
                return [], True
            continue
        taken[choice] = taken.get(choice, 0) + 1
        picked.append(choice)
    return picked, False
