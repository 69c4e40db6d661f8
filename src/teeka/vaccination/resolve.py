"""The district resolves the doses given offline that an upload could not record
(docs/offline.md, "Resolving"): it records one whose refusal was administrative (the
appointment changed, the person had another appointment, the walk-in places ran out), ending
the person's other appointment so they are not vaccinated twice; or it dismisses one with a
note (not a dose, a duplicate, dealt with elsewhere). Both are audited and leave the kept row
(`offline_dose`) with who, when and the note."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_district
from teeka.auth.actor import Actor
from teeka.booking import repository as booking_repo
from teeka.kit import clock
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    Beneficiary,
    BeneficiaryStatus,
    Booking,
    Centre,
    DoseRecord,
    OfflineDose,
    VaccinationSession,
)
from teeka.notification.service import OFFLINE_CANCELLED_SMS, queue_sms
from teeka.vaccination import repository as repo
from teeka.vaccination import service

# The refusals the district may overrule by recording the dose: none of them doubts that this
# person was vaccinated with this dose (a code copied wrong, an unknown person, a dose the
# rules do not allow: a corrected line from the centre, or a dismissal).
RECORDABLE = frozenset({"AppointmentChanged", "AlreadyBooked", "WalkinsExhausted"})
NOTE_MIN, NOTE_MAX = 5, 300


def clean_note(note: str) -> str:
    text = " ".join((note or "").split())
    if len(text) < NOTE_MIN:
        raise errors.NoteNeeded()
    return text[:NOTE_MAX]


async def district_list(session: AsyncSession, *, actor: Actor, district_id: int
                        ) -> list[repo.OfflineView]:
    """The district's doses given offline still to resolve (district and state admins)."""
    access_district(actor, district_id)
    return await repo.offline_to_resolve(session, None, district_id=district_id)


async def _kept(session: AsyncSession, actor: Actor, offline_id: int, *, lock: bool
                ) -> OfflineDose:
    """The kept dose, if the actor administers its centre's district and it is still to
    resolve; `lock`: its row locked (two administrators at once: the second finds it
    resolved). Read afresh either way."""
    query = select(OfflineDose).where(OfflineDose.id == offline_id) \
        .execution_options(populate_existing=True)
    kept = (await session.execute(query.with_for_update() if lock else query)
            ).scalar_one_or_none()
    if kept is None:
        raise errors.NotFound()
    centre = await session.get(Centre, kept.centre_id)
    assert centre is not None
    access_district(actor, centre.district_id)
    if kept.outcome != "refused":
        raise errors.OfflineResolved()
    return kept


async def dismiss(session: AsyncSession, *, actor: Actor, offline_id: int, note: str) -> None:
    """Close a kept dose without recording it (not a dose after all, a duplicate line, or
    recorded by other means), with a note saying why."""
    kept = await _kept(session, actor, offline_id, lock=True)
    text = clean_note(note)
    kept.outcome, kept.resolved_by = "dismissed", actor.label
    kept.resolved_at, kept.resolution_note = clock.now(), text
    await log_action(session, actor=actor.label, action="vaccination.offline.dismissed",
                     object_type="offline_dose", object_id=kept.id, centre=kept.centre_id,
                     reason=kept.reason, note=text)


