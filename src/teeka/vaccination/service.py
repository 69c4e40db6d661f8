"""At the centre: find today's appointments, check the secret code, record a dose exactly once,
and vaccinate walk-ins against the session's walk-in allowance.

A dose is recorded once per (beneficiary, dose number): the unique constraint `once` on
dose_record decides, not a prior read. A repeated submission is answered with the record
already made (`already_recorded`), never a second row and never an error. A completed
appointment keeps its place in its capacity bucket (it was used, not given back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NoReturn

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_centre_work
from teeka.auth.actor import Actor
from teeka.booking import repository as booking_repo
from teeka.booking import rules as booking_rules
from teeka.kit import clock, phone
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    AuditEntry,
    Beneficiary,
    BeneficiaryStatus,
    DoseRecord,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)
from teeka.notification.service import DOSE_SMS, queue_sms
from teeka.vaccination import rules
from teeka.vaccination.schemas import CentreAppointmentRead, DoseRecordRead

SECRET_CODE_TRIES_PER_DAY = 5


@dataclass(frozen=True)
class DoseOutcome:
    record: DoseRecord
    person: Beneficiary
    vaccine_code: str
    already_recorded: bool = False


def _own_centre(actor: Actor) -> int:
    """The vaccinator's centre; anyone else is refused."""
    if actor.centre_id is None:
        raise errors.Forbidden()
    access_centre_work(actor, actor.centre_id)
    return actor.centre_id


# ---------------------------------------------------------------- finding the person

async def find_appointments_today(session: AsyncSession, *, actor: Actor,
                                  reference_id: str | None = None,
                                  mobile: str | None = None) -> list[CentreAppointmentRead]:
    """Today's appointments at the vaccinator's centre (booked or already completed) of one
    beneficiary (by reference id) or of the beneficiaries of one account (by mobile number)."""
    centre_id = _own_centre(actor)
    if (reference_id is None) == (mobile is None):
        raise errors.Invalid(detail="give either reference_id or mobile")
    query = (select(Appointment, Beneficiary, VaccinationSession, SessionSlot, Vaccine)
             .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
             .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
             .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
             .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
             .where(VaccinationSession.centre_id == centre_id,
                    VaccinationSession.date == clock.today(),
                    Appointment.status.in_([AppointmentStatus.BOOKED,
                                            AppointmentStatus.COMPLETED]),
                    Beneficiary.status == BeneficiaryStatus.ACTIVE)
             .order_by(SessionSlot.ordinal, Beneficiary.name, Appointment.id))
    if reference_id is not None:
        if not rules.is_reference_id(reference_id):
            raise errors.Invalid(detail="reference id must have 14 digits")
        query = query.where(Beneficiary.reference_id == reference_id)
    else:
        number = phone.normalise_mobile(mobile or "")
        if number is None:
            raise errors.InvalidMobile()
        query = (query.join(Account, Account.id == Beneficiary.account_id)
                 .where(Account.mobile == number))
    rows = await session.execute(query)
    return [CentreAppointmentRead(
        appointment_id=appt.id, reference_id=person.reference_id, name=person.name,
        birth_year=person.birth_year, gender=person.gender, id_type=person.id_type,
        id_number_masked=phone.mask_id_number(person.id_last4), session_id=vs.id, date=vs.date,
        slot=slot.label, vaccine=vaccine.code, dose=appt.dose_number, status=appt.status)
        for appt, person, vs, slot, vaccine in rows]


# ---------------------------------------------------------------- shared steps

