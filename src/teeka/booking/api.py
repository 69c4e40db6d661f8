"""JSON API for booking: availability, book, cancel, reschedule."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from teeka import errors
from teeka.booking import service
from teeka.booking.pages import slip_signature
from teeka.booking.repository import appointment_read, find_sessions
from teeka.booking.schemas import (
    AppointmentRead,
    BookingCreate,
    BookingRead,
    RescheduleRequest,
    SessionAvailability,
)
from teeka.kit import clock
from teeka.surge import api as surge_api
from teeka.surge.limits import limiter, public_limit
from teeka.web.deps import AppSettings, CurrentActor, Db

router = APIRouter(prefix="/api/v1", tags=["booking"])


@router.get("/sessions", response_model=list[SessionAvailability],
            dependencies=[Depends(public_limit)])
async def sessions(db: Db, district_id: int | None = None,
                   pincode: Annotated[int | None, Query(ge=100000, le=999999)] = None,
                   centre_id: int | None = None, day: Annotated[date | None, Query(alias="date")] = None,
                   days: Annotated[int, Query(ge=1, le=7)] = 1) -> list[SessionAvailability]:
    if district_id is None and pincode is None and centre_id is None:
        raise errors.Invalid(detail="give district_id, pincode or centre_id")
    return await find_sessions(db, district_id=district_id, pincode=pincode, centre_id=centre_id,
                               day=day or clock.today(), days=days)


@router.post("/appointments", response_model=BookingRead, status_code=201)
async def book(request: Request, body: BookingCreate, db: Db, actor: CurrentActor,
               settings: AppSettings,
               idempotency_key: Annotated[str, Header(alias="Idempotency-Key")]) -> BookingRead:
    await limiter(request).hit("booking", actor.label)
    passed = await surge_api.gate(request, db, actor, body.session_id,
                                  people=body.beneficiaries, idempotency_key=idempotency_key)
    result = await service.book_appointment(
        db, actor=actor, session_id=body.session_id, slot=body.slot,
        beneficiary_refs=body.beneficiaries, dose=body.dose, idempotency_key=idempotency_key,
        may_take=passed.may_take)
    await surge_api.used(request, db, passed, actor, pools=result.pools or None,
                         appointment_ids=result.appointment_ids,
                         replayed=result.replayed)
    return BookingRead(confirmation_no=result.confirmation_no,
                       appointment_ids=result.appointment_ids,
                       slip_url=f"/slip/{result.confirmation_no}?sig="
                       f"{slip_signature(settings, 'booking', result.confirmation_no)}")


@router.get("/appointments/{appointment_id}", response_model=AppointmentRead)
async def get_appointment(appointment_id: str, db: Db, actor: CurrentActor) -> AppointmentRead:
    await service.access_appointment(db, actor, appointment_id)
    return await appointment_read(db, appointment_id)


@router.post("/appointments/{appointment_id}/cancel", status_code=204)
async def cancel(appointment_id: str, db: Db, actor: CurrentActor) -> Response:
    await service.cancel_appointment(db, actor=actor, appointment_id=appointment_id)
    return Response(status_code=204)


@router.post("/appointments/{appointment_id}/reschedule", response_model=AppointmentRead)
async def reschedule(request: Request, appointment_id: str, body: RescheduleRequest, db: Db,
                     actor: CurrentActor) -> AppointmentRead:
    passed = await surge_api.gate(request, db, actor, body.session_id)
    await service.reschedule_appointment(db, actor=actor, appointment_id=appointment_id,
                                         session_id=body.session_id, slot=body.slot,
                                         may_take=passed.may_take)
    await surge_api.used(request, db, passed, actor, appointment_ids=[appointment_id])
    return await appointment_read(db, appointment_id)
