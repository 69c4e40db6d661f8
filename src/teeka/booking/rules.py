"""Eligibility and capacity rules. Pure: plain values in, plain values out, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from teeka import errors
from teeka.models.schedule import DoseKind, Share


@dataclass(frozen=True)
class Schedule:
    vaccine_id: int
    code: str
    doses: int
    # intervals[n] = (min_days, max_days) between dose n-1 and dose n, for n >= 2
    intervals: dict[int, tuple[int, int | None]]
    precaution_after_days: int | None = None


@dataclass(frozen=True)
class GivenDose:
    dose_number: int
    vaccine_id: int
    vaccine_code: str
    day: date


def age_on(birth_year: int, day: date) -> int:
    """Age in years on `day`, from the birth year alone (as the national platform did)."""
    return day.year - birth_year


def band_label(min_age: int, max_age: int | None) -> str:
    return f"{min_age}+" if max_age is None else f"{min_age}-{max_age}"


def check_age(birth_year: int, day: date, min_age: int, max_age: int | None) -> None:
    age = age_on(birth_year, day)
    if age < min_age or (max_age is not None and age > max_age):
        raise errors.AgeNotEligible(band=band_label(min_age, max_age), age=age)


def dose_kind(dose_number: int, schedule_doses: int) -> DoseKind:
    if dose_number == 1:
        return DoseKind.FIRST
    if dose_number <= schedule_doses:
        return DoseKind.SECOND
    return DoseKind.PRECAUTION


def next_dose(history: Sequence[GivenDose], schedule_of: dict[int, Schedule]) -> int:
    """The dose number due next, or raise ScheduleComplete."""
    if not history:
        return 1
    last = max(history, key=lambda d: d.dose_number)
    schedule = schedule_of[last.vaccine_id]
    limit = schedule.doses + (1 if schedule.precaution_after_days is not None else 0)
    if last.dose_number >= limit:
        raise errors.ScheduleComplete()
    return last.dose_number + 1


def check_dose(*, history: Sequence[GivenDose], asked_dose: int | None, schedule: Schedule,
               schedule_of: dict[int, Schedule], day: date) -> int:
    """Check that a dose of `schedule`'s vaccine on `day` is what the person is due.

    Returns the dose number. A later dose must be the same vaccine as the first and fall inside
    the interval window counted from the previous dose.
    """
    due = next_dose(history, schedule_of)
    if asked_dose is not None and asked_dose != due:
        raise errors.WrongDose(expected=due, asked=asked_dose)
    if due == 1:
        return due
    last = max(history, key=lambda d: d.dose_number)
    first = min(history, key=lambda d: d.dose_number)
    if schedule.vaccine_id != first.vaccine_id:
        raise errors.WrongVaccine(vaccine=first.vaccine_code)
    earliest, latest = dose_window(last.day, due, schedule)
    if day < earliest:
        raise errors.DoseTooEarly(dose=due, earliest=earliest.strftime("%d-%m-%Y"))
    if latest is not None and day > latest:
        raise errors.DoseWindowPassed(dose=due, latest=latest.strftime("%d-%m-%Y"))
    return due


def window_meets(history: Sequence[GivenDose], due: int, schedule_of: dict[int, Schedule],
                 first: date, last: date) -> bool:
    """Whether dose `due` (after `history`, not empty) may be given on some day from `first` to
    `last` (inclusive), by the schedule of the vaccine the person started with."""
    previous = max(history, key=lambda d: d.dose_number)
    started = min(history, key=lambda d: d.dose_number)
    earliest, latest = dose_window(previous.day, due, schedule_of[started.vaccine_id])
    return earliest <= last and (latest is None or latest >= first)


def dose_window(previous: date, dose_number: int, schedule: Schedule
                ) -> tuple[date, date | None]:
    """First and last day (inclusive) on which `dose_number` may be given."""
    if dose_number <= schedule.doses:
        min_days, max_days = schedule.intervals.get(dose_number, (0, None))
    else:
        min_days, max_days = (schedule.precaution_after_days or 0), None
    latest = previous + timedelta(days=max_days) if max_days is not None else None
    return previous + timedelta(days=min_days), latest


# ---------------------------------------------------------------- priority shares

def split_capacity(total: int, shares: dict[Share, int]) -> dict[Share, int]:
    """Split `total` places by percentage shares (largest remainder), summing exactly to total.

    Percentages must add up to 100. No shares: everything is OPEN.
    """
    if total < 0:
        raise errors.Invalid(detail="capacity must not be negative")
    if not shares:
        return {Share.OPEN: total}
    if sum(shares.values()) != 100 or any(p < 0 for p in shares.values()):
        raise errors.Invalid(detail="priority shares must add up to 100")
    return apportion(total, {s: float(p) for s, p in shares.items()})


def apportion(total: int, weights: dict[Share, float]) -> dict[Share, int]:
    """Split `total` in proportion to `weights` by largest remainder; the parts add up exactly.
    Ties go to the share named first."""
    whole = sum(weights.values())
    if whole <= 0:
        return dict.fromkeys(weights, 0) | {next(iter(weights)): total}
    exact = {s: total * w / whole for s, w in weights.items()}
    result = {s: int(v) for s, v in exact.items()}
    order = list(weights)
    left = total - sum(result.values())
    for s in sorted(exact, key=lambda s: (-(exact[s] - result[s]), order.index(s)))[:left]:
        result[s] += 1
    return result


@dataclass(frozen=True)
class BucketView:
    id: int
    share: Share
    capacity: int
    booked: int
    release_at: datetime | None

    @property
    def free(self) -> int:
        return self.capacity - self.booked


def is_released(release_at: datetime | None, now: datetime) -> bool:
    """Whether a priority share's places are open to everyone by now."""
    return release_at is not None and release_at <= now


def usable_buckets(buckets: Sequence[BucketView], group: str, now: datetime) -> list[BucketView]:
    """Buckets a person of priority `group` may take from, in the order to try them:
    their own share, then the open share, then other shares already released."""
    own = [b for b in buckets if b.share == group and b.share != Share.OPEN]
    open_ = [b for b in buckets if b.share == Share.OPEN]
    released = [b for b in buckets if b.share not in (group, Share.OPEN)
                and is_released(b.release_at, now)]
    return own + open_ + sorted(released, key=lambda b: b.id)


def public_free(buckets: Sequence[BucketView]) -> int:
    """Places anyone could still book: never negative, always the sum of the parts."""
    return sum(max(b.free, 0) for b in buckets)
