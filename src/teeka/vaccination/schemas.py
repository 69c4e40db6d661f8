from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class DoseCreate(BaseModel):
    appointment_id: str = Field(max_length=36)
    secret_code: str = Field(min_length=4, max_length=4)
    batch: str = Field(min_length=1, max_length=40)


class WalkinCreate(BaseModel):
    session_id: str = Field(max_length=36)
    reference_id: str = Field(max_length=14)
    secret_code: str = Field(min_length=4, max_length=4)
    batch: str = Field(min_length=1, max_length=40)


class CentreAppointmentRead(BaseModel):
    """What a vaccinator sees of a person due today: never the secret code, never the full
    photo-ID number."""

    appointment_id: str
    reference_id: str
    name: str
    birth_year: int
    gender: str
    id_type: str
    id_number_masked: str
    session_id: str
    date: date
    slot: str
    vaccine: str
    dose: int
    status: str


class DoseRecordRead(BaseModel):
    dose_record_id: int
    reference_id: str
    name: str
    id_number_masked: str
    appointment_id: str | None
    session_id: str
    centre_id: int
    vaccine: str
    dose: int
    batch: str
    administered_at: datetime
    vaccinator_id: int
    walk_in: bool
    # True when this request repeated one already recorded: nothing new was written.
    already_recorded: bool = False
