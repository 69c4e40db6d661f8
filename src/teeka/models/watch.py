"""Problems a district (or a centre) raises for the state's operators, tracked to resolution."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
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


class ServerBeat(Base):
    """What a running process (a web server, or the outbox worker) last reported of itself,
    every BEAT_EVERY (teeka.watch.beat): the operators' view reads the servers from here, so
    that what each process counts (refusals, errors, a late event loop) is seen for all of them
    together, and a process that stopped reporting without shutting down is noticed."""

    __tablename__ = "server_beat"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)  # host:pid:start
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # web or worker
    runs_worker: Mapped[bool] = mapped_column(Boolean)  # delivers SMS and pages (the outbox)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # over the last window_s seconds (up to a minute) before beat_at:
    window_s: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)  # worked on (not shed)
    crowd: Mapped[int] = mapped_column(Integer, default=0)  # of those, the crowd's
    shed_work: Mapped[int] = mapped_column(Integer, default=0)  # refused 503 at once, not crowd
    # refused 503, the crowd's (at once, or answered Busy inside)
    shed_crowd: Mapped[int] = mapped_column(Integer, default=0)
    busy: Mapped[int] = mapped_column(Integer, default=0)  # answered Busy (503) inside, not crowd
    failed: Mapped[int] = mapped_column(Integer, default=0)  # ended in an unexpected error
    lag_samples: Mapped[int] = mapped_column(Integer, default=0)  # event-loop timer wake-ups
    lag_slow: Mapped[int] = mapped_column(Integer, default=0)  # of those, late by > 50 ms
    lag_stalled: Mapped[int] = mapped_column(Integer, default=0)  # late by > 1 s
