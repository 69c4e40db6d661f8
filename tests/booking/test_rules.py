"""Eligibility and share rules, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teeka import errors
from teeka.booking import rules
from teeka.booking.rules import BucketView, GivenDose, Schedule
from teeka.models.schedule import DoseKind, Share

CS = Schedule(vaccine_id=1, code="COVISHIELD", doses=2, intervals={2: (84, 112)},
              precaution_after_days=270)
CX = Schedule(vaccine_id=2, code="COVAXIN", doses=2, intervals={2: (28, 42)})
SCHEDULES = {1: CS, 2: CX}
DAY = date(2021, 6, 1)

days = st.dates(min_value=date(2021, 1, 1), max_value=date(2030, 12, 31))


@given(birth_year=st.integers(1900, 2025), day=days, min_age=st.integers(0, 100),
       span=st.one_of(st.none(), st.integers(0, 80)))
def test_age_band_accepts_exactly_the_ages_inside_it(birth_year: int, day: date, min_age: int,
                                                     span: int | None) -> None:
    max_age = None if span is None else min_age + span
    age = day.year - birth_year
    inside = age >= min_age and (max_age is None or age <= max_age)
    if inside:
        rules.check_age(birth_year, day, min_age, max_age)
    else:
        with pytest.raises(errors.AgeNotEligible):
            rules.check_age(birth_year, day, min_age, max_age)


def test_age_is_counted_from_the_birth_year_on_the_session_date() -> None:
    rules.check_age(2003, date(2021, 1, 1), 18, 44)
    with pytest.raises(errors.AgeNotEligible):
        rules.check_age(2004, date(2021, 12, 31), 18, 44)
    with pytest.raises(errors.AgeNotEligible):
        rules.check_age(1976, date(2021, 5, 1), 18, 44)  # 45: belongs to 45+


@given(first=days, gap=st.integers(0, 400))
def test_second_dose_only_inside_the_interval_window(first: date, gap: int) -> None:
    history = [GivenDose(1, 1, "COVISHIELD", first)]
    day = first + timedelta(days=gap)
    if 84 <= gap <= 112:
        assert rules.check_dose(history=history, asked_dose=2, schedule=CS,
                                schedule_of=SCHEDULES, day=day) == 2
    else:
        expected = errors.DoseTooEarly if gap < 84 else errors.DoseWindowPassed
        with pytest.raises(expected):
            rules.check_dose(history=history, asked_dose=2, schedule=CS, schedule_of=SCHEDULES,
                             day=day)


@given(min_days=st.integers(0, 200), width=st.one_of(st.none(), st.integers(0, 200)), prev=days)
def test_dose_window_is_data_not_code(min_days: int, width: int | None, prev: date) -> None:
    max_days = None if width is None else min_days + width
    sched = Schedule(vaccine_id=9, code="X", doses=2, intervals={2: (min_days, max_days)})
    earliest, latest = rules.dose_window(prev, 2, sched)
    assert earliest == prev + timedelta(days=min_days)
    assert latest == (None if max_days is None else prev + timedelta(days=max_days))


def test_second_dose_must_be_the_same_vaccine() -> None:
    history = [GivenDose(1, 1, "COVISHIELD", DAY)]
    with pytest.raises(errors.WrongVaccine):
        rules.check_dose(history=history, asked_dose=2, schedule=CX, schedule_of=SCHEDULES,
                         day=DAY + timedelta(days=30))


def test_dose_kind_follows_the_history() -> None:
    assert rules.next_dose([], SCHEDULES) == 1
    assert rules.next_dose([GivenDose(1, 2, "COVAXIN", DAY)], SCHEDULES) == 2
    assert rules.dose_kind(1, 2) == DoseKind.FIRST
    assert rules.dose_kind(2, 2) == DoseKind.SECOND
    assert rules.dose_kind(3, 2) == DoseKind.PRECAUTION
    with pytest.raises(errors.WrongDose):
        rules.check_dose(history=[], asked_dose=2, schedule=CS, schedule_of=SCHEDULES, day=DAY)


def test_nothing_after_the_schedule_is_complete() -> None:
    done = [GivenDose(1, 2, "COVAXIN", DAY), GivenDose(2, 2, "COVAXIN", DAY + timedelta(30))]
    with pytest.raises(errors.ScheduleComplete):
        rules.next_dose(done, SCHEDULES)
    # Covishield has a precaution dose, then nothing.
    three = [GivenDose(1, 1, "COVISHIELD", DAY), GivenDose(2, 1, "COVISHIELD", DAY + timedelta(90)),
             GivenDose(3, 1, "COVISHIELD", DAY + timedelta(400))]
    assert rules.next_dose(three[:2], SCHEDULES) == 3
    with pytest.raises(errors.ScheduleComplete):
        rules.next_dose(three, SCHEDULES)


@given(total=st.integers(0, 100_000),
       pcts=st.lists(st.integers(0, 100), min_size=1, max_size=4).filter(lambda p: sum(p) <= 100))
def test_shares_always_add_up_to_the_capacity(total: int, pcts: list[int]) -> None:
    names = [Share.FRONTLINE, Share.AAY, Share.BPL, Share.APL]
    shares = dict(zip(names, pcts, strict=False))
    shares[names[len(pcts) - 1]] += 100 - sum(pcts)
    split = rules.split_capacity(total, shares)
    assert sum(split.values()) == total
    for share, pct in shares.items():
        assert abs(split[share] - total * pct / 100) < 1


def test_court_ordered_shares() -> None:
    split = rules.split_capacity(100, {Share.FRONTLINE: 20, Share.AAY: 12, Share.BPL: 52,
                                       Share.APL: 16})
    assert split == {Share.FRONTLINE: 20, Share.AAY: 12, Share.BPL: 52, Share.APL: 16}
    thirds = rules.split_capacity(10, {Share.AAY: 34, Share.BPL: 33, Share.APL: 33})
    assert sum(thirds.values()) == 10
    with pytest.raises(errors.Invalid):
        rules.split_capacity(10, {Share.AAY: 50, Share.BPL: 40})


def test_unused_shares_open_to_everyone_only_after_release() -> None:
    release = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
    buckets = [BucketView(1, Share.AAY, 3, 0, release), BucketView(2, Share.BPL, 5, 0, release),
               BucketView(3, Share.OPEN, 2, 0, None)]
    before = release - timedelta(seconds=1)
    assert [b.id for b in rules.usable_buckets(buckets, "bpl", before)] == [2, 3]
    assert [b.id for b in rules.usable_buckets(buckets, "none", before)] == [3]
    assert [b.id for b in rules.usable_buckets(buckets, "none", release)] == [3, 1, 2]
    assert [b.id for b in rules.usable_buckets(buckets, "aay", release)] == [1, 3, 2]
    assert rules.public_free(buckets) == 10
