from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class DoseKind(enum.StrEnum):
    FIRST = "first"
    SECOND = "second"
    PRECAUTION = "precaution"


class Share(enum.StrEnum):
    """A priority share of a slot's capacity. OPEN is for everyone."""

    OPEN = "open"
    FRONTLINE = "frontline"
    AAY = "aay"
    BPL = "bpl"
    APL = "apl"


class VaccinationSession(Base):
    """One centre, one day, one vaccine, one age band."""

    __tablename__ = "vaccination_session"
    __table_args__ = (
        UniqueConstraint("centre_id", "date", "vaccine_id", "min_age", name="one_per_band"),
        CheckConstraint("walkins_used >= 0 AND walkins_used <= walkin_allowance",
                        name="walkins_within_allowance"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid
    centre_id: Mapped[int] = mapped_column(ForeignKey("centre.id"), index=True)
    date: Mapped[date] = mapped_column(Date, index=True)
    vaccine_id: Mapped[int] = mapped_column(ForeignKey("vaccine.id"))
    min_age: Mapped[int] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    walkin_allowance: Mapped[int] = mapped_column(Integer, default=0)
    walkins_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionSlot(Base):
    """A time slot of a session, e.g. "09:00AM-11:00AM"."""

    __tablename__ = "session_slot"
    __table_args__ = (UniqueConstraint("session_id", "label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("vaccination_session.id"), index=True)
    label: Mapped[str] = mapped_column(String(20))
    ordinal: Mapped[int] = mapped_column(Integer, default=0)


class CapacityBucket(Base):
    """Places of one slot, for one dose kind, in one priority share.

    The only counter of booked places. It is changed by the guarded statements in
    teeka.booking.repository and nowhere else (docs/booking-and-capacity.md).
    """

    __tablename__ = "capacity_bucket"
    __table_args__ = (
        UniqueConstraint("slot_id", "dose_kind", "share", name="one_per_share"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("session_slot.id"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("vaccination_session.id"), index=True)
    dose_kind: Mapped[str] = mapped_column(String(12))
    share: Mapped[str] = mapped_column(String(12), default=Share.OPEN)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    # After this moment what is unused in a priority share is open to everyone (None: never).
    release_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Opening(Base):
    """A release of places at a set time, with a waiting room: a scope (the state, or one
    district) and the sessions on or after `first_day` in it. While it is open, places in its
    scope are booked only by people the waiting room admitted (teeka.surge)."""

    __tablename__ = "opening"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"), nullable=True)
    first_day: Mapped[date] = mapped_column(Date)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hold_seconds: Mapped[int] = mapped_column(Integer, default=600)
    admit_per_second: Mapped[int] = mapped_column(Integer, default=50)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # closed by hand (an administrator: POST /api/v1/admin/openings/{id}/close); a room that
    # gave out every place closes in its own state (teeka.surge.store) and leaves this empty
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