async def record(session: AsyncSession, *, actor: Actor, offline_id: int,
                 note: str) -> service.DoseOutcome:
    """Record a kept dose as given: at the centre and session of the sheet, at the time and
    with the batch the centre wrote, outside the session's walk-in allowance (the dose was
    given). The dose must still be one the person may be given that day (else the rules'
    refusal). An appointment the person still has is ended: completed when it is in that same
    session, else cancelled, its place given back and the person told, so that nobody is
    vaccinated twice."""
    kept = await _kept(session, actor, offline_id, lock=False)
    if kept.reason not in RECORDABLE:
        raise errors.OfflineNotRecordable()
    text = clean_note(note)
    person = (await session.execute(select(Beneficiary).where(
        Beneficiary.reference_id == kept.reference_id,
        Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one_or_none()
    vs = await session.get(VaccinationSession, kept.session_id)
    if person is None or vs is None:
        raise errors.NotFound()
    # Locked in the order every other path locks them (record_dose, a day sheet's upload, a
    # cancel): the appointments (the line's, and the person's booked one, in id order), then
    # the person (as a walk-in locks them), then the kept row. So an upload of the same line,
    # or a dose recorded for the person meanwhile, waits or is waited for: never a deadlock.
    booked = set((await session.execute(select(Appointment.id).where(
        Appointment.beneficiary_id == person.id,
        Appointment.status == AppointmentStatus.BOOKED))).scalars())
    await session.execute(select(Appointment.id).where(
        Appointment.id.in_(sorted(booked | {kept.appointment_id} - {None})))
        .order_by(Appointment.id).with_for_update())
    await session.execute(select(Beneficiary.id).where(Beneficiary.id == person.id)
                          .with_for_update(key_share=True))
    kept = await _kept(session, actor, offline_id, lock=True)  # resolved meanwhile?
    active = (await session.execute(select(Appointment).where(
        Appointment.beneficiary_id == person.id, Appointment.status == AppointmentStatus.BOOKED)
        .execution_options(populate_existing=True))).scalar_one_or_none()
    if active is not None and active.id not in booked:  # booked after the locks were taken
        raise errors.Busy()
    dose = await service.check_eligible(session, person, vs)
    if active is not None and active.session_id != vs.id:
        await _end_other(session, actor, active, person, vs)
        active = None
    now = clock.now()
    record = DoseRecord(beneficiary_id=person.id,
                        appointment_id=active.id if active is not None else None,
                        session_id=vs.id, centre_id=vs.centre_id, vaccine_id=vs.vaccine_id,
                        dose_number=dose, batch=kept.batch, administered_at=kept.given_at,
                        vaccinator_id=_uploader(kept.uploaded_by) or actor.id,
                        walk_in=active is None, created_at=now)
    try:
        async with session.begin_nested():
            if active is not None:  # its place in this session was the one used
                active.status, active.updated_at = AppointmentStatus.COMPLETED, now
            session.add(record)
            await session.flush()
    except IntegrityError:  # the same dose recorded meanwhile (online, a corrected sheet)
        raise errors.OfflineResolved() from None
    kept.outcome, kept.dose_record_id = "recorded", record.id
    kept.resolved_by, kept.resolved_at, kept.resolution_note = actor.label, now, text
    vaccine = await service.vaccine_code(session, vs.vaccine_id)
    await log_action(session, actor=actor.label, action="vaccination.offline.recorded",
                     object_type="dose_record", object_id=record.id, offline_dose=kept.id,
                     beneficiary=person.reference_id, dose=dose, vaccine=vaccine,
                     centre=vs.centre_id, reason=kept.reason, note=text)
    await service.notify_dose(session, person, dose=dose, vaccine=vaccine, day=vs.date)
    return service.DoseOutcome(record=record, person=person, vaccine_code=vaccine)


def _uploader(label: str) -> int | None:
    kind, _, number = label.partition(":")
    return int(number) if kind == "staff" and number.isdigit() else None


async def _end_other(session: AsyncSession, actor: Actor, appt: Appointment,
                     person: Beneficiary, given_in: VaccinationSession) -> None:
    """The person's appointment elsewhere is cancelled (its place given back) and they are
    told why."""
    bucket_id = await booking_repo.cancel_booked(session, appt.id)
    if bucket_id is None:  # locked above: cannot have changed
        raise errors.Busy()
    await log_action(session, actor=actor.label, action="booking.appointment.cancelled",
                     object_type="appointment", object_id=appt.id, bucket=bucket_id,
                     why="vaccinated offline elsewhere")
    if person.account_id is None:
        return
    account = await session.get(Account, person.account_id)
    booking = await session.get(Booking, appt.booking_id)
    old = await session.get(VaccinationSession, appt.session_id)
    centre = await session.get(Centre, given_in.centre_id)
    if account is None or booking is None or old is None or centre is None:
        return
    await queue_sms(session, to=account.mobile, lang=account.language,
                    template=OFFLINE_CANCELLED_SMS, name=person.name,
                    centre=centre.name_hi if account.language == "hi" else centre.name_en,
                    date=given_in.date.strftime("%d-%m-%Y"), confirmation=booking.confirmation_no,
                    old_date=old.date.strftime("%d-%m-%Y"))
