"""Hindi for every text the code shows, with the same {placeholders}; English as written.

No database: the msgids are read from the sources by teeka.i18n_catalogue.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from teeka import errors
from teeka.i18n import LOCALE_DIR, pick_language, translate
from teeka.i18n_catalogue import (
    DEVANAGARI,
    catalogue,
    missing,
    placeholders,
    source_msgids,
    unknown_dynamic_calls,
)
from teeka.models import AppointmentStatus
from teeka.notification import service as notification

MSGIDS = sorted(source_msgids())
HI = catalogue("hi")


@pytest.fixture(autouse=True)
def _clean() -> None:
    """Replaces conftest's per-test table clean-up: nothing here touches a database."""


def _sample(msgid: str) -> dict[str, str]:
    return {name: f"<{name}>" for name in placeholders(msgid)}


# ---------------------------------------------------------------- the sources are read

def test_sources_yield_the_known_msgids() -> None:
    found = set(MSGIDS)
    assert len(found) >= 60
    assert "No places are left in this slot." in found  # errors.py, _error(...)
    assert errors.DomainError.message in found  # a class-level message
    assert notification.OTP_SMS in found and notification.DOSE_SMS in found  # SMS templates
    assert "Find a vaccination centre" in found  # _("...") in a template
    assert "Menu" in found  # _('...') in a template
    assert {s.value for s in AppointmentStatus} <= found  # _(a.status)
    assert notification.SEND_SMS not in found  # a job name, not a text


def test_every_template_call_has_readable_msgids() -> None:
    assert unknown_dynamic_calls() == []


def test_a_new_msgid_is_found_and_reported_missing(tmp_path: Path) -> None:
    (tmp_path / "errors.py").write_text(
        'New = _error("New", 409, "A brand new message for {who}.")\n'
        'class Old(DomainError):\n    message = "An old-style message."\n', encoding="utf-8")
    (tmp_path / "service.py").write_text(
        'HELLO_SMS = ("Teeka: hello "\n    "{name}.")\nJOB_SMS = "x.send_sms"\n'
        'text = translate(lang, "Literal translate.")\n', encoding="utf-8")
    (tmp_path / "templates" / "sub").mkdir(parents=True)
    (tmp_path / "templates" / "sub" / "page.html").write_text(
        "{{ _(\"Double\") }} {{ _('Single') }} {{ _(x.status) }} {{ _(other) }}",
        encoding="utf-8")

    found = source_msgids(tmp_path)

    assert found == {"A brand new message for {who}.", "An old-style message.",
                     "Teeka: hello {name}.", "Literal translate.", "Double", "Single",
                     *(s.value for s in AppointmentStatus)}
    assert unknown_dynamic_calls(tmp_path) == ["templates/sub/page.html:1"]
    assert "A brand new message for {who}." in missing("hi", found)
    assert "No places are left in this slot." not in missing("hi", found)


# ---------------------------------------------------------------- the Hindi catalogue

def test_hindi_catalogue_header_and_entries_are_clean() -> None:
    with (LOCALE_DIR / "hi" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        cat = read_po(f)
    assert str(cat.locale) == "hi"
    assert cat.charset.lower() == "utf-8"
    assert cat.num_plurals == 2
    assert not cat.obsolete
    assert [m.id for m in cat if m.id and m.fuzzy] == []


def test_english_catalogue_translates_nothing() -> None:
    assert catalogue("en") == {}
    assert (LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").exists()


def test_no_msgid_is_missing_in_hindi() -> None:
    assert missing("hi") == []


@pytest.mark.parametrize("msgid", MSGIDS)
def test_hindi_translation(msgid: str) -> None:
    text = HI.get(msgid, "")
    assert text.strip(), f"no Hindi for {msgid!r}"
    assert DEVANAGARI.search(text), f"not Devanagari: {text!r}"
    assert placeholders(text) == placeholders(msgid)
    assert translate("hi", msgid) == text
    params = _sample(msgid)
    formatted = translate("hi", msgid, **params)
    assert all(value in formatted for value in params.values())
    assert "{" not in formatted and "}" not in formatted


@pytest.mark.parametrize("msgid", MSGIDS)
def test_english_is_the_msgid(msgid: str) -> None:
    assert translate("en", msgid) == msgid
    params = _sample(msgid)
    assert translate("en", msgid, **params) == msgid.format(**params)


def test_translate_fills_placeholders() -> None:
    assert (translate("en", errors.OtpResendTooSoon.message, seconds=30)
            == "Please wait 30 seconds before asking for another OTP.")
    hindi = translate("hi", errors.OtpResendTooSoon.message, seconds=30)
    assert "30" in hindi and "OTP" in hindi and DEVANAGARI.search(hindi)
    assert "9876" in translate("hi", notification.OTP_SMS, otp="9876", minutes=3)
    assert errors.SlotFull().text("hi") == HI["No places are left in this slot."]
    assert errors.SlotFull().text("en") == "No places are left in this slot."
    assert "5" in errors.TooManyBeneficiaries(limit=5).text("hi")


def test_an_unknown_msgid_falls_back_to_english() -> None:
    assert translate("hi", "Not a msgid {x}", x=1) == "Not a msgid 1"


# ---------------------------------------------------------------- choosing the language

@pytest.mark.parametrize(("cookie", "accept", "expected"), [
    ("en", "hi-IN,hi;q=0.9", "en"),  # the cookie wins
    ("hi", "en-GB,en;q=0.8", "hi"),
    (None, "hi-IN,hi;q=0.9", "hi"),
    (None, "hi_IN", "hi"),
    (None, "en-GB", "en"),
    (None, "EN-us,hi;q=0.5", "en"),
    (None, "fr-FR,de;q=0.8,en;q=0.5", "en"),  # first supported one
    (None, "fr-FR,de;q=0.8", "hi"),  # unknown: the default
    (None, "", "hi"),
    (None, None, "hi"),
    ("fr", None, "hi"),  # an unsupported cookie is ignored
    ("fr", "en-GB", "en"),
])
def test_pick_language(cookie: str | None, accept: str | None, expected: str) -> None:
    assert pick_language(cookie, accept) == expected


def test_an_invalid_detail_is_translated_when_it_is_a_msgid_and_never_a_template_otherwise(
        ) -> None:
    from teeka.booking.service import MAX_PER_BOOKING

    known = errors.Invalid(detail="give 1 to {most} different beneficiaries",
                           most=MAX_PER_BOOKING)
    assert known.text("en").endswith(": give 1 to 4 different beneficiaries")
    assert known.text("hi") == "कुछ विवरण मान्य नहीं हैं: 1 से 4 अलग-अलग लाभार्थी चुनें"
    # a detail made of input (field names, say) is shown as it is, braces and all
    typed = errors.Invalid(detail="dose1 {0} {__class__}")
    assert typed.text("hi") == "कुछ विवरण मान्य नहीं हैं: dose1 {0} {__class__}"
    assert typed.text("en") == "Some of the details are not valid: dose1 {0} {__class__}"
