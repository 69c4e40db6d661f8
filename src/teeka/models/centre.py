from __future__ import annotations

import enum
from datetime import time

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base


class FeeType(enum.StrEnum):
    FREE = "Free"
    PAID = "Paid"


class Centre(Base):
    __tablename__ = "centre"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    block_id: Mapped[int] = mapped_column(ForeignKey("block.id"), index=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_hi: Mapped[str] = mapped_column(String(200))
    address_en: Mapped[str] = mapped_column(String(300), default="")
    address_hi: Mapped[str] = mapped_column(String(300), default="")
    pincode: Mapped[int] = mapped_column(Integer, index=True)
    lat: Mapped[float] = mapped_column(Float)
    long: Mapped[float] = mapped_column(Float)
    fee_type: Mapped[str] = mapped_column(String(8), default=FeeType.FREE)
    opens_at: Mapped[time] = mapped_column(Time)
    closes_at: Mapped[time] = mapped_column(Time)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CentreFee(Base):
    """What a paid centre charges for one vaccine, in whole rupees."""

    __tablename__ = "centre_fee"
    __table_args__ = (UniqueConstraint("centre_id", "vaccine_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centre.id"), index=True)
    vaccine_id: Mapped[int] = mapped_column(ForeignKey("vaccine.id"))
    fee: Mapped[int] = mapped_column(Integer)
