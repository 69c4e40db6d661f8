"""JSON API for vaccinators at the centre."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from teeka.kit import clock
from teeka.vaccination import offline, resolve, service
from teeka.vaccination.schemas import (
    CentreAppointmentRead,
    DaySheet,
    DaySheetSync,
    DaySheetSynced,
    DoseCreate,
    DoseRecordRead,
    KeptOfflineDose,
    OfflineDoseOut,
    Resolution,
    WalkinCreate,
)
from teeka.web.deps import CurrentActor, Db, Lang

router = APIRouter(prefix="/api/v1/centre", tags=["vaccination"])
# The district's side of doses given offline (teeka.vaccination.resolve).
admin_router = APIRouter(prefix="/api/v1/admin/offline-doses", tags=["vaccination"])


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


@admin_router.get("", response_model=list[KeptOfflineDose])
async def kept_offline_doses(db: Db, actor: CurrentActor, lang: Lang,
                             district_id: Annotated[int, Query(ge=1, le=2**31 - 1)]
                             ) -> list[KeptOfflineDose]:
    """The district's doses given offline that no upload could record, oldest first."""
    return [KeptOfflineDose(
        id=k.id, centre_id=k.centre_id,
        centre_name=k.centre_name_hi if lang == "hi" else k.centre_name_en,
        appointment_id=k.appointment_id, reference_id=k.reference_id, name=k.name, day=k.day,
        given_at=k.given_at, batch=k.batch, reason=k.reason,
        message=offline.reason_text(k.reason, lang), recordable=k.reason in resolve.RECORDABLE)
        for k in await resolve.district_list(db, actor=actor, district_id=district_id)]


@admin_router.post("/{offline_id}/record", response_model=DoseRecordRead, status_code=201)
async def record_kept_dose(offline_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                           body: Resolution, db: Db, actor: CurrentActor) -> DoseRecordRead:
    """Record a kept dose as given (a refusal the district may overrule), with a note; the
    person's other appointment is ended and they are told."""
    return service.dose_read(await resolve.record(db, actor=actor, offline_id=offline_id,
                                                  note=body.note))


@admin_router.post("/{offline_id}/dismiss", status_code=204)
async def dismiss_kept_dose(offline_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                            body: Resolution, db: Db, actor: CurrentActor) -> Response:
    """Close a kept dose without recording it, with a note saying why."""
    await resolve.dismiss(db, actor=actor, offline_id=offline_id, note=body.note)
    return Response(status_code=204)
