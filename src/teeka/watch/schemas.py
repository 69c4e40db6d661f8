from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ProblemCreate(BaseModel):
    district_id: int | None = None  # an operator's problem; district staff raise for their own
    centre_id: int | None = None  # the centre it is about, if one (a vaccinator: their own)
    title: str = Field(max_length=400)
    details: str = Field(max_length=8000)
    severity: str = Field(max_length=10)  # urgent, high or normal


class NoteCreate(BaseModel):
    text: str = Field(default="", max_length=8000)
    status: str | None = Field(default=None, max_length=15)  # acknowledged, resolved, open
    # the problem's updated_at as last read: a move is refused (409 ProblemChanged) when the
    # problem changed since
    seen: datetime | None = None


class NoteRead(BaseModel):
    author: str
    at: datetime
    text: str
    status_to: str | None


class ProblemRead(BaseModel):
    id: int
    district_id: int
    district: str
    centre_id: int | None
    centre: str | None
    title: str
    details: str
    severity: str
    status: str
    raised_by: str
    raised_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime
    overdue: bool  # open, and nobody took it within its severity's response time
    notes: list[NoteRead] | None = None
