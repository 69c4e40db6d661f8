from __future__ import annotations

from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, Field


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


class DaySheet(BaseModel):
    """A centre's day, to vaccinate from when the network is gone (teeka.vaccination.offline):
    every appointment, never a secret code, photo-ID numbers masked."""

    centre_id: int
    date: date
    generated_at: datetime
    appointments: list[CentreAppointmentRead]


class OfflineDoseIn(BaseModel):
    """One dose given offline: the appointment and the session it was in on the sheet (or, for
    a walk-in, no appointment and the person's reference id), the code the person showed, the
    vial's batch and when (with its time zone)."""

    appointment_id: str = Field(default="", max_length=36)
    reference_id: str = Field(default="", max_length=14)  # a walk-in
    session_id: str = Field(max_length=36)
    secret_code: str = Field(max_length=8)
    batch: str = Field(min_length=1, max_length=40)
    given_at: AwareDatetime  # with its offset: a device's local time is not guessed


class DaySheetSync(BaseModel):
    doses: list[OfflineDoseIn] = Field(max_length=5000)


class OfflineDoseOut(BaseModel):
    appointment_id: str
    outcome: str  # recorded, already_recorded or refused
    code: str | None = None
    message: str | None = None
    dose_record_id: int | None = None


class DaySheetSynced(BaseModel):
    recorded: int
    already_recorded: int
    refused: int
    doses: list[OfflineDoseOut]


class KeptOfflineDose(BaseModel):
    """A dose given offline that no upload could record, as the district sees it."""

    id: int
    centre_id: int
    centre_name: str
    appointment_id: str
    reference_id: str  # empty when the line named nobody the district may know
    name: str
    day: date
    given_at: datetime
    batch: str
    reason: str | None
    message: str  # the reason, in the reader's language
    recordable: bool  # whether the district may record it (teeka.vaccination.resolve)


class Resolution(BaseModel):
    note: str = Field(max_length=300)
