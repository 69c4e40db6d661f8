"""Vaccinating when the network is gone: the centre downloads its day sheet (every appointment
of the day, printable and as CSV) while it is online, vaccinates from it on paper or in a
spreadsheet, and uploads the filled sheet when the network is back.

Each dose on an uploaded sheet goes through record_dose, as one typed at the centre would, with
the time it was given (teeka.vaccination.service; rules.check_given_offline): the secret code is
checked then (the sheet never holds it), the dose is recorded exactly once (a sheet uploaded
twice, or a dose also recorded online, is `already_recorded`, never a second record), and a
dose the server refuses (a code mistyped, the appointment moved or cancelled meanwhile, the
person not eligible) is kept: the centre's record of every dose given offline is an
OfflineDose row, whatever the outcome, listed to resolve until the appointment is completed.
Each row is its own savepoint: one refused row does not undo the others.

docs/offline.md has the whole flow.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.actor import Actor
from teeka.kit import clock
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    OfflineDose,
    VaccinationSession,
)
from teeka.vaccination import repository as repo
from teeka.vaccination import rules, service
from teeka.vaccination.schemas import CentreAppointmentRead

# Rows one upload may carry (a centre's day; the sheet lists at most repo.SHEET_ROWS).
MAX_ROWS = 5000
# The day sheet's CSV columns: what the sheet says, then what the centre fills in.
SHEET_COLUMNS = ("appointment_id", "session_id", "date", "slot", "reference_id", "name",
                 "birth_year", "gender", "id_number", "vaccine", "dose", "status")
FILLED_COLUMNS = ("secret_code", "batch", "given_at")
# Each row's appointment is locked before anything is read or kept for it. Off only in the
# canary test (tests/concurrency/test_offline_sync.py).
LOCK_FIRST = True
# A spreadsheet opening the CSV runs a cell that starts like a formula: such cells are quoted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class SheetRow:
    """One dose given offline, as the sheet was filled in: its appointment (and the session it
    was in when the sheet was downloaded), the code the person showed, the batch and the time."""

    appointment_id: str
    session_id: str
    secret_code: str
    batch: str
    given_at: datetime


@dataclass
class RowOutcome:
    appointment_id: str
    outcome: str  # "recorded", "already_recorded" or "refused"
    code: str | None = None  # the refusal's code
    message: str | None = None  # the refusal, in the reader's language
    dose_record_id: int | None = None
    line: int | None = None  # the line of the uploaded file, when there was one
    reference_id: str | None = None
    name: str | None = None


@dataclass
class SyncReport:
    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)


def own_centre(actor: Actor) -> int:
    """The centre of the vaccinator; anyone else is refused."""
    return service._own_centre(actor)


async def day_sheet(session: AsyncSession, *, actor: Actor, day: date
                    ) -> list[CentreAppointmentRead]:
    """The centre's appointments of `day` (booked or completed), for working offline:
    downloaded the day before or in the morning, kept for the sync days after."""
    centre_id = own_centre(actor)
    today = clock.today()
    if not today - timedelta(days=rules.SYNC_DAYS) <= day <= today + timedelta(days=1):
        raise errors.SheetDayOutOfRange(days=rules.SYNC_DAYS)
    return await repo.appointments_today(session, centre_id=centre_id, day=day,
                                         limit=repo.SHEET_ROWS)


def sheet_csv(rows: list[CentreAppointmentRead]) -> str:
    """The day sheet as CSV (UTF-8, for a spreadsheet): the columns to fill in are empty; the
    photo-ID number is masked, the secret code is not there."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SHEET_COLUMNS + FILLED_COLUMNS)
    for a in rows:
        writer.writerow([_cell(v) for v in (
            a.appointment_id, a.session_id, a.date.isoformat(), a.slot, a.reference_id, a.name,
            a.birth_year, a.gender, a.id_number_masked, a.vaccine, a.dose, a.status)]
            + ["", "", ""])
    return out.getvalue()


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass
class ReadSheet:
    """An uploaded day sheet: the doses given (rows with anything filled in), the file's line
    of each, and the lines that could not be read (line, message in English, a msgid)."""

    rows: list[SheetRow] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)


