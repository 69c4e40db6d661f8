"""Read queries at the centre, for the vaccinator's pages: the day's list, a slip's appointments,
one appointment, one dose record, the day's sessions.

Read side only: recording a dose or a walk-in goes through teeka.vaccination.service. Callers
check access first (teeka.auth.access.access_centre_work). What is returned never holds a
secret code or a full photo-ID number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from teeka.kit import phone
from teeka.models import (
    Appointment,
    AppointmentStatus,
    Beneficiary,
    BeneficiaryStatus,
    Booking,
    Centre,
    DoseRecord,
    OfflineDose,
    SessionSlot,
    VaccinationSession,
    Vaccine,
)
from teeka.vaccination.schemas import CentreAppointmentRead


def _appointments() -> Select[Appointment, Beneficiary, VaccinationSession, SessionSlot, Vaccine]:
    return (select(Appointment, Beneficiary, VaccinationSession, SessionSlot, Vaccine)
            .join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
            .join(VaccinationSession, VaccinationSession.id == Appointment.session_id)
            .join(SessionSlot, SessionSlot.id == Appointment.slot_id)
            .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id))


def _read(appt: Appointment, person: Beneficiary, vs: VaccinationSession, slot: SessionSlot,
          vaccine: Vaccine) -> CentreAppointmentRead:
    return CentreAppointmentRead(
        appointment_id=appt.id, reference_id=person.reference_id, name=person.name,
        birth_year=person.birth_year, gender=person.gender, id_type=person.id_type,
        id_number_masked=phone.mask_id_number(person.id_last4), session_id=vs.id, date=vs.date,
        slot=slot.label, vaccine=vaccine.code, dose=appt.dose_number, status=appt.status)


# Appointments a day sheet lists at most (a centre's day is far fewer).
SHEET_ROWS = 5000


async def appointments_today(session: AsyncSession, *, centre_id: int, day: date,
                             confirmation_no: str | None = None, limit: int = 2000
                             ) -> list[CentreAppointmentRead]:
    """The day's appointments at a centre (booked or completed), in slot order; only those of one
    booking when its confirmation number (printed on the slip) is given."""
    query = (_appointments()
             .where(VaccinationSession.centre_id == centre_id, VaccinationSession.date == day,
                    Appointment.status.in_([AppointmentStatus.BOOKED,
                                            AppointmentStatus.COMPLETED]),
                    Beneficiary.status == BeneficiaryStatus.ACTIVE)
             .order_by(SessionSlot.ordinal, Beneficiary.name, Appointment.id))
    if confirmation_no is not None:
        query = (query.join(Booking, Booking.id == Appointment.booking_id)
                 .where(Booking.confirmation_no == confirmation_no))
    rows = await session.execute(query.limit(limit))
    return [_read(appt, person, vs, slot, vaccine) for appt, person, vs, slot, vaccine in rows]


async def appointment(session: AsyncSession, appointment_id: str
                      ) -> tuple[CentreAppointmentRead, int] | None:
    """One appointment as the vaccinator sees it, and the centre it is at."""
    row = (await session.execute(
        _appointments().where(Appointment.id == appointment_id))).first()
    if row is None:
        return None
    appt, person, vs, slot, vaccine = row
    return _read(appt, person, vs, slot, vaccine), vs.centre_id


@dataclass(frozen=True)
class DoseView:
    id: int
    centre_id: int
    reference_id: str
    name: str
    vaccine: str
    dose: int
    batch: str
    administered_at: datetime
    walk_in: bool
    appointment_id: str | None


async def dose_record(session: AsyncSession, record_id: int) -> DoseView | None:
    row = (await session.execute(
        select(DoseRecord, Beneficiary.reference_id, Beneficiary.name, Vaccine.code)
        .join(Beneficiary, Beneficiary.id == DoseRecord.beneficiary_id)
        .join(Vaccine, Vaccine.id == DoseRecord.vaccine_id)
        .where(DoseRecord.id == record_id))).first()
    if row is None:
        return None
    r, ref, name, code = row
    return DoseView(id=r.id, centre_id=r.centre_id, reference_id=ref, name=name, vaccine=code,
                    dose=r.dose_number, batch=r.batch, administered_at=r.administered_at,
                    walk_in=r.walk_in, appointment_id=r.appointment_id)


@dataclass(frozen=True)
class SessionToday:
    id: str
    vaccine: str
    min_age: int
    max_age: int | None
    walkin_allowance: int
    walkins_used: int

    @property
    def walkins_left(self) -> int:
        return max(self.walkin_allowance - self.walkins_used, 0)


async def sessions_today(session: AsyncSession, *, centre_id: int, day: date
                         ) -> list[SessionToday]:
    rows = await session.execute(
        select(VaccinationSession, Vaccine.code)
        .join(Vaccine, Vaccine.id == VaccinationSession.vaccine_id)
        .where(VaccinationSession.centre_id == centre_id, VaccinationSession.date == day)
        .order_by(Vaccine.code, VaccinationSession.min_age))
    return [SessionToday(id=vs.id, vaccine=code, min_age=vs.min_age, max_age=vs.max_age,
                         walkin_allowance=vs.walkin_allowance, walkins_used=vs.walkins_used)
            for vs, code in rows]


# Refusals of a walk-in line made before its secret code was found right: the person is not
# named to the centre for them (a reference id alone must not tell whose it is). Used by
# teeka.vaccination.offline (the answer) and offline_to_resolve (the list).
UNIDENTIFIED = frozenset({"NotFound", "Invalid", "SecretCodeWrong", "SecretCodeLocked",
                          "SheetDayOutOfRange", "WrongCentre"})


@dataclass(frozen=True)
class OfflineView:
    """A dose given offline that is not recorded yet, as the centre's list shows it."""

    appointment_id: str
    reference_id: str
    name: str
    day: date
    given_at: datetime
    batch: str
    reason: str | None
    uploaded_at: datetime
    id: int = 0
    centre_id: int = 0
    centre_name_en: str = ""
    centre_name_hi: str = ""


