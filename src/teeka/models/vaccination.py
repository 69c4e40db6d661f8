from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class DoseRecord(Base):
    """A dose given. (beneficiary, dose number) is unique: a dose is recorded exactly once."""

    __tablename__ = "dose_record"
    __table_args__ = (UniqueConstraint("beneficiary_id", "dose_number", name="once"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    appointment_id: Mapped[str | None] = mapped_column(ForeignKey("appointment.id"),
                                                       nullable=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("vaccination_session.id"), index=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centre.id"), index=True)
    vaccine_id: Mapped[int] = mapped_column(ForeignKey("vaccine.id"))
    dose_number: Mapped[int] = mapped_column(Integer)
    batch: Mapped[str] = mapped_column(String(40))
    administered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    vaccinator_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    walk_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