_NEEDED = ("appointment_id", "session_id", "date", "secret_code", "batch", "given_at")
_HHMM = re.compile(r"([01]?[0-9]|2[0-3])[:.]([0-5][0-9])")
_YMD = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DMY = re.compile(r"([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4})")


def read_sheet(text: str) -> ReadSheet:
    """The doses on a filled day sheet (CSV, as sheet_csv wrote it, perhaps through a
    spreadsheet: a date written back as DD-MM-YYYY, a code that lost its leading zeros, a time
    as H:MM are understood). Rows with nothing filled in are people not vaccinated."""
    out = ReadSheet()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip().lstrip("\ufeff").lower() for c in next(reader, [])]
        if any(c not in header for c in _NEEDED):
            raise errors.Invalid(detail="the first row must name the day sheet's columns: "
                                        "appointment_id, session_id, date, secret_code, batch, "
                                        "given_at")
        at = {name: header.index(name) for name in _NEEDED}
        for cells in reader:
            line = reader.line_num
            if len(out.rows) + len(out.problems) >= MAX_ROWS:
                raise errors.Invalid(detail="too many rows: at most {max_rows}",
                                     max_rows=MAX_ROWS)
            value = {name: (cells[i].strip() if i < len(cells) else "") for name, i in at.items()}
            if not (value["secret_code"] or value["batch"] or value["given_at"]):
                continue  # not vaccinated
            try:
                out.rows.append(_sheet_row(value))
                out.lines.append(line)
            except errors.DomainError as exc:
                out.problems.append((line, str(exc.params.get("detail", exc.message)),
                                     {k: v for k, v in exc.params.items() if k != "detail"}))
    except csv.Error:
        raise errors.Invalid(detail="the file is not valid CSV") from None
    return out


def _sheet_row(value: dict[str, str]) -> SheetRow:
    day = _day(value["date"])
    time = _HHMM.fullmatch(value["given_at"])
    if time is None:
        raise errors.Invalid(detail="the time given must be like 10:30 (24 hours)")
    if not value["batch"]:
        raise errors.Invalid(detail="the batch number is missing")
    code = value["secret_code"]
    if code.isascii() and code.isdigit() and len(code) < 4:  # a spreadsheet dropped zeros
        code = code.zfill(4)
    return SheetRow(appointment_id=value["appointment_id"][:40],
                    session_id=value["session_id"][:40], secret_code=code[:8],
                    batch=value["batch"][:60],
                    given_at=clock.local_datetime(day, int(time[1]), int(time[2])))


def _day(text: str) -> date:
    try:
        if m := _YMD.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DMY.fullmatch(text):
            return date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        pass
    raise errors.Invalid(detail="the date must be like 2026-11-29 or 29-11-2026")


async def sync(session: AsyncSession, *, actor: Actor, rows: list[SheetRow], lang: str,
               lines: list[int] | None = None) -> SyncReport:
    """Record the doses given offline: each row in its own savepoint, its outcome kept
    (OfflineDose) and returned. Rows for the same appointment twice: the first counts."""
    centre_id = own_centre(actor)
    if len(rows) > MAX_ROWS:
        raise errors.Invalid(detail="too many rows: at most {max_rows}", max_rows=MAX_ROWS)
    report = SyncReport()
    outcomes: dict[int, RowOutcome] = {}
    seen: set[str] = set()
    # In appointment order, whatever the file's: two uploads of overlapping sheets lock the
    # same rows in the same order (one waits for the other; neither deadlocks).
    for i in sorted(range(len(rows)), key=lambda i: (rows[i].appointment_id, i)):
        row, line = rows[i], (lines[i] if lines else None)
        if row.appointment_id in seen:
            outcomes[i] = RowOutcome(row.appointment_id, "already_recorded", line=line)
            continue
        seen.add(row.appointment_id)
        outcomes[i] = await _one(session, actor, centre_id, row, lang, line)
    report.rows = [outcomes[i] for i in range(len(rows))]  # in the file's order
    await log_action(session, actor=actor.label, action="vaccination.day_sheet.synced",
                     object_type="centre", object_id=centre_id, rows=len(rows),
                     recorded=report.count("recorded"),
                     already=report.count("already_recorded"),
                     refused=report.count("refused"))
    return report