async def offline_to_resolve(session: AsyncSession, centre_id: int | None, limit: int = 500, *,
                             district_id: int | None = None) -> list[OfflineView]:
    """The centre's (or, `centre_id` None, the district's) doses given offline whose last
    upload was refused, that the district has not dismissed, and that no dose of this person
    recorded at this centre for that day answers yet (recorded since, online or by a later
    upload: resolved; a dose recorded at another centre does not resolve it: the person may
    have had two). Who it is is shown for a walk-in once their code was right, and for an
    appointment while it is at this centre; the district sees who every line names unless
    the line was refused before the person was known (UNIDENTIFIED)."""
    # A dose recorded after the last upload of the line answers it; one recorded before (the
    # person vaccinated that morning already) does not: that line is a second dose to look at.
    answered = (select(DoseRecord.id)
                .join(VaccinationSession, VaccinationSession.id == DoseRecord.session_id)
                .where(DoseRecord.beneficiary_id == Beneficiary.id,
                       DoseRecord.centre_id == OfflineDose.centre_id,
                       VaccinationSession.date == OfflineDose.day,
                       DoseRecord.created_at >= OfflineDose.uploaded_at).exists())
    now_at = aliased(VaccinationSession)
    query = (select(OfflineDose, Beneficiary.reference_id, Beneficiary.name, now_at.centre_id,
                    Centre.name_en, Centre.name_hi)
             .join(Centre, Centre.id == OfflineDose.centre_id)
             .outerjoin(Beneficiary, Beneficiary.reference_id == OfflineDose.reference_id)
             .outerjoin(Appointment, Appointment.id == OfflineDose.appointment_id)
             .outerjoin(now_at, now_at.id == Appointment.session_id)
             .where(OfflineDose.outcome == "refused", ~answered)
             .order_by(OfflineDose.day, OfflineDose.given_at, OfflineDose.id).limit(limit))
    query = (query.where(OfflineDose.centre_id == centre_id) if centre_id is not None
             else query.where(Centre.district_id == district_id))
    out = []
    for o, ref, name, at, centre_en, centre_hi in await session.execute(query):
        if centre_id is None:  # the district's view
            shown = ref is not None and o.reason not in UNIDENTIFIED
        else:  # a walk-in is named once its code was found right; an appointment while here
            shown = (at == centre_id if o.appointment_id is not None
                     else ref is not None and o.reason not in UNIDENTIFIED)
        out.append(OfflineView(appointment_id=o.appointment_id or "",
                               reference_id=ref if shown and ref else "",
                               name=name if shown and name else "",
                               day=o.day, given_at=o.given_at, batch=o.batch, reason=o.reason,
                               uploaded_at=o.uploaded_at, id=o.id, centre_id=o.centre_id,
                               centre_name_en=centre_en, centre_name_hi=centre_hi))
    return out
