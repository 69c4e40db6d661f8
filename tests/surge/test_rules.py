"""The waiting room's arithmetic (pure)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from teeka.surge import rules


@given(st.floats(0, 50), st.floats(0.1, 5000), st.floats(-10, 10_000))
def test_credit_grows_with_time_and_never_allows_a_rush(credit: float, rate: float,
                                                        elapsed: float) -> None:
    after = rules.admission_credit(credit, rate, elapsed)
    assert after <= max(credit, rate + 1.0)  # at most one second's worth (+1) at once
    assert after >= min(credit, rate + 1.0)  # time never takes credit away
    if elapsed <= 0:
        assert after == min(credit, rate + 1.0)


@given(st.integers(0, 10**6))
def test_polls_are_spaced_by_the_wait(wait: int) -> None:
    poll = rules.poll_after_s("waiting", wait)
    assert 2 <= poll <= 60 and (poll == 60 or poll == max(2, (wait + 1) // 2))
    assert rules.poll_after_s("admitted", 0) == rules.poll_after_s("closed", None) == 5
    assert rules.poll_after_s("none", None) == 60  # places of their kind may come back


@given(st.floats(1, 1000), st.integers(0, 10**5), st.integers(0, 10**6))
def test_stress_slows_admissions_to_a_tenth_at_most(base: float, busy: int, done: int) -> None:
    rate = rules.effective_rate(base, busy, done)
    assert base * 0.1 - 1e-9 <= rate <= base
    assert rules.effective_rate(base, busy + 10, done) <= rate  # more stress: not faster
    assert rules.effective_rate(base, busy, done + 10) >= rate  # more done: not slower
    if busy and done >= 9 * busy:  # a tenth of the work refused or slow: 90 % of the rate
        assert rate >= base * 0.9 - 1e-9
    if not done:  # nothing done yet: halve per ten signs of stress, as before
        assert abs(rate - max(base * 0.1, base / (1 + busy / 10))) < 1e-6 * base


@given(st.floats(1, 1000), st.integers(0, 10**5), st.integers(0, 10**6), st.floats(0.5, 60),
       st.integers(0, 10**5))
def test_a_stressed_backend_is_sent_fewer_people_than_it_serves(
        base: float, busy: int, done: int, window: float, lately: int) -> None:
    """Following what bookings complete (`done` over `window` seconds): with more than half of
    the recent work refused or slow, the room admits fewer people a second than bookings were
    done (or a tenth of its rate): the people already admitted are served first. After real
    stress (ten signs in the longer spell) it climbs back at most 1.5 times the bookings
    completing, not straight to its full rate. Otherwise the window changes nothing."""
    lately = max(lately, busy)  # the longer spell holds the shorter
    rate = rules.effective_rate(base, busy, done, window, lately)
    completing = done / window
    assert base * 0.1 - 1e-9 <= rate <= rules.effective_rate(base, busy, done)
    assert rules.effective_rate(base, busy + 10, done, window, lately + 10) <= rate
    assert rules.effective_rate(base, busy, done + 10, window, lately) >= rate
    assert rules.effective_rate(base, busy, done, window, lately + 10) <= rate
    calm = (10 + done) / (10 + done + busy)
    if calm < 0.5:
        assert rate <= max(base * 0.1, completing * (1 - 1e-9))
    if lately >= 10:
        assert rate <= max(base * 0.1, 1.5 * completing * (1 + 1e-9))
    if calm >= 0.5 and lately < 10:
        assert rate == rules.effective_rate(base, busy, done)
    if not busy and lately < 10:
        assert rate == base


def test_the_draw_is_a_permutation_and_not_the_join_order() -> None:
    joined = [f"{i}:1" for i in range(200)]
    drawn = rules.shuffled(joined, random.Random(5))
    assert sorted(drawn) == sorted(joined) and drawn != joined


def test_estimated_wait_counts_the_opening_and_the_people_ahead() -> None:
    assert rules.estimated_wait_s(0, 10, until_open_s=30) == 30
    assert rules.estimated_wait_s(100, 10) == 10
    assert rules.estimated_wait_s(5, 0) == 0
