from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class BookingCreate(BaseModel):
    session_id: str = Field(max_length=36)
    slot: str = Field(max_length=20)
    beneficiaries: list[str] = Field(min_length=1, max_length=4)
    dose: int | None = Field(default=None, ge=1, le=5)


class BookingRead(BaseModel):
    confirmation_no: str
    appointment_ids: list[str]
    slip_url: str


class RescheduleRequest(BaseModel):
    session_id: str = Field(max_length=36)
    slot: str = Field(max_length=20)


class AppointmentRead(BaseModel):
    appointment_id: str
    confirmation_no: str
    beneficiary_reference_id: str
    centre_id: int
    centre_name: str
    session_id: str
    date: date
    slot: str
    dose: int
    status: str


class SessionAvailability(BaseModel):
    session_id: str
    centre_id: int
    centre_name: str
    centre_name_hi: str
    pincode: int
    district_id: int
    date: date
    vaccine: str
    min_age: int
    max_age: int | None
    fee_type: str
    slots: list[str]
    available_dose1: int
    available_dose2: int
    available_precaution: int
    available: int
