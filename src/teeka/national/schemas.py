"""Request bodies of the national surface, with the national field names."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GenerateOtp(BaseModel):
    mobile: str = Field(max_length=20)


class ConfirmOtp(BaseModel):
    otp: str = Field(max_length=128)  # SHA-256 hex digest of the 6-digit OTP
    txnId: str = Field(max_length=36)


class NewBeneficiary(BaseModel):
    name: str = Field(max_length=200)
    birth_year: str | int
    gender_id: int
    photo_id_type: int
    photo_id_number: str = Field(max_length=40)
    comorbidity_ind: str = Field(default="N", pattern="^[YN]$")
    consent_version: str = Field(default="V1", max_length=20)


class BeneficiaryRef(BaseModel):
    beneficiary_reference_id: str = Field(max_length=14)


class Schedule(BaseModel):
    dose: int = Field(ge=1, le=5)
    session_id: str = Field(max_length=36)
    slot: str = Field(max_length=20)
    beneficiaries: list[str] = Field(min_length=1, max_length=4)
    center_id: int | None = None


class Reschedule(BaseModel):
    appointment_id: str = Field(max_length=36)
    session_id: str = Field(max_length=36)
    slot: str = Field(max_length=20)


class Cancel(BaseModel):
    appointment_id: str = Field(max_length=36)
    beneficiariesToCancel: list[str] = Field(min_length=1, max_length=4)
