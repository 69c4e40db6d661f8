from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base, UTCDateTime


class Role(enum.StrEnum):
    STATE_ADMIN = "state_admin"
    DISTRICT_ADMIN = "district_admin"  # scoped to district_id
    HELPDESK = "helpdesk"  # scoped to district_id
    VACCINATOR = "vaccinator"  # scoped to centre_id


class StaffUser(Base):
    __tablename__ = "staff_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"), nullable=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centre.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Second factor (TOTP, RFC 6238). None until the user has enrolled at their first login.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The last 30-second step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the user last signed out: every browser session begun before it is over.
    signed_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # An operator on call is told of trouble by SMS (teeka.watch.pager), in their language.
    mobile: Mapped[str | None] = mapped_column(String(10), nullable=True)
    on_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    language: Mapped[str] = mapped_column(String(2), default="hi", server_default="hi")
