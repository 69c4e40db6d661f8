from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class Account(Base):
    """A citizen's login: one mobile number."""

    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mobile: Mapped[str] = mapped_column(String(10), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="hi")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the account last logged out: every browser session begun before it is over, on
    # every device (a cookie copied from a shared or lost phone dies with the logout).
    signed_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OtpChallenge(Base):
    """One OTP sent. The code is kept only as a keyed hash of its SHA-256 digest."""

    __tablename__ = "otp_challenge"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # txnId
    mobile: Mapped[str] = mapped_column(String(10), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BeneficiaryStatus(enum.StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


class Beneficiary(Base):
    """A person to be vaccinated. The photo-ID number is never stored: only a keyed hash
    (to refuse a second registration of the same document) and its last four digits."""

    __tablename__ = "beneficiary"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference_id: Mapped[str] = mapped_column(String(14), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True,
                                                   nullable=True)
    registered_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"),
                                                               nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    birth_year: Mapped[int] = mapped_column(Integer)
    gender: Mapped[str] = mapped_column(String(12))
    id_type: Mapped[str] = mapped_column(String(20))
    id_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    id_last4: Mapped[str] = mapped_column(String(4))
    priority_group: Mapped[str] = mapped_column(String(12), default="none")
    secret_code: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(10), default=BeneficiaryStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
