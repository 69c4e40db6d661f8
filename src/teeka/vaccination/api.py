"""JSON API for vaccinators at the centre."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from teeka.kit import clock
from teeka.vaccination import offline, service
from teeka.vaccination.schemas import (
    CentreAppointmentRead,
    DaySheet,
    DaySheetSync,
    DaySheetSynced,
    DoseCreate,
    DoseRecordRead,
    OfflineDoseOut,
    WalkinCreate,
)
from teeka.web.deps import CurrentActor, Db, Lang

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


@router.get("/day-sheet", response_model=DaySheet)
async def day_sheet(db: Db, actor: CurrentActor, date: date) -> DaySheet:
    """The centre's appointments of a day (tomorrow, today or one of the last sync days), to
    vaccinate from when the network is gone; recorded later with POST /day-sheet."""
    rows = await offline.day_sheet(db, actor=actor, day=date)
    return DaySheet(centre_id=offline.own_centre(actor), date=date, generated_at=clock.now(),
                    appointments=rows)


@router.post("/day-sheet", response_model=DaySheetSynced)
async def sync_day_sheet(body: DaySheetSync, db: Db, actor: CurrentActor,
                         lang: Lang) -> DaySheetSynced:
    """Doses given offline from the day sheet, recorded now, each exactly once: `recorded`,
    `already_recorded` (a sheet sent again, or recorded online meanwhile) or `refused` with
    its code and message; a refused dose is kept for the centre to resolve."""
    report = await offline.sync(db, actor=actor, lang=lang, rows=[
        offline.SheetRow(appointment_id=d.appointment_id, session_id=d.session_id,
                         secret_code=d.secret_code, batch=d.batch, given_at=d.given_at,
                         reference_id="" if d.appointment_id else d.reference_id)
        for d in body.doses])
    return DaySheetSynced(
        recorded=report.count("recorded"), already_recorded=report.count("already_recorded"),
        refused=report.count("refused"),
        doses=[OfflineDoseOut(appointment_id=r.appointment_id, outcome=r.outcome, code=r.code,
                              message=r.message, dose_record_id=r.dose_record_id)
               for r in report.rows])
