from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class Booking(Base):
    """One booking request: its confirmation number and its idempotency key."""

    __tablename__ = "booking"
    __table_args__ = (UniqueConstraint("actor", "idempotency_key", name="one_per_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    confirmation_no: Mapped[str] = mapped_column(String(12), unique=True)
    actor: Mapped[str] = mapped_column(String(40))  # "account:12" or "staff:3"
    idempotency_key: Mapped[str] = mapped_column(String(80))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AppointmentStatus(enum.StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Appointment(Base):
    """One beneficiary's place in one slot. It holds one unit of exactly one bucket while BOOKED."""

    __tablename__ = "appointment"
    __table_args__ = (
        # One active appointment per beneficiary, enforced by the database too.
        Index("uq_appointment_one_active", "beneficiary_id", unique=True,
              sqlite_where=text("status = 'booked'"),
              postgresql_where=text("status = 'booked'")),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid, the appointment_id
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("vaccination_session.id"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("session_slot.id"))
    bucket_id: Mapped[int] = mapped_column(ForeignKey("capacity_bucket.id"), index=True)
    dose_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=AppointmentStatus.BOOKED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
