"""Sessions published from a spreadsheet (CSV): every row is checked first, then all or nothing.

One row is one slot of a session; rows with the same (centre_id, date, vaccine, min_age) make one
session, and must agree on max_age, walkin_allowance, shares and share_release_time. Each session
is published through `teeka.centre.service.publish_session`, so a file meets exactly the rules of
the API and the form, in the caller's transaction. Nothing is applied when any row has an error:
`CsvRejected` is raised and the unit of work rolls back.

Rows are numbered as a spreadsheet shows them: the header is row 1. Row 0 is the file as a whole
(its size, its type). Every problem has a stable code and an English detail.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_centre_admin, access_district
from teeka.auth.actor import Actor
from teeka.centre import rules
from teeka.centre.schemas import SessionCreate, SlotCapacity
from teeka.centre.service import publish_session
from teeka.kit import clock
from teeka.models import Vaccine
from teeka.models.schedule import Share

MAX_BYTES = 1024 * 1024
MAX_ROWS = 5000
MAX_SLOTS = 24  # as SessionCreate.slots
MAX_PLACES = 100_000  # as SlotCapacity
MAX_CENTRE_ID = 2**31 - 1  # an INTEGER column on PostgreSQL
COLUMNS = ("centre_id", "date", "vaccine", "min_age", "max_age", "slot", "dose1", "dose2",
           "precaution", "walkin_allowance", "shares", "share_release_time")
FILE = 0  # the row number of problems with the file as a whole
SHOWN_ROWS = 500  # rows with errors listed in an answer; the count covers them all

_WHOLE = re.compile(r"[0-9]{1,12}")
_DMY = re.compile(r"([0-9]{1,2})[-/]([0-9]{1,2})[-/]([0-9]{4})")
_YMD = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class RowError:
    code: str  # stable, e.g. "CentreNotInDistrict"
    detail: str  # English


@dataclass
class ImportReport:
    rows: int = 0  # data rows read (blank lines are not counted)
    sessions_created: int = 0
    errors: dict[int, list[RowError]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, row: int, code: str, detail: str) -> None:
        self.errors.setdefault(row, []).append(RowError(code, detail))

    def as_rows(self, limit: int = SHOWN_ROWS) -> list[dict[str, Any]]:
        """[{"row": 3, "errors": ["..."], "codes": ["..."]}], in row order."""
        return [{"row": row, "errors": [e.detail for e in errs], "codes": [e.code for e in errs]}
                for row, errs in sorted(self.errors.items())[:limit]]


class CsvRejected(errors.DomainError):
    """The file was refused; nothing was applied. `report` holds the per-row errors."""

    code = "CsvRejected"
    status = 422
    message = "The file was not imported: {count} row(s) have errors. Nothing was changed."

    def __init__(self, report: ImportReport) -> None:
        super().__init__(count=len(report.errors))
        self.report = report

    @classmethod
    def single(cls, row: int, code: str, detail: str) -> CsvRejected:
        report = ImportReport()
        report.add(row, code, detail)
        return cls(report)


def too_large() -> CsvRejected:
    return CsvRejected.single(FILE, "TooLarge",
                              "the file is larger than 1 MB; split it into smaller files")


def decode_upload(raw: bytes) -> str:
    """The bytes of an uploaded file as text: at most 1 MB of UTF-8 (a BOM is allowed)."""
    if len(raw) > MAX_BYTES:
        raise too_large()
    if raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise CsvRejected.single(FILE, "NotCsv", "this is a spreadsheet workbook, not CSV; "
                                                 "save it as 'CSV UTF-8 (comma delimited)'")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CsvRejected.single(line, "NotUtf8", "the file is not UTF-8 text; save it as "
                                                  "'CSV UTF-8 (comma delimited)'") from None


def _shown(value: str) -> str:
    """A cell as quoted back in a message: short, printable."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value[:20])
    return text + ("…" if len(value) > 20 else "")


def _detail(exc: errors.DomainError) -> str:
    """The refusal's detail in English, filled from its params (`slot '{slot}' ends before it
    starts` named no slot before)."""
    if "detail" not in exc.params:
        return exc.text("en")
    from teeka.i18n import is_msgid, translate

    detail = str(exc.params["detail"])
    if not is_msgid(detail):  # built from input: shown as it is, never used as a template
        return detail
    return translate("en", detail, **{k: v for k, v in exc.params.items() if k != "detail"})


