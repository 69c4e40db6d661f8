"""The only places that decide who may touch what (one function per kind of access)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.auth.actor import Actor
from teeka.models import Beneficiary, BeneficiaryStatus, Centre
from teeka.models.staff import Role


def access_district(actor: Actor, district_id: int) -> None:
    """District administration: a state admin anywhere, a district admin in their district."""
    if actor.has_role(Role.STATE_ADMIN):
        return
    if actor.has_role(Role.DISTRICT_ADMIN) and actor.district_id == district_id:
        return
    raise errors.Forbidden()


async def access_centre_admin(session: AsyncSession, actor: Actor, centre_id: int) -> Centre:
    centre = await session.get(Centre, centre_id)
    if centre is None:
        raise errors.NotFound()
    access_district(actor, centre.district_id)
    return centre


def access_centre_work(actor: Actor, centre_id: int) -> None:
    """Recording doses: a vaccinator only at their own centre."""
    if actor.has_role(Role.VACCINATOR) and actor.centre_id == centre_id:
        return
    raise errors.WrongCentre() if actor.has_role(Role.VACCINATOR) else errors.Forbidden()


def access_booking_district(actor: Actor, district_id: int) -> None:
    """Booking or moving someone into a centre of `district_id`: citizens and the state
    anywhere; staff of a district (its help desk, its administrators) only in their own
    district, the one their pages offer."""
    if actor.kind != "staff" or actor.has_role(Role.STATE_ADMIN):
        return
    if actor.district_id is None or actor.district_id != district_id:
        raise errors.OutsideDistrict()


def may_assist(actor: Actor) -> bool:
    return actor.has_role(Role.HELPDESK, Role.STATE_ADMIN, Role.DISTRICT_ADMIN)


def reaches_beneficiary(actor: Actor, account_id: int | None) -> bool:
    """Whether `actor` may act for an active beneficiary of account `account_id` (None: registered
    without a mobile number). The rule of `access_beneficiary`, for callers that load several
    people in one query (booking)."""
    if actor.is_citizen:
        return account_id == actor.id
    return may_assist(actor) and account_id is None


async def access_beneficiary(session: AsyncSession, actor: Actor, reference_id: str
                             ) -> Beneficiary:
    """A citizen reaches only the beneficiaries of their own account; help-desk staff reach
    those registered without a mobile number (assisted registration). Anyone else: not found,
    so that the existence of a reference id is not disclosed."""
    row = (await session.execute(
        select(Beneficiary).where(Beneficiary.reference_id == reference_id,
                                  Beneficiary.status == BeneficiaryStatus.ACTIVE)
    )).scalar_one_or_none()
    if row is None or not reaches_beneficiary(actor, row.account_id):
        raise errors.NotFound()
    return row