async def check_secret_code(session: AsyncSession, actor: Actor, person: Beneficiary,
                            given: str, **where: str) -> None:
    """Refuse a wrong code, leaving an audit entry (which never holds the code tried). The
    person's row is locked first (FOR NO KEY UPDATE), so that tries made at once are counted
    one after another: without it, ten wrong codes sent together all read the count before any
    was written, and all were compared. A booking for the person takes the same lock on
    PostgreSQL (teeka.booking.repository._CLAIM_AND_READ_PG): a walk-in and a booking for them
    run one after the other, so a walk-in never leaves an appointment booked for the dose it
    gave (docs/booking-and-capacity.md)."""
    # ... and read again under the lock: a person deleted meanwhile gets no dose (their
    # delete locks the same row; teeka.citizen.service.delete_beneficiary).
    if (await session.execute(select(Beneficiary.status).where(Beneficiary.id == person.id)
                              .with_for_update(key_share=True))).scalar_one() != \
            BeneficiaryStatus.ACTIVE:
        raise errors.NotFound()
    tried = (await session.execute(
        select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "vaccination.secret_code.rejected",
            AuditEntry.object_id == person.reference_id,
            AuditEntry.at >= clock.local_datetime(clock.today(), 0)))).scalar_one()
    if tried >= SECRET_CODE_TRIES_PER_DAY:
        raise errors.SecretCodeLocked()
    if rules.secret_code_matches(given, person.secret_code):
        return
    await log_action(session, actor=actor.label, action="vaccination.secret_code.rejected",
                     object_type="beneficiary", object_id=person.reference_id,
                     centre=actor.centre_id, **where)
    await session.flush()
    raise errors.SecretCodeWrong()


async def _check_eligible(session: AsyncSession, person: Beneficiary, vs: VaccinationSession,
                          asked_dose: int | None,
                          schedule_of: dict[int, booking_rules.Schedule]) -> int:
    """The dose number the person is due today from this session's vaccine, or raise."""
    booking_rules.check_age(person.birth_year, vs.date, vs.min_age, vs.max_age)
    history = await booking_repo.dose_history(session, person.id, schedule_of)
    return booking_rules.check_dose(history=history, asked_dose=asked_dose,
                                    schedule=schedule_of[vs.vaccine_id],
                                    schedule_of=schedule_of, day=vs.date)


async def check_eligible(session: AsyncSession, person: Beneficiary, vs: VaccinationSession
                         ) -> int:
    """The dose number the person may be given in this session (its day, its vaccine), or the
    rules' refusal (teeka.vaccination.resolve)."""
    return await _check_eligible(session, person, vs, None, await booking_repo.schedules(session))


async def vaccine_code(session: AsyncSession, vaccine_id: int) -> str:
    vaccine = await session.get(Vaccine, vaccine_id)
    assert vaccine is not None
    return vaccine.code


async def _explain_conflict(session: AsyncSession, person: Beneficiary, vs: VaccinationSession,
                            dose: int) -> NoReturn:
    """The unique constraint refused our dose row and it was not this request's twin: another
    record of this dose won. Report why the dose can no longer be given."""
    await _check_eligible(session, person, vs, dose, await booking_repo.schedules(session))
    raise errors.Busy()  # the rules did not see the difference: let the caller try again


async def notify_dose(session: AsyncSession, person: Beneficiary, *, dose: int, vaccine: str,
                      day: date) -> None:
    """The person's SMS for a dose recorded (when they have a mobile number)."""
    if person.account_id is None:
        return
    account = await session.get(Account, person.account_id)
    if account is not None:
        await queue_sms(session, to=account.mobile, lang=account.language, template=DOSE_SMS,
                        name=person.name, dose=dose, vaccine=vaccine,
                        date=day.strftime("%d-%m-%Y"))


# ---------------------------------------------------------------- a booked appointment

