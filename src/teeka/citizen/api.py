"""JSON API for citizens: OTP login and beneficiaries; help-desk assisted registration."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.auth.service import citizen_token, device_token, trusted_device_id
from teeka.citizen import service
from teeka.citizen.schemas import (
    AssistedRegistration,
    BeneficiaryCreate,
    BeneficiaryRead,
    OtpConfirm,
    OtpRequest,
    OtpSent,
    TokenRead,
)
from teeka.kit.phone import mask_id_number, normalise_mobile
from teeka.models import Appointment, AppointmentStatus, Beneficiary, DoseRecord
from teeka.surge.limits import otp_client_limit, otp_send_limit
from teeka.web.deps import AppSettings, CurrentActor, Db, Lang

router = APIRouter(prefix="/api/v1", tags=["citizen"])


@router.post("/auth/otp", response_model=OtpSent)
async def request_otp(request: Request, body: OtpRequest, db: Db, settings: AppSettings,
                      lang: Lang) -> OtpSent:
    await otp_client_limit(request)
    device = trusted_device_id(settings.resolved_secret(), body.device_token,
                               normalise_mobile(body.mobile))
    txn = await service.request_otp(db, settings, mobile=body.mobile, lang=lang,
                                    before_send=otp_send_limit(request, device),
                                    trusted_device=device is not None)
    return OtpSent(txn_id=txn)


@router.post("/auth/otp/confirm", response_model=TokenRead)
async def confirm_otp(request: Request, body: OtpConfirm, db: Db, settings: AppSettings,
                      lang: Lang) -> TokenRead:
    # The account's SMS language follows a client that says which it wants (Accept-Language,
    # `?lang=`, the `lang` cookie); one that says nothing leaves it as it was.
    said = ("accept-language" in request.headers or "lang" in request.query_params
            or "lang" in request.cookies)
    account = await service.confirm_otp(db, settings, txn_id=body.txn_id, otp=body.otp,
                                        language=lang if said else None)
    return TokenRead(token=citizen_token(settings, account.id),
                     expires_in=settings.citizen_token_minutes * 60,
                     device_token=device_token(settings.resolved_secret(), body.device_token,
                                               account.mobile))


async def beneficiary_read(db: AsyncSession, person: Beneficiary) -> BeneficiaryRead:
    doses = (await db.execute(select(func.count()).select_from(DoseRecord)
                              .where(DoseRecord.beneficiary_id == person.id))).scalar_one()
    appt = (await db.execute(select(Appointment.id).where(
        Appointment.beneficiary_id == person.id,
        Appointment.status == AppointmentStatus.BOOKED))).scalar()
    return BeneficiaryRead(reference_id=person.reference_id, name=person.name,
                           birth_year=person.birth_year, gender=person.gender,
                           id_type=person.id_type, id_number_masked=mask_id_number(person.id_last4),
                           priority_group=person.priority_group, secret_code=person.secret_code,
                           doses=doses, appointment_id=appt)


@router.get("/beneficiaries", response_model=list[BeneficiaryRead])
async def list_beneficiaries(db: Db, actor: CurrentActor) -> list[BeneficiaryRead]:
    return [await beneficiary_read(db, p) for p in await service.list_beneficiaries(db, actor)]


@router.post("/beneficiaries", response_model=BeneficiaryRead, status_code=201)
async def add_beneficiary(body: BeneficiaryCreate, db: Db, actor: CurrentActor,
                          settings: AppSettings) -> BeneficiaryRead:
    person = await service.register_beneficiary(db, settings, actor=actor, **body.model_dump())
    return await beneficiary_read(db, person)


@router.delete("/beneficiaries/{reference_id}", status_code=204)
async def delete_beneficiary(reference_id: str, db: Db, actor: CurrentActor) -> Response:
    await service.delete_beneficiary(db, actor=actor, reference_id=reference_id)
    return Response(status_code=204)


@router.post("/helpdesk/beneficiaries", response_model=AssistedRegistration, status_code=201)
async def assisted_registration(body: BeneficiaryCreate, db: Db, actor: CurrentActor,
                                settings: AppSettings) -> AssistedRegistration:
    """A help-desk officer registers a person who has no mobile phone."""
    from teeka import errors
    from teeka.auth.access import may_assist
    from teeka.booking.pages import slip_signature

    if not may_assist(actor):
        raise errors.Forbidden()
    person = await service.register_beneficiary(db, settings, actor=actor, **body.model_dump())
    read = await beneficiary_read(db, person)
    return AssistedRegistration(**read.model_dump(),
                                slip_url=f"/slip/person/{person.reference_id}?sig="
                                f"{slip_signature(settings, 'person', person.reference_id)}")
