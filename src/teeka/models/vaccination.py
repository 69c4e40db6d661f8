from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class DoseRecord(Base):
    """A dose given. (beneficiary, dose number) is unique: a dose is recorded exactly once."""

    __tablename__ = "dose_record"
    __table_args__ = (UniqueConstraint("beneficiary_id", "dose_number", name="once"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    appointment_id: Mapped[str | None] = mapped_column(ForeignKey("appointment.id"),
                                                       nullable=True, index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("vaccination_session.id"), index=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centre.id"), index=True)
    vaccine_id: Mapped[int] = mapped_column(ForeignKey("vaccine.id"))
    dose_number: Mapped[int] = mapped_column(Integer)
    batch: Mapped[str] = mapped_column(String(40))
    administered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    vaccinator_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    walk_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OfflineDose(Base):
    """A dose given while the centre worked offline from its day sheet, as last uploaded: the
    centre's own record of it, kept whatever the outcome, so that a dose the server could not
    record (a code mistyped, the appointment changed meanwhile) is never lost; the dose itself
    is a DoseRecord once recorded. One row per centre and appointment (an appointment moved
    between centres may be on both their sheets), or per centre, session and person for a
    walk-in; a later upload updates it."""

    __tablename__ = "offline_dose"
    __table_args__ = (UniqueConstraint("centre_id", "appointment_id", name="one_per_appointment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centre.id"), index=True)
    # the appointment vaccinated; None for a walk-in (a person without one, by reference id)
    appointment_id: Mapped[str | None] = mapped_column(ForeignKey("appointment.id"),
                                                       nullable=True)
    reference_id: Mapped[str] = mapped_column(String(14), index=True)
    session_id: Mapped[str] = mapped_column(String(36))  # the sheet's session
    day: Mapped[date] = mapped_column(Date)
    batch: Mapped[str] = mapped_column(String(40))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "recorded" (dose_record_id set), "refused" (reason: the refusal's code) or "dismissed"
    # (by the district, with a note)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    dose_record_id: Mapped[int | None] = mapped_column(ForeignKey("dose_record.id"),
                                                       nullable=True)
    uploaded_by: Mapped[str] = mapped_column(String(80))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploads: Mapped[int] = mapped_column(Integer, default=1)
    # Resolved by the district (teeka.vaccination.resolve): "recorded" by them, or "dismissed"
    # (outcome), who, when and their note.
    resolved_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(String(300), nullable=True)