@dataclass(frozen=True)
class _Row:
    number: int
    centre_id: int
    day: date
    vaccine: str
    min_age: int
    max_age: int | None
    slot: str
    dose1: int
    dose2: int
    precaution: int
    walkin_allowance: int
    shares: dict[Share, int]
    release: time | None

    @property
    def key(self) -> tuple[int, date, str, int]:
        return self.centre_id, self.day, self.vaccine, self.min_age


class _Cells:
    """One row's cells by column; every reader records its own error and returns None."""

    def __init__(self, number: int, values: dict[str, str], report: ImportReport) -> None:
        self.number, self.values, self.report = number, values, report
        self.failed = False

    def error(self, code: str, detail: str) -> None:
        self.failed = True
        self.report.add(self.number, code, detail)

    def text(self, column: str) -> str | None:
        value = self.values[column].strip()
        if value.startswith(("=", "@")):
            self.error("Formula", f"{column} '{_shown(value)}' is a spreadsheet formula; "
                                  "export the values, not formulas")
            return None
        return value

    def blank(self, column: str) -> bool:
        return not self.values[column].strip()

    def whole(self, column: str, low: int, high: int, blank: int | None = None) -> int | None:
        value = self.text(column)
        if value is None:
            return None
        if value == "" and blank is not None:
            return blank
        if value == "":
            self.error("Missing", f"{column} is empty")
            return None
        if not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
            self.error("BadNumber",
                       f"{column} '{_shown(value)}' is not a whole number from {low} to {high}")
            return None
        return int(value)

    def day(self, today: date) -> date | None:
        value = self.text("date")
        if value is None:
            return None
        m = _DMY.fullmatch(value)
        parts = (m[3], m[2], m[1]) if m else None
        if parts is None and (m := _YMD.fullmatch(value)):
            parts = (m[1], m[2], m[3])
        try:
            if parts is None:
                raise ValueError
            day = date(*(int(p) for p in parts))
        except ValueError:
            self.error("BadDate", f"date '{_shown(value)}' is not a date like DD-MM-YYYY")
            return None
        if day < today:
            self.error("SessionPast", f"the session date {day:%d-%m-%Y} has passed")
            return None
        return day

    def vaccine(self, known: set[str]) -> str | None:
        value = self.text("vaccine")
        if value is None:
            return None
        if value.upper() not in known:
            self.error("UnknownVaccine", f"unknown vaccine '{_shown(value)}'" if value
                       else "vaccine is empty")
            return None
        return value.upper()

    def slot(self) -> str | None:
        value = self.text("slot")
        if value is None:
            return None
        try:
            return rules.slot_label(*rules.parse_slot(value))
        except errors.DomainError as exc:
            self.error("BadSlot", _detail(exc))
            return None

    def shares(self) -> dict[Share, int] | None:
        value = self.text("shares")
        if value is None:
            return None
        if len(value) > 200:
            self.error("BadShares", "shares are too long; write them like "
                                    "frontline:20;aay:12;bpl:52;apl:16")
            return None
        try:
            shares = rules.parse_shares(value)
        except errors.DomainError as exc:
            self.error("BadShares", _detail(exc))
            return None
        if any(not 0 <= pct <= 100 for pct in shares.values()):
            self.error("BadShares", "each priority share must be from 0 to 100")
            return None
        return shares

    def release(self) -> time | None:
        value = self.text("share_release_time")
        if not value:
            return None
        m = _HHMM.fullmatch(value)
        if not m:
            self.error("BadTime", f"share_release_time '{_shown(value)}' is not a time like 15:00")
            return None
        return time(int(m[1]), int(m[2]))


