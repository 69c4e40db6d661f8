"""Problems a district (or a centre) raises for the state's operators, tracked to resolution."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class ProblemStatus(enum.StrEnum):
    OPEN = "open"  # raised, no operator has taken it yet
    ACKNOWLEDGED = "acknowledged"  # an operator has it
    RESOLVED = "resolved"  # fixed (the raiser may reopen it)


class Severity(enum.StrEnum):
    URGENT = "urgent"  # vaccination stopped or people turned away: within 30 minutes
    HIGH = "high"  # a centre or a service degraded: within 2 hours
    NORMAL = "normal"  # within a day


class Problem(Base):
    __tablename__ = "problem"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centre.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(120))
    details: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(15), index=True)
    raised_by: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # when it was raised or last reopened: an open problem's waiting time counts from here
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProblemNote(Base):
    """A note on a problem, and the status it moved the problem to, if any: the problem's
    history."""

    __tablename__ = "problem_note"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problem.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text)
    status_to: Mapped[str | None] = mapped_column(String(15), nullable=True)