async def record_dose(session: AsyncSession, *, actor: Actor, appointment_id: str,
                      secret_code: str, batch: str,
                      given_at: datetime | None = None) -> DoseOutcome:
    """Record the dose of a booked appointment at the vaccinator's centre today, exactly once.

    The appointment becomes COMPLETED and keeps its place in its bucket. Submitting the same
    appointment again returns the record made the first time, with `already_recorded`.

    `given_at`: a dose given offline, from the day sheet (teeka.vaccination.offline), recorded
    now: its session may be up to rules.SYNC_DAYS old, and the dose was given at that time of
    the session's day (not later than now).
    """
    _own_centre(actor)
    clean_batch = rules.clean_batch(batch)
    # Locked first, as a move and a cancel lock it first: one that committed meanwhile is
    # seen here (its session, its status), and one that comes later waits for this record.
    appt = await session.get(Appointment, appointment_id, with_for_update=True)
    if appt is None:
        raise errors.NotFound()
    vs = await session.get(VaccinationSession, appt.session_id)
    person = await session.get(Beneficiary, appt.beneficiary_id)
    assert vs is not None and person is not None
    access_centre_work(actor, vs.centre_id)
    if given_at is None:
        rules.check_today(vs.date, clock.today())
    else:
        rules.check_given_offline(vs.date, given_at, now=clock.now())
    await check_secret_code(session, actor, person, secret_code, appointment_id=appt.id)
    vaccine = await vaccine_code(session, vs.vaccine_id)

    async def earlier() -> DoseOutcome | None:
        """This very appointment, already recorded (by an earlier or a concurrent request)."""
        done = (await session.execute(select(DoseRecord).where(
            DoseRecord.appointment_id == appt.id))).scalar_one_or_none()
        return None if done is None else DoseOutcome(record=done, person=person,
                                                     vaccine_code=vaccine, already_recorded=True)

    if appt.status == AppointmentStatus.COMPLETED and (replay := await earlier()) is not None:
        return replay
    if appt.status != AppointmentStatus.BOOKED:
        raise errors.AppointmentNotBooked()
    schedule_of = await booking_repo.schedules(session)
    try:
        dose = await _check_eligible(session, person, vs, appt.dose_number, schedule_of)
    except errors.DomainError:
        # A twin that committed after we read the appointment makes this dose look "already
        # given": that is a repeat, not a refusal.
        if (replay := await earlier()) is not None:
            return replay
        raise
    now = clock.now()
    record = DoseRecord(beneficiary_id=person.id, appointment_id=appt.id, session_id=vs.id,
                        centre_id=vs.centre_id, vaccine_id=vs.vaccine_id, dose_number=dose,
                        batch=clean_batch, administered_at=given_at or now,
                        vaccinator_id=actor.id, walk_in=False, created_at=now)
    try:
        # A concurrent twin waits here on the unique index until the first commits, then fails.
        async with session.begin_nested():
            session.add(record)
            await session.flush()
    except IntegrityError:
        if (replay := await earlier()) is not None:
            return replay
        await _explain_conflict(session, person, vs, dose)
    completed = await session.execute(
        update(Appointment)
        .where(Appointment.id == appt.id, Appointment.status == AppointmentStatus.BOOKED,
               Appointment.session_id == vs.id, Appointment.bucket_id == appt.bucket_id)
        .values(status=AppointmentStatus.COMPLETED, updated_at=now)
        .execution_options(synchronize_session=False))
    if completed.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.AppointmentNotBooked()  # changed meanwhile: the dose row rolls back too
    await session.refresh(appt)
    await log_action(session, actor=actor.label, action="vaccination.dose.recorded",
                     object_type="dose_record", object_id=record.id, appointment_id=appt.id,
                     beneficiary=person.reference_id, dose=dose, vaccine=vaccine,
                     batch=clean_batch, centre=vs.centre_id, offline=given_at is not None)
    await notify_dose(session, person, dose=dose, vaccine=vaccine, day=vs.date)
    return DoseOutcome(record=record, person=person, vaccine_code=vaccine)


# ---------------------------------------------------------------- a walk-in

