"""Waiting-room arithmetic. Pure."""

from __future__ import annotations

import math
import random


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


def effective_rate(base: float, recent_busy: int) -> float:
    """Slow down when the backend shows stress (recent 503s): halve per 10, never below 10 %."""
    return max(base * 0.1, base / (1 + recent_busy / 10))


def poll_after_s(state: str, estimated_wait_s: int | None) -> int:
    """When a waiting person should ask again: half the estimated wait, 2 to 60 s. Near the
    front that is every 2 s (an admitted person learns it within 2 s; holds last minutes); far
    back, rarely. With people spread along the queue the room is asked about 4-5 times per
    admission in all, so a waiting crowd costs the server little; asking earlier is refused with
    429 at once. Once admitted, used, expired or closed there is nothing to wait for."""
    if state != "waiting":
        return 5
    return min(60, max(2, -(-(estimated_wait_s or 0) // 2)))
