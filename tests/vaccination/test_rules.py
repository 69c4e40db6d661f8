from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teeka import errors
from teeka.vaccination import rules


@pytest.mark.parametrize(("raw", "clean"), [
    ("4121Z025", "4121Z025"), ("  abc-12 ", "ABC-12"), ("A", "A"), ("9" * 40, "9" * 40)])
def test_batch_is_cleaned(raw: str, clean: str) -> None:
    assert rules.clean_batch(raw) == clean


@pytest.mark.parametrize("raw", [
    "", "   ", "9" * 41, "AB 12", "AB_12", "AB/12", "AB.12", "४१२१", "ＡＢ12", "AB\n12", "Ä12"])
def test_batch_refuses_anything_but_ascii_letters_digits_and_dashes(raw: str) -> None:
    with pytest.raises(errors.Invalid):
        rules.clean_batch(raw)


@given(st.text(max_size=45))
def test_batch_accepts_exactly_the_allowed_shape(raw: str) -> None:
    stripped = raw.strip()
    allowed = (1 <= len(stripped) <= 40
               and all(c.isascii() and (c.isalnum() or c == "-") for c in stripped))
    try:
        clean = rules.clean_batch(raw)
    except errors.Invalid:
        assert not allowed
    else:
        assert allowed
        assert clean == stripped.upper()


@pytest.mark.parametrize(("given_code", "ok"), [
    ("0427", True), ("0428", False), ("427", False), ("04270", False), ("", False),
    ("०४२७", False), ("04 7", False)])
def test_secret_code_must_be_the_same_four_ascii_digits(given_code: str, ok: bool) -> None:
    assert rules.secret_code_matches(given_code, "0427") is ok


def test_reference_id_shape() -> None:
    assert rules.is_reference_id("12345678901234")
    assert not rules.is_reference_id("1234567890123")
    assert not rules.is_reference_id("1234567890123X")
    assert not rules.is_reference_id("१२३४५६७८९०१२३४")


def test_dose_is_recorded_only_on_the_session_day() -> None:
    rules.check_today(date(2026, 3, 1), date(2026, 3, 1))
    with pytest.raises(errors.NotToday):
        rules.check_today(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(errors.NotToday):
        rules.check_today(date(2026, 2, 28), date(2026, 3, 1))
