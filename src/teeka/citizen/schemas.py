from __future__ import annotations

from pydantic import BaseModel, Field


class OtpRequest(BaseModel):
    mobile: str = Field(max_length=20)


class OtpSent(BaseModel):
    txn_id: str


class OtpConfirm(BaseModel):
    txn_id: str = Field(max_length=36)
    otp: str = Field(max_length=10)


class TokenRead(BaseModel):
    token: str
    expires_in: int


class BeneficiaryCreate(BaseModel):
    name: str = Field(max_length=200)
    birth_year: int
    gender: str = Field(max_length=12)
    id_type: str = Field(max_length=20)
    id_number: str = Field(max_length=40)
    priority_group: str = Field(default="none", max_length=12)


class BeneficiaryRead(BaseModel):
    reference_id: str
    name: str
    birth_year: int
    gender: str
    id_type: str
    id_number_masked: str
    priority_group: str
    secret_code: str
    doses: int = 0
    appointment_id: str | None = None


class AssistedRegistration(BeneficiaryRead):
    slip_url: str