async def record_walkin(session: AsyncSession, *, actor: Actor, session_id: str,
                        reference_id: str, secret_code: str, batch: str,
                        given_at: datetime | None = None) -> DoseOutcome:
    """Vaccinate a registered person without an appointment in a session of the vaccinator's
    centre today. The place comes from the session's walk-in allowance (a guarded UPDATE),
    never from the booked places. `given_at`: a walk-in vaccinated offline from the day sheet
    (teeka.vaccination.offline), as for record_dose."""
    _own_centre(actor)
    clean_batch = rules.clean_batch(batch)
    vs = await session.get(VaccinationSession, session_id)
    if vs is None:
        raise errors.NotFound()
    access_centre_work(actor, vs.centre_id)
    if given_at is None:
        rules.check_today(vs.date, clock.today())
    else:
        rules.check_given_offline(vs.date, given_at, now=clock.now())
    person = (await session.execute(select(Beneficiary).where(
        Beneficiary.reference_id == reference_id,
        Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one_or_none()
    if person is None:
        raise errors.NotFound()
    await check_secret_code(session, actor, person, secret_code, session_id=vs.id)
    vaccine = await vaccine_code(session, vs.vaccine_id)

    async def earlier() -> DoseOutcome | None:
        """This person's walk-in in this session, already recorded (a repeated submission)."""
        done = (await session.execute(select(DoseRecord).where(
            DoseRecord.beneficiary_id == person.id, DoseRecord.session_id == vs.id,
            DoseRecord.walk_in.is_(True)))).scalars().first()
        return None if done is None else DoseOutcome(record=done, person=person,
                                                     vaccine_code=vaccine, already_recorded=True)

    if (replay := await earlier()) is not None:
        return replay
    schedule_of = await booking_repo.schedules(session)
    try:
        dose = await _check_eligible(session, person, vs, None, schedule_of)
    except errors.DomainError:
        if (replay := await earlier()) is not None:  # a twin committed after our first look
            return replay
        raise
    if await booking_repo.active_appointment(session, person.id) is not None:
        raise errors.AlreadyBooked()
    now = clock.now()
    record = DoseRecord(beneficiary_id=person.id, appointment_id=None, session_id=vs.id,
                        centre_id=vs.centre_id, vaccine_id=vs.vaccine_id, dose_number=dose,
                        batch=clean_batch, administered_at=given_at or now,
                        vaccinator_id=actor.id, walk_in=True, created_at=now)
    try:
        # The walk-in place and the dose row stand or fall together: a lost race gives the
        # place back with the savepoint.
        async with session.begin_nested():
            taken = await session.execute(
                update(VaccinationSession)
                .where(VaccinationSession.id == vs.id,
                       VaccinationSession.walkins_used < VaccinationSession.walkin_allowance)
                .values(walkins_used=VaccinationSession.walkins_used + 1)
                .execution_options(synchronize_session=False))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise errors.WalkinsExhausted()
            session.add(record)
            await session.flush()
    except IntegrityError:  # a twin won (or the allowance check constraint fired)
        if (replay := await earlier()) is not None:
            return replay
        await _explain_conflict(session, person, vs, dose)
    except errors.WalkinsExhausted:  # a twin may have taken the last walk-in place
        if (replay := await earlier()) is not None:
            return replay
        raise
    await log_action(session, actor=actor.label, action="vaccination.walkin.recorded",
                     object_type="dose_record", object_id=record.id, session_id=vs.id,
                     beneficiary=person.reference_id, dose=dose, vaccine=vaccine,
                     batch=clean_batch, centre=vs.centre_id, offline=given_at is not None)
    await notify_dose(session, person, dose=dose, vaccine=vaccine, day=vs.date)
    return DoseOutcome(record=record, person=person, vaccine_code=vaccine)


def dose_read(outcome: DoseOutcome) -> DoseRecordRead:
    r, person = outcome.record, outcome.person
    return DoseRecordRead(
        dose_record_id=r.id, reference_id=person.reference_id, name=person.name,
        id_number_masked=phone.mask_id_number(person.id_last4), appointment_id=r.appointment_id,
        session_id=r.session_id, centre_id=r.centre_id, vaccine=outcome.vaccine_code,
        dose=r.dose_number, batch=r.batch, administered_at=r.administered_at,
        vaccinator_id=r.vaccinator_id, walk_in=r.walk_in,
        already_recorded=outcome.already_recorded)
