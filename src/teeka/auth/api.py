from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from teeka import errors
from teeka.auth.service import sign_out, staff_login, staff_token, verify_second_factor
from teeka.web.deps import AppSettings, CurrentActor, Db

router = APIRouter(prefix="/api/v1", tags=["staff"])


class StaffLogin(BaseModel):
    username: str = Field(max_length=60)
    password: str = Field(max_length=200)
    totp: str = Field(default="", max_length=6, description="the current code of the second factor")


class StaffToken(BaseModel):
    token: str
    role: str
    district_id: int | None
    centre_id: int | None


@router.post("/staff/login", response_model=StaffToken)
async def login(body: StaffLogin, db: Db, settings: AppSettings) -> StaffToken:
    staff = await staff_login(db, username=body.username, password=body.password)
    if staff.totp_secret is None:
        raise errors.SecondFactorNotSetUp()
    if not await verify_second_factor(db, staff, body.totp):
        raise errors.SecondFactorWrong()
    return StaffToken(token=staff_token(settings, staff), role=staff.role,
                      district_id=staff.district_id, centre_id=staff.centre_id)


@router.post("/staff/logout", status_code=204)
async def logout(db: Db, actor: CurrentActor) -> Response:
    """Log out: this staff user's API tokens and page sessions begun until now end, on every
    device (the same as the pages' Log out)."""
    if actor.kind != "staff":
        raise errors.Forbidden()
    await sign_out(db, actor)
    return Response(status_code=204)
