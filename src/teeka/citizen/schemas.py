from __future__ import annotations

from pydantic import BaseModel, Field


class OtpRequest(BaseModel):
    mobile: str = Field(max_length=20)
    # the `device_token` an earlier sign-in on this device returned: an app's requests for a
    # number it signed in to are then limited on their own, not with everyone's for the number
    device_token: str | None = Field(default=None, max_length=4096)


class OtpSent(BaseModel):
    txn_id: str


class OtpConfirm(BaseModel):
    txn_id: str = Field(max_length=36)
    otp: str = Field(max_length=10)
    device_token: str | None = Field(default=None, max_length=4096)  # this device's, if any


class TokenRead(BaseModel):
    token: str
    expires_in: int
    # keep it on the device and send it with later OTP requests (180 days; not a sign-in)
    device_token: str | None = None


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