def _parse_row(number: int, values: dict[str, str], report: ImportReport, *, today: date,
               vaccines: set[str]) -> tuple[_Row | None, int | None]:
    """The row, or None when it has errors (recorded in the report); and its centre id when that
    alone could be read, so that access is checked for every centre named."""
    cells = _Cells(number, values, report)
    centre_id = cells.whole("centre_id", 1, MAX_CENTRE_ID)
    day = cells.day(today)
    vaccine = cells.vaccine(vaccines)
    min_age = cells.whole("min_age", 0, 120)
    max_age = None if cells.blank("max_age") else cells.whole("max_age", 0, 120)
    if min_age is not None and max_age is not None:
        try:
            rules.check_age_band(min_age, max_age)
        except errors.DomainError:
            cells.error("BadAgeBand", f"max_age {max_age} is below min_age {min_age}")
    slot = cells.slot()
    dose1 = cells.whole("dose1", 0, MAX_PLACES, blank=0)
    dose2 = cells.whole("dose2", 0, MAX_PLACES, blank=0)
    precaution = cells.whole("precaution", 0, MAX_PLACES, blank=0)
    if (dose1, dose2, precaution) == (0, 0, 0):
        cells.error("NoPlaces", "the slot has no places: dose1, dose2 and precaution are all 0")
    walkins = cells.whole("walkin_allowance", 0, MAX_PLACES, blank=0)
    shares = cells.shares()
    release = cells.release()
    if release is not None and shares == {}:
        cells.error("BadTime", "share_release_time is given but there are no shares to release")
    if cells.failed:
        return None, centre_id
    assert centre_id is not None and day is not None and vaccine is not None
    assert min_age is not None and slot is not None
    assert dose1 is not None and dose2 is not None and precaution is not None
    assert walkins is not None and shares is not None
    return _Row(number=number, centre_id=centre_id, day=day, vaccine=vaccine, min_age=min_age,
                max_age=max_age, slot=slot, dose1=dose1, dose2=dose2,
                precaution=precaution, walkin_allowance=walkins, shares=shares,
                release=release), centre_id


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) for each record; a quoted cell may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvRejected.single(number + 1, "BadCsv",
                                     f"the file is not valid CSV here: {exc}") from None
        number += 1
        yield number, cells


def _header(cells: list[str]) -> list[str]:
    names = [c.strip().lstrip("\ufeff").lower() for c in cells]
    problems = []
    if len(names) == 1 and ";" in names[0]:
        problems.append("columns must be separated by commas, not semicolons")
    missing = [c for c in COLUMNS if c not in names]
    unknown = [_shown(n) for n in names if n and n not in COLUMNS]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if missing:
        problems.append("missing column(s): " + ", ".join(missing))
    if unknown:
        problems.append("unknown column(s): " + ", ".join(unknown[:12]))
    if twice:
        problems.append("column(s) given twice: " + ", ".join(twice))
    if problems:
        report = ImportReport()
        for p in problems:
            report.add(1, "BadHeader", p)
        report.add(1, "BadHeader", "the first row must name the columns: " + ",".join(COLUMNS))
        raise CsvRejected(report)
    return names


