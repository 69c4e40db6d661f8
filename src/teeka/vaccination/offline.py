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
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.actor import Actor
from teeka.i18n import translate
from teeka.kit import clock
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    DoseRecord,
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

    appointment_id: str  # empty for a walk-in: then `reference_id` says who
    session_id: str
    secret_code: str
    batch: str
    given_at: datetime | None = None  # the moment (the API)
    given_time: time | None = None  # or the time of the session's day (an uploaded sheet)
    reference_id: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        """Rows are taken in this order (appointments, then walk-ins by person and session):
        the same in every upload, so that two uploads lock the same rows in the same order."""
        if self.appointment_id:
            return (0, self.appointment_id, "")
        return (1, self.reference_id, self.session_id)


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


def sheet_csv(rows: list[CentreAppointmentRead], sessions: list[repo.SessionToday],
              day: date) -> str:
    """The day sheet as CSV (UTF-8, for a spreadsheet): the columns to fill in are empty; the
    photo-ID number is masked, the secret code is not there. Then blank walk-in lines for each
    session with walk-in places left (reference_id to fill in too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SHEET_COLUMNS + FILLED_COLUMNS)
    for a in rows:
        writer.writerow([_cell(v) for v in (
            a.appointment_id, a.session_id, a.date.isoformat(), a.slot, a.reference_id, a.name,
            a.birth_year, a.gender, a.id_number_masked, a.vaccine, a.dose, a.status)]
            + ["", "", ""])
    for vs in sessions:
        for _ in range(min(WALKIN_LINES, vs.walkins_left)):
            writer.writerow(["", vs.id, day.isoformat(), "", "", "", "", "", "", vs.vaccine,
                             "", "walk-in", "", "", ""])
    return out.getvalue()


async def walkin_sessions(session: AsyncSession, *, actor: Actor, day: date
                          ) -> list[repo.SessionToday]:
    """The centre's sessions of the day that take walk-ins, for the sheet's blank lines."""
    return [vs for vs in await repo.sessions_today(session, centre_id=own_centre(actor),
                                                   day=day) if vs.walkins_left > 0]


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


# The columns read back (the others are there for the people filling the sheet in).
_NEEDED = ("appointment_id", "session_id", "reference_id", "secret_code", "batch", "given_at")
# Blank walk-in lines a sheet offers per session (at most what its allowance has left)
WALKIN_LINES = 30
# 10:30, 10.30, 10:30:00, 10:30 AM, 1:05pm: what spreadsheets write back
_TIME = re.compile(r"([0-9]{1,2})[:.]([0-5][0-9])(?:[:.][0-5][0-9])?\s*([AaPp][Mm])?")
# ids are uuids: anything else is no row (and never reaches the database)
_ID = re.compile(r"[0-9A-Za-z-]{1,36}")
_REF = re.compile(r"[0-9]{14}")


def read_sheet(text: str) -> ReadSheet:
    """The doses on a filled day sheet (CSV, as sheet_csv wrote it, perhaps through a
    spreadsheet: a code that lost its leading zeros, a time as H:MM, HH:MM:SS or with AM/PM are
    understood; the day is the session's, whatever the date column became). Rows with nothing
    filled in are people not vaccinated."""
    out = ReadSheet()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip().lstrip("\ufeff").lower() for c in next(reader, [])]
        if any(c not in header for c in _NEEDED):
            raise errors.Invalid(detail="the first row must name the day sheet's columns: "
                                        "appointment_id, session_id, reference_id, "
                                        "secret_code, batch, given_at")
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
    given = _given_time(value["given_at"])
    if not value["batch"]:
        raise errors.Invalid(detail="the batch number is missing")
    code = value["secret_code"]
    if code.isascii() and code.isdigit() and len(code) < 4:  # a spreadsheet dropped zeros
        code = code.zfill(4)
    appointment = value["appointment_id"][:40]
    return SheetRow(appointment_id=appointment, session_id=value["session_id"][:40],
                    secret_code=code[:8], batch=value["batch"][:60], given_time=given,
                    reference_id="" if appointment else value["reference_id"].strip()[:20])


def _given_time(text: str) -> time:
    m = _TIME.fullmatch(text.strip())
    hour = int(m[1]) if m else 99
    if m and m[3]:  # 12-hour clock
        hour = -1 if not 1 <= hour <= 12 else hour % 12 + (12 if m[3].lower() == "pm" else 0)
    if m is None or not 0 <= hour <= 23:
        raise errors.Invalid(detail="the time given must be like 10:30 (24 hours)")
    return time(hour, int(m[2]))


async def sync(session: AsyncSession, *, actor: Actor, rows: list[SheetRow], lang: str,
               lines: list[int] | None = None) -> SyncReport:
    """Record the doses given offline: each row in its own savepoint, its outcome kept
    (OfflineDose) and returned. Lines for the same appointment twice: the first that is
    recorded counts, the others are `already_recorded`."""
    centre_id = own_centre(actor)
    if len(rows) > MAX_ROWS:
        raise errors.Invalid(detail="too many rows: at most {max_rows}", max_rows=MAX_ROWS)
    report = SyncReport()
    outcomes: dict[int, RowOutcome] = {}
    settled: set[tuple[int, str, str]] = set()
    # In appointment order, whatever the file's: two uploads of overlapping sheets lock the
    # same rows in the same order (one waits for the other; neither deadlocks).
    walkers_locked = False
    for i in sorted(range(len(rows)), key=lambda i: (rows[i].key, i)):
        row, line = rows[i], (lines[i] if lines else None)
        if not row.appointment_id and not walkers_locked:
            await _lock_walkers(session, rows, centre_id)
            walkers_locked = True
        if row.key in settled:  # a second line for a dose recorded above
            outcomes[i] = RowOutcome(row.appointment_id, "already_recorded", line=line)
            continue
        one = _one if row.appointment_id else _walkin
        outcomes[i] = await one(session, actor, centre_id, row, lang, line)
        if outcomes[i].outcome != "refused":
            settled.add(row.key)  # a refused line's next copy (corrected) is tried
    report.rows = [outcomes[i] for i in range(len(rows))]  # in the file's order
    await log_action(session, actor=actor.label, action="vaccination.day_sheet.synced",
                     object_type="centre", object_id=centre_id, rows=len(rows),
                     recorded=report.count("recorded"),
                     already=report.count("already_recorded"),
                     refused=report.count("refused"))
    return report


def _refused(row: SheetRow, exc: errors.DomainError, lang: str, line: int | None,
             who: tuple[str, str] | None = None) -> RowOutcome:
    return RowOutcome(row.appointment_id, "refused", exc.code, exc.text(lang), line=line,
                      reference_id=who[0] if who else None, name=who[1] if who else None)


async def _one(session: AsyncSession, actor: Actor, centre_id: int, row: SheetRow, lang: str,
               line: int | None) -> RowOutcome:
    if not (_ID.fullmatch(row.appointment_id) and _ID.fullmatch(row.session_id)):
        return _refused(row, errors.NotFound(), lang, line)
    # Locked first, as record_dose, a cancel and a move lock it: everything about this
    # appointment here (its record, the centre's row of it) waits for another upload of it.
    appt = await session.get(Appointment, row.appointment_id, with_for_update=LOCK_FIRST)
    if appt is None:
        return _refused(row, errors.NotFound(), lang, line)
    sheet = await session.get(VaccinationSession, row.session_id)
    if sheet is None or sheet.centre_id != centre_id:  # not a line of this centre's sheet
        return _refused(row, errors.WrongCentre(), lang, line)
    # plain values: the row's savepoint may expire the objects it touched
    appt_id, person_id, now_in, status = (appt.id, appt.beneficiary_id, appt.session_id,
                                          appt.status)
    day = sheet.date
    try:
        given_at = _moment(row, day)
    except errors.Invalid as exc:
        return _refused(row, exc, lang, line)
    # Who it is, only when the appointment is (still) at this centre: an id of another
    # centre's appointment does not tell this centre whose it is.
    now_at = sheet if now_in == sheet.id else await session.get(VaccinationSession, now_in)
    person = await session.get(Beneficiary, person_id)
    assert person is not None
    who = None
    if now_at is not None and now_at.centre_id == centre_id:
        who = (person.reference_id, person.name)
    kept = _Kept(centre_id, row, day, given_at, person.reference_id, sheet.id)
    earlier = (await session.execute(select(DoseRecord.id, DoseRecord.session_id).where(
        DoseRecord.appointment_id == appt_id))).first()
    if earlier is not None and earlier.session_id == sheet.id:
        # recorded already (online, or by an earlier upload): nothing to check again
        await _keep(session, actor, kept, "recorded", None, earlier.id)
        return RowOutcome(row.appointment_id, "already_recorded", dose_record_id=earlier.id,
                          line=line, reference_id=who[0] if who else None,
                          name=who[1] if who else None)
    try:
        if now_in != sheet.id or status != AppointmentStatus.BOOKED:
            # moved, cancelled, or vaccinated elsewhere. The code is checked all the same: the
            # district may record such a line later (teeka.vaccination.resolve), and only the
            # person's own code shows that it was them.
            async with session.begin_nested():
                await service.check_secret_code(session, actor, person, row.secret_code,
                                                appointment_id=appt_id)
            raise errors.AppointmentChanged()
        async with session.begin_nested():
            done = await service.record_dose(session, actor=actor, appointment_id=appt_id,
                                             secret_code=row.secret_code, batch=row.batch,
                                             given_at=given_at)
    except errors.DomainError as exc:
        if isinstance(exc, errors.SecretCodeWrong):
            # counted whoever's it is (an appointment now at another centre too): else a sheet
            # could try every code of a person without the day's limit ever counting
            await _count_wrong_code(session, actor, appt_id, kept.reference_id, centre_id)
        await _keep(session, actor, kept, "refused", exc.code, None)
        return _refused(row, exc, lang, line, who)
    await _keep(session, actor, kept, "recorded", None, done.record.id)
    return RowOutcome(row.appointment_id,
                      "already_recorded" if done.already_recorded else "recorded",
                      dose_record_id=done.record.id, line=line,
                      reference_id=who[0] if who else None, name=who[1] if who else None)


def _moment(row: SheetRow, day: date) -> datetime:
    """When the line's dose was given: its moment (the API), or its time on the session's day
    (a sheet). A moment that cannot be compared (year 1, 9999) is Invalid."""
    try:
        given_at = row.given_at if row.given_at is not None else clock.local_datetime(
            day, (row.given_time or time(0)).hour, (row.given_time or time(0)).minute)
        given_at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise errors.Invalid(detail="the time of the dose must be on the session's day and "
                                    "not later than now") from None
    return given_at


async def _walkin(session: AsyncSession, actor: Actor, centre_id: int, row: SheetRow,
                  lang: str, line: int | None) -> RowOutcome:
    """A person without an appointment, vaccinated offline: by reference id, in a session of
    the sheet, from its walk-in allowance (record_walkin). The person is named in the answer
    only once their secret code was found right."""
    if not _ID.fullmatch(row.session_id):
        return _refused(row, errors.NotFound(), lang, line)
    sheet = await session.get(VaccinationSession, row.session_id)
    if sheet is None or sheet.centre_id != centre_id:
        return _refused(row, errors.WrongCentre(), lang, line)
    day, sheet_id = sheet.date, sheet.id
    try:
        given_at = _moment(row, day)
    except errors.Invalid as exc:
        return _refused(row, exc, lang, line)
    # Locked (sync locked every walk-in person of the upload at once, before the first one)
    person = (await session.execute(select(Beneficiary).where(
        Beneficiary.reference_id == row.reference_id))).scalar_one_or_none() \
        if _REF.fullmatch(row.reference_id) else None
    if person is None:  # kept as typed: a line that names nobody is still a dose given
        # its record has no appointment or person to lock: the session's row, locked with the
        # walk-in people (_lock_walkers), keeps two uploads' records of it apart
        await _keep(session, actor, _Kept(centre_id, row, day, given_at,
                                          row.reference_id[:14], sheet_id),
                    "refused", errors.NotFound.code, None)
        return _refused(row, errors.NotFound(), lang, line)
    ref, name, person_id = person.reference_id, person.name, person.id
    kept = _Kept(centre_id, row, day, given_at, ref, sheet_id)
    earlier = (await session.execute(select(DoseRecord.id).where(
        DoseRecord.beneficiary_id == person_id, DoseRecord.session_id == sheet_id,
        DoseRecord.walk_in.is_(True)))).scalars().first()
    if earlier is not None:  # recorded already: nothing to check again, no wrong try to count
        await _keep(session, actor, kept, "recorded", None, earlier)
        return RowOutcome(row.appointment_id, "already_recorded", dose_record_id=earlier,
                          line=line, reference_id=ref, name=name)
    try:
        async with session.begin_nested():
            done = await service.record_walkin(session, actor=actor, session_id=sheet_id,
                                               reference_id=ref, secret_code=row.secret_code,
                                               batch=row.batch, given_at=given_at)
    except errors.DomainError as exc:
        if isinstance(exc, errors.SecretCodeWrong):
            await _count_wrong_code(session, actor, None, ref, centre_id)
        await _keep(session, actor, kept, "refused", exc.code, None)
        return _refused(row, exc, lang, line,
                        None if exc.code in repo.UNIDENTIFIED else (ref, name))
    await _keep(session, actor, kept, "recorded", None, done.record.id)
    return RowOutcome(row.appointment_id,
                      "already_recorded" if done.already_recorded else "recorded",
                      dose_record_id=done.record.id, line=line, reference_id=ref, name=name)


async def _lock_walkers(session: AsyncSession, rows: list[SheetRow], centre_id: int) -> None:
    """Every walk-in person of the upload, locked in one statement in id order before the
    first walk-in takes a place, then the walk-in lines' sessions (this centre's) in id order:
    an upload never holds a session's walk-in count while it waits for a person (which an
    online walk-in for that person, holding the person and waiting for the session, would make
    a deadlock), and two uploads take the same people, then the same sessions, in the same
    order (walk-in lines are taken by person, so their sessions would come in any order)."""
    if not LOCK_FIRST:
        return
    walkins = [r for r in rows if not r.appointment_id]
    refs = sorted({r.reference_id for r in walkins if _REF.fullmatch(r.reference_id)})
    if refs:
        await session.execute(select(Beneficiary.id)
                              .where(Beneficiary.reference_id.in_(refs))
                              .order_by(Beneficiary.id).with_for_update(key_share=True))
    sessions = sorted({r.session_id for r in walkins if _ID.fullmatch(r.session_id)})
    if sessions:
        await session.execute(select(VaccinationSession.id)
                              .where(VaccinationSession.id.in_(sessions),
                                     VaccinationSession.centre_id == centre_id)
                              .order_by(VaccinationSession.id).with_for_update(key_share=True))


@dataclass(frozen=True)
class _Kept:
    centre_id: int
    row: SheetRow
    day: date
    given_at: datetime
    reference_id: str
    session_id: str


async def _count_wrong_code(session: AsyncSession, actor: Actor, appointment_id: str | None,
                            reference_id: str, centre_id: int) -> None:
    """The wrong try's audit entry went with the row's savepoint: written again, so that
    wrong codes on sheets count towards the person's daily limit as typed ones do. The
    person's row is locked again (the savepoint's rollback let it go), as the check locks it."""
    await session.execute(select(Beneficiary.id).where(Beneficiary.reference_id == reference_id)
                          .with_for_update(key_share=True))
    await log_action(session, actor=actor.label, action="vaccination.secret_code.rejected",
                     object_type="beneficiary", object_id=reference_id, centre=centre_id,
                     appointment_id=appointment_id, offline=True)


async def _keep(session: AsyncSession, actor: Actor, kept: _Kept, outcome: str,
                reason: str | None, record_id: int | None) -> None:
    """This centre's record of this dose given offline, as last uploaded; one that was
    recorded stays recorded."""
    now = clock.now()
    same = (OfflineDose.appointment_id == kept.row.appointment_id if kept.row.appointment_id
            else (OfflineDose.appointment_id.is_(None)
                  & (OfflineDose.reference_id == kept.reference_id)
                  & (OfflineDose.session_id == kept.session_id)))
    row = (await session.execute(select(OfflineDose).where(
        OfflineDose.centre_id == kept.centre_id, same))).scalars().first()
    if row is None:
        session.add(OfflineDose(centre_id=kept.centre_id,
                                appointment_id=kept.row.appointment_id or None,
                                reference_id=kept.reference_id, session_id=kept.session_id,
                                day=kept.day, batch=kept.row.batch[:40], given_at=kept.given_at,
                                outcome=outcome, reason=reason, dose_record_id=record_id,
                                uploaded_by=actor.label, uploaded_at=now, uploads=1))
    elif row.outcome in ("recorded", "dismissed") and outcome != "recorded":
        # sent again after it was recorded, or after the district closed it: it stays so
        row.uploads += 1
    else:
        if row.outcome != outcome:  # a district's resolution belongs to the outcome it made
            row.resolved_by = row.resolved_at = row.resolution_note = None
        row.batch, row.given_at, row.outcome = kept.row.batch[:40], kept.given_at, outcome
        row.reason, row.dose_record_id = reason, record_id
        row.uploaded_by, row.uploaded_at, row.uploads = actor.label, now, row.uploads + 1
    await session.flush()


async def to_resolve(session: AsyncSession, *, actor: Actor) -> list[repo.OfflineView]:
    """Doses given offline at the vaccinator's centre that are not recorded yet: the last
    upload was refused and the appointment is still not completed."""
    return await repo.offline_to_resolve(session, own_centre(actor))


class _Blank(dict[str, object]):
    """The values a kept reason's message names: what is known (the sync days), "…" for the
    rest (only the reason's code is kept, not the values it was raised with: an age band, a
    date, a vaccine)."""

    def __missing__(self, key: str) -> str:
        return "…"


def reason_text(code: str | None, lang: str) -> str:
    """A kept refusal's reason (its code) in the reader's language."""
    found = getattr(errors, code or "", None)
    if isinstance(found, type) and issubclass(found, errors.DomainError):
        return translate(lang, found.message).format_map(
            _Blank(days=rules.SYNC_DAYS, detail="…"))
    return code or ""
