from __future__ import annotations

from datetime import date, time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field


def _local(value: time) -> time:
    """A centre's times are India's clock times, given without an offset: one with an offset
    ("09:00+05:30") is refused as a field error, not compared with the others or stored with
    its offset dropped."""
    if value.tzinfo is not None:
        raise ValueError("a time of day without a UTC offset (India time)")
    return value


LocalTime = Annotated[time, AfterValidator(_local)]


class CentreCreate(BaseModel):
    district_id: int
    block_id: int
    name_en: str = Field(min_length=2, max_length=200)
    name_hi: str = Field(min_length=2, max_length=200)
    address_en: str = Field(default="", max_length=300)
    address_hi: str = Field(default="", max_length=300)
    pincode: int = Field(ge=100000, le=999999)
    lat: float = Field(ge=-90, le=90)
    long: float = Field(ge=-180, le=180)
    fee_type: str = Field(default="Free", pattern="^(Free|Paid)$")
    fees: dict[str, int] = Field(default_factory=dict)  # vaccine code -> rupees
    opens_at: LocalTime = time(9, 0)
    closes_at: LocalTime = time(17, 0)


class CentreRead(BaseModel):
    id: int
    district_id: int
    block_id: int
    name_en: str
    name_hi: str
    pincode: int
    fee_type: str
    active: bool


class SlotCapacity(BaseModel):
    label: str = Field(max_length=20)
    dose1: int = Field(default=0, ge=0, le=100000)
    dose2: int = Field(default=0, ge=0, le=100000)
    precaution: int = Field(default=0, ge=0, le=100000)


class SessionCreate(BaseModel):
    centre_id: int
    date: date
    vaccine: str = Field(max_length=40)
    min_age: int = 18
    max_age: int | None = None
    walkin_allowance: int = Field(default=0, ge=0, le=100000)
    slots: list[SlotCapacity] = Field(min_length=1, max_length=24)
    # e.g. {"frontline": 20, "aay": 12, "bpl": 52, "apl": 16}; empty: all places open.
    shares: dict[str, int] = Field(default_factory=dict)
    # IST time on the session date after which unused shares open to everyone.
    share_release_time: LocalTime | None = None


class SessionRead(BaseModel):
    id: str
    centre_id: int
    date: date
    vaccine: str
    min_age: int
    max_age: int | None
    slots: list[str]


class CapacityChange(BaseModel):
    dose_kind: str = Field(pattern="^(first|second|precaution)$")
    capacity: int = Field(ge=0, le=100000)
    # below what is booked: move the people booked last to other places and tell them
    # (cancel and tell those with no place); without it such a change is refused
    move_affected: bool = False


class CapacityChanged(CapacityChange):
    """The change made, and what it did to the people booked."""

    moved: int = 0
    cancelled: int = 0
    # reference ids of those moved or cancelled who have no mobile number: tell them yourself
    not_told: list[str] = Field(default_factory=list)