async def _one(session: AsyncSession, actor: Actor, centre_id: int, row: SheetRow, lang: str,
               line: int | None) -> RowOutcome:
    # Locked first, as record_dose, a cancel and a move lock it: everything about this
    # appointment here (its record, the centre's row of it) waits for another upload of it.
    appt = await session.get(Appointment, row.appointment_id,
                             with_for_update=LOCK_FIRST) if len(
        row.appointment_id) <= 36 else None
    if appt is None:
        exc: errors.DomainError = errors.NotFound()
        return RowOutcome(row.appointment_id, "refused", exc.code, exc.text(lang), line=line)
    # plain values: the row's savepoint may expire the objects it touched
    appt_id, person_id, now_in, status = (appt.id, appt.beneficiary_id, appt.session_id,
                                          appt.status)
    person = await session.get(Beneficiary, person_id)
    assert person is not None
    ref, name = person.reference_id, person.name
    vs = await session.get(VaccinationSession, row.session_id[:36])
    if vs is None or vs.centre_id != centre_id:  # not a row of this centre's sheet
        exc = errors.WrongCentre()
        return RowOutcome(row.appointment_id, "refused", exc.code, exc.text(lang), line=line)
    day = vs.date
    try:
        if now_in != row.session_id or status == AppointmentStatus.CANCELLED:
            raise errors.AppointmentChanged()
        async with session.begin_nested():
            done = await service.record_dose(session, actor=actor, appointment_id=appt_id,
                                             secret_code=row.secret_code, batch=row.batch,
                                             given_at=row.given_at)
    except errors.DomainError as exc:
        if isinstance(exc, errors.SecretCodeWrong):
            await _count_wrong_code(session, actor, appt_id, ref, centre_id)
        await _keep(session, actor, centre_id, day, row, "refused", exc.code, None)
        return RowOutcome(row.appointment_id, "refused", exc.code, exc.text(lang), line=line,
                          reference_id=ref, name=name)
    await _keep(session, actor, centre_id, day, row, "recorded", None, done.record.id)
    return RowOutcome(row.appointment_id,
                      "already_recorded" if done.already_recorded else "recorded",
                      dose_record_id=done.record.id, line=line, reference_id=ref, name=name)


async def _count_wrong_code(session: AsyncSession, actor: Actor, appointment_id: str,
                            reference_id: str, centre_id: int) -> None:
    """The wrong try's audit entry went with the row's savepoint: written again, so that
    wrong codes on sheets count towards the person's daily limit as typed ones do."""
    await log_action(session, actor=actor.label, action="vaccination.secret_code.rejected",
                     object_type="beneficiary", object_id=reference_id, centre=centre_id,
                     appointment_id=appointment_id, offline=True)


async def _keep(session: AsyncSession, actor: Actor, centre_id: int, day: date, row: SheetRow,
                outcome: str, reason: str | None, record_id: int | None) -> None:
    """The centre's record of this dose given offline, as last uploaded."""
    now = clock.now()
    kept = (await session.execute(select(OfflineDose).where(
        OfflineDose.appointment_id == row.appointment_id))).scalar_one_or_none()
    if kept is None:
        session.add(OfflineDose(centre_id=centre_id, appointment_id=row.appointment_id, day=day,
                                batch=row.batch[:40], given_at=row.given_at, outcome=outcome,
                                reason=reason, dose_record_id=record_id,
                                uploaded_by=actor.label, uploaded_at=now, uploads=1))
    else:
        kept.batch, kept.given_at, kept.outcome = row.batch[:40], row.given_at, outcome
        kept.reason, kept.dose_record_id = reason, record_id
        kept.uploaded_by, kept.uploaded_at, kept.uploads = actor.label, now, kept.uploads + 1
    await session.flush()


async def to_resolve(session: AsyncSession, *, actor: Actor) -> list[repo.OfflineView]:
    """Doses given offline at the vaccinator's centre that are not recorded yet: the last
    upload was refused and the appointment is still not completed."""
    return await repo.offline_to_resolve(session, own_centre(actor))