def _read_rows(text: str, report: ImportReport, *, today: date, vaccines: set[str]
              ) -> tuple[list[_Row], dict[int, list[int]]]:
    """Every data row parsed and checked on its own; errors go to the report. Returns the good
    rows and, for every centre id that could be read, the rows naming it."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise too_large()
    records = _records(text.lstrip("\ufeff"))
    first = next(records, None)
    if first is None or not any(c.strip() for c in first[1]):
        raise CsvRejected.single(1, "BadHeader",
                                 "the first row must name the columns: " + ",".join(COLUMNS))
    names = _header(first[1])
    rows: list[_Row] = []
    centre_rows: dict[int, list[int]] = {}
    for number, cells in records:
        if not any(c.strip() for c in cells):
            continue  # a blank line
        report.rows += 1
        if report.rows > MAX_ROWS:
            raise CsvRejected.single(FILE, "TooManyRows",
                          f"the file has more than {MAX_ROWS} rows; split it into smaller files")
        extra = cells[len(names):]
        if len(cells) < len(names) or any(c.strip() for c in extra):
            report.add(number, "WrongCellCount",
                       f"expected {len(names)} values, found {len(cells)}")
            continue
        row, centre_id = _parse_row(number, dict(zip(names, cells, strict=False)), report,
                                    today=today, vaccines=vaccines)
        if centre_id is not None:
            centre_rows.setdefault(centre_id, []).append(number)
        if row is not None:
            rows.append(row)
    if report.rows == 0:
        report.add(FILE, "NoRows", "the file has a header but no rows")
    return rows, centre_rows


def _group_sessions(rows: list[_Row], report: ImportReport) -> dict[tuple[int, date, str, int],
                                                                   list[_Row]]:
    """Rows of one session together (in file order); rows that disagree with the session's
    first row, or repeat one of its slots, are errors."""
    groups: dict[tuple[int, date, str, int], list[_Row]] = {}
    for row in rows:
        group = groups.setdefault(row.key, [])
        if group:
            first = group[0]
            for name, mine, theirs in (("max_age", row.max_age, first.max_age),
                                       ("walkin_allowance", row.walkin_allowance,
                                        first.walkin_allowance),
                                       ("shares", row.shares, first.shares),
                                       ("share_release_time", row.release, first.release)):
                if mine != theirs:
                    report.add(row.number, "Disagrees", f"{name} differs from row {first.number} "
                                                        "of the same session")
            same = next((r for r in group if r.slot == row.slot), None)
            if same is not None:
                report.add(row.number, "DuplicateSlot",
                           f"slot {row.slot} is already given in row {same.number}")
            elif len(group) >= MAX_SLOTS:
                report.add(row.number, "TooManySlots",
                           f"a session has at most {MAX_SLOTS} slots")
        group.append(row)
    return groups


def may_import(actor: Actor) -> None:
    """Only an administrator (of the state, or of a district) imports sessions; whose centres
    each row may name is checked per centre through access_centre_admin."""
    access_district(actor, actor.district_id if actor.district_id is not None else -1)


async def _check_centres(session: AsyncSession, actor: Actor, centre_rows: dict[int, list[int]],
                         report: ImportReport) -> None:
    for centre_id, numbers in centre_rows.items():
        try:
            await access_centre_admin(session, actor, centre_id)
        except errors.DomainError as exc:
            code, detail = (("CentreNotInDistrict", "centre not in your district")
                            if isinstance(exc, errors.Forbidden)
                            else ("UnknownCentre", "no such centre"))
            for number in numbers:
                report.add(number, code, f"{detail} (centre_id {centre_id})")


def _session_create(rows: list[_Row]) -> SessionCreate:
    first = rows[0]
    return SessionCreate(
        centre_id=first.centre_id, date=first.day, vaccine=first.vaccine, min_age=first.min_age,
        max_age=first.max_age, walkin_allowance=first.walkin_allowance,
        slots=[SlotCapacity(label=r.slot, dose1=r.dose1, dose2=r.dose2, precaution=r.precaution)
               for r in rows],
        shares={str(s): pct for s, pct in first.shares.items()},
        share_release_time=first.release)


async def import_sessions_csv(session: AsyncSession, *, actor: Actor, text: str) -> ImportReport:
    """Publish every session of a CSV file as `actor`, or nothing: raises CsvRejected (with the
    per-row errors) when any row is wrong or any session is refused. Flushes, never commits."""
    may_import(actor)
    report = ImportReport()
    vaccines = set((await session.execute(select(Vaccine.code))).scalars())
    rows, centre_rows = _read_rows(text, report, today=clock.today(), vaccines=vaccines)
    await _check_centres(session, actor, centre_rows, report)
    groups = _group_sessions(rows, report)
    if not report.ok:
        raise CsvRejected(report)
    # No savepoint per session: publish_session refuses before it writes (its one late refusal,
    # a session already there, is undone by its own savepoint), and when anything is refused
    # the whole unit of work rolls back. A savepoint each would cost ~15 % on a 5000-row file.
    for group in groups.values():
        try:
            await publish_session(session, actor=actor, data=_session_create(group))
        except errors.DomainError as exc:
            for row in group:
                report.add(row.number, exc.code, _detail(exc))
        except ValidationError as exc:  # the row checks above should make this unreachable
            for row in group:
                report.add(row.number, "Invalid", exc.errors()[0]["msg"])
        else:
            report.sessions_created += 1
    if not report.ok:
        raise CsvRejected(report)
    await log_action(session, actor=actor.label, action="centre.session.imported",
                     object_type="csv", object_id=hashlib.sha256(text.encode()).hexdigest()[:16],
                     rows=report.rows, sessions=report.sessions_created)
    return report

