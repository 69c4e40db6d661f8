"""JSON API for vaccinators at the centre."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from teeka.vaccination import service
from teeka.vaccination.schemas import (
    CentreAppointmentRead,
    DoseCreate,
    DoseRecordRead,
    WalkinCreate,
)
from teeka.web.deps import CurrentActor, Db

router = APIRouter(prefix="/api/v1/centre", tags=["vaccination"])


@router.get("/appointments", response_model=list[CentreAppointmentRead])
async def appointments_today(
        db: Db, actor: CurrentActor,
        reference_id: Annotated[str | None, Query(max_length=14)] = None,
        mobile: Annotated[str | None, Query(max_length=20)] = None,
) -> list[CentreAppointmentRead]:
    """Today's appointments at the vaccinator's centre, by reference id or by mobile number."""
    return await service.find_appointments_today(db, actor=actor, reference_id=reference_id,
                                                 mobile=mobile)


@router.post("/doses", response_model=DoseRecordRead, status_code=201,
             responses={200: {"model": DoseRecordRead,
                              "description": "Already recorded: the earlier record"}})
async def record_dose(body: DoseCreate, db: Db, actor: CurrentActor,
                      response: Response) -> DoseRecordRead:
    outcome = await service.record_dose(db, actor=actor, appointment_id=body.appointment_id,
                                        secret_code=body.secret_code, batch=body.batch)
    if outcome.already_recorded:
        response.status_code = 200
    return service.dose_read(outcome)


@router.post("/walkins", response_model=DoseRecordRead, status_code=201,
             responses={200: {"model": DoseRecordRead,
                              "description": "Already recorded: the earlier record"}})
async def record_walkin(body: WalkinCreate, db: Db, actor: CurrentActor,
                        response: Response) -> DoseRecordRead:
    outcome = await service.record_walkin(db, actor=actor, session_id=body.session_id,
                                          reference_id=body.reference_id,
                                          secret_code=body.secret_code, batch=body.batch)
    if outcome.already_recorded:
        response.status_code = 200
    return service.dose_read(outcome)
