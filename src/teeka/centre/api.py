"""JSON API for district administration."""

from __future__ import annotations

from fastapi import APIRouter

from teeka.centre import service
from teeka.centre.schemas import (
    CapacityChange,
    CentreCreate,
    CentreRead,
    SessionCreate,
    SessionRead,
)
from teeka.web.deps import CurrentActor, Db

router = APIRouter(prefix="/api/v1/admin", tags=["district administration"])


@router.post("/centres", response_model=CentreRead, status_code=201)
async def create_centre(body: CentreCreate, db: Db, actor: CurrentActor) -> CentreRead:
    centre = await service.create_centre(db, actor=actor, data=body)
    return CentreRead.model_validate(centre, from_attributes=True)


@router.post("/sessions", response_model=SessionRead, status_code=201)
async def publish_session(body: SessionCreate, db: Db, actor: CurrentActor) -> SessionRead:
    vs = await service.publish_session(db, actor=actor, data=body)
    return SessionRead(id=vs.id, centre_id=vs.centre_id, date=vs.date, vaccine=body.vaccine.upper(),
                       min_age=vs.min_age, max_age=vs.max_age,
                       slots=[s.label for s in body.slots])


@router.put("/slots/{slot_id}/capacity", response_model=CapacityChange)
async def change_capacity(slot_id: int, body: CapacityChange, db: Db,
                          actor: CurrentActor) -> CapacityChange:
    await service.change_slot_capacity(db, actor=actor, slot_id=slot_id, change=body)
    return body
