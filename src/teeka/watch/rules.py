"""Who may do what to a problem, and which moves its status may make. Pure."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from teeka import errors
from teeka.auth.actor import Actor
from teeka.models.staff import Role
from teeka.models.watch import ProblemStatus, Severity

TITLE_MAX = 120
DETAILS_MAX = 4000
NOTE_MAX = 4000
# How soon an operator must take a problem of each severity: later, it is shown as overdue.
RESPONSE = {Severity.URGENT: timedelta(minutes=30), Severity.HIGH: timedelta(hours=2),
            Severity.NORMAL: timedelta(hours=24)}

# status now -> (status asked, who may) : operators take, resolve; anyone who sees it reopens
_MOVES: dict[tuple[str, str], str] = {
    (ProblemStatus.OPEN, ProblemStatus.ACKNOWLEDGED): "operator",
    (ProblemStatus.OPEN, ProblemStatus.RESOLVED): "operator",
    (ProblemStatus.ACKNOWLEDGED, ProblemStatus.RESOLVED): "operator",
    (ProblemStatus.RESOLVED, ProblemStatus.OPEN): "anyone",
}


def is_operator(actor: Actor) -> bool:
    """The state's operators (state administrators) watch every district."""
    return actor.has_role(Role.STATE_ADMIN)


def may_raise(actor: Actor) -> bool:
    return actor.has_role(Role.STATE_ADMIN, Role.DISTRICT_ADMIN, Role.HELPDESK, Role.VACCINATOR)


def sees(actor: Actor, district_id: int, centre_id: int | None) -> bool:
    """Operators see every problem; district staff their district's; a vaccinator their
    centre's."""
    if is_operator(actor):
        return True
    if actor.has_role(Role.DISTRICT_ADMIN, Role.HELPDESK):
        return actor.district_id == district_id
    if actor.has_role(Role.VACCINATOR):
        return centre_id is not None and actor.centre_id == centre_id
    return False


def check_move(actor: Actor, now_status: str, to: str) -> None:
    """Refuse a status change that is not allowed from here, or not to this actor."""
    who = _MOVES.get((now_status, to))
    if who is None:
        raise errors.ProblemMoveRefused()
    if who == "operator" and not is_operator(actor):
        raise errors.Forbidden()


def _clean(raw: str) -> str:
    """Text as typed, trimmed: line and paragraph separators become line breaks, other
    spaces a space; control characters (but line breaks and tabs), surrogates and private-use
    characters are dropped. Joiners (ZWJ, ZWNJ), which Hindi spelling needs, are kept."""
    out = []
    for ch in (raw or "").replace("\r\n", "\n"):
        kind = unicodedata.category(ch)
        if ch in "\n\t" or kind in ("Zl", "Zp"):
            out.append("\n" if ch != "\t" else ch)
        elif kind == "Zs":
            out.append(" ")
        elif kind not in ("Cc", "Cs", "Co", "Cn"):
            out.append(ch)
    return "".join(out).strip()


def title(raw: str) -> str:
    text = " ".join(_clean(raw).split())
    if not text:
        raise errors.Invalid(detail="the title is empty")
    if len(text) > TITLE_MAX:
        raise errors.Invalid(detail="the title is longer than {limit} characters",
                             limit=TITLE_MAX)
    return text


def details(raw: str) -> str:
    text = _clean(raw)
    if not text:
        raise errors.Invalid(detail="say what is wrong: the details are empty")
    if len(text) > DETAILS_MAX:
        raise errors.Invalid(detail="the text is longer than {limit} characters",
                             limit=DETAILS_MAX)
    return text


def note(raw: str, *, required: bool) -> str:
    text = _clean(raw)
    if required and not text:
        raise errors.Invalid(detail="write a note saying what was done or why")
    if len(text) > NOTE_MAX:
        raise errors.Invalid(detail="the text is longer than {limit} characters",
                             limit=NOTE_MAX)
    return text


def severity(raw: str) -> Severity:
    try:
        return Severity(raw)
    except ValueError:
        raise errors.Invalid(detail="severity must be urgent, high or normal") from None


def overdue(severity_: str, status: str, opened_at: datetime, now: datetime) -> bool:
    """An open problem nobody has taken within its severity's response time, counted from
    when it was raised or last reopened."""
    return (status == ProblemStatus.OPEN
            and now - opened_at > RESPONSE.get(Severity(severity_), RESPONSE[Severity.NORMAL]))
