from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from teeka.db import Base


class State(Base):
    __tablename__ = "state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name_en: Mapped[str] = mapped_column(String(100))
    name_hi: Mapped[str] = mapped_column(String(100))


class District(Base):
    __tablename__ = "district"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state_id: Mapped[int] = mapped_column(ForeignKey("state.id"), index=True)
    name_en: Mapped[str] = mapped_column(String(100))
    name_hi: Mapped[str] = mapped_column(String(100))


class Block(Base):
    __tablename__ = "block"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    name_en: Mapped[str] = mapped_column(String(100))
    name_hi: Mapped[str] = mapped_column(String(100))
