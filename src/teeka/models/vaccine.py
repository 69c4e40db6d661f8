from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base


class Vaccine(Base):
    """A product and its schedule. Schedules are data: intervals live in VaccineInterval."""

    __tablename__ = "vaccine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # "COVISHIELD"
    name: Mapped[str] = mapped_column(String(100))
    manufacturer: Mapped[str] = mapped_column(String(200))
    doses: Mapped[int] = mapped_column(Integer)  # primary schedule length
    min_age: Mapped[int] = mapped_column(Integer, default=18)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Days after the last primary dose from which a precaution dose is allowed (None: no such dose).
    precaution_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class VaccineInterval(Base):
    """Allowed days between dose (n-1) and dose n of the primary schedule."""

    __tablename__ = "vaccine_interval"
    __table_args__ = (UniqueConstraint("vaccine_id", "dose_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vaccine_id: Mapped[int] = mapped_column(ForeignKey("vaccine.id"), index=True)
    dose_number: Mapped[int] = mapped_column(Integer)
    min_days: Mapped[int] = mapped_column(Integer)
    max_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
