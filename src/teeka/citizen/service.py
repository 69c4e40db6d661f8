"""Citizen login by OTP, and beneficiaries (own, or registered at a help desk)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from teeka import errors
from teeka.audit.service import log_action
from teeka.auth.access import access_beneficiary, may_assist, reaches_beneficiary
from teeka.auth.actor import Actor
from teeka.citizen import rules
from teeka.config import Settings
from teeka.kit import clock, ids, phone, signing
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    Beneficiary,
    BeneficiaryStatus,
    DoseRecord,
    OtpChallenge,
    StaffUser,
)
from teeka.models.staff import Role
from teeka.notification.service import OTP_SMS, queue_sms

OTP_LOCK_CLASS = 7302  # pg_advisory_xact_lock(class, hashtext(number)): one OTP request at once


def otp_minutes(settings: Settings) -> int:
    """How long an OTP is valid, in whole minutes as the SMS and the sign-in page say it
    (never more than it is: 90 s is "1 minute")."""
    return max(1, settings.otp_ttl_seconds // 60)


def _otp_hash(settings: Settings, txn_id: str, digest_hex: str) -> str:
    return signing.keyed_hash(settings.resolved_secret(), "otp", f"{txn_id}:{digest_hex.lower()}")


async def request_otp(session: AsyncSession, settings: Settings, *, mobile: str, lang: str,
                      before_send: Callable[[str], Awaitable[None]] | None = None,
                      trusted_device: bool = False) -> str:
    """Send a fresh OTP by SMS; return its transaction id.

    `before_send(number)` is awaited only when an OTP will be sent, after this function's own
    refusals (the number's rate limit: teeka.surge.limits.otp_send_limit), so a refused request
    uses up nothing. `trusted_device`: asked from a browser that signed in to this number before;
    the number's daily cap, which anyone's requests fill, does not apply (the device's own limits
    do, in `before_send`)."""
    number = phone.normalise_mobile(mobile)
    if number is None:
        raise errors.InvalidMobile()
    if session.get_bind().dialect.name == "postgresql":
        # One request for a number at a time (SQLite has one writer): requests sent together
        # all read the count and the last send before any of them was written, and each sent
        # an OTP, the resend interval notwithstanding (a concurrent fuzz sent 5 of 8, 29 Nov).
        # Never waited for (a connection held meanwhile): the one being answered sends.
        if not (await session.execute(select(func.pg_try_advisory_xact_lock(
                OTP_LOCK_CLASS, func.hashtext(number))))).scalar_one():
            raise errors.OtpResendTooSoon(seconds=max(1, settings.otp_resend_interval_seconds))
    now = clock.now()
    recent = (await session.execute(
        select(func.count(), func.max(OtpChallenge.created_at))
        .where(OtpChallenge.mobile == number, OtpChallenge.created_at > now - timedelta(days=1))
    )).one()
    if recent[0] >= settings.otp_daily_limit and not trusted_device:
        raise errors.OtpDailyLimit()
    if recent[1] is not None:
        wait = settings.otp_resend_interval_seconds - (now - recent[1]).total_seconds()
        if wait > 0:
            raise errors.OtpResendTooSoon(seconds=int(wait) + 1)
    if before_send is not None:
        await before_send(number)
    code = ids.otp()
    txn_id = ids.new_uuid()
    session.add(OtpChallenge(id=txn_id, mobile=number,
                             code_hash=_otp_hash(settings, txn_id, signing.sha256_hex(code)),
                             created_at=now,
                             expires_at=now + timedelta(seconds=settings.otp_ttl_seconds)))
    await queue_sms(session, to=number, lang=lang, template=OTP_SMS, sensitive=True, otp=code,
                    minutes=otp_minutes(settings))
    return txn_id


async def confirm_otp(session: AsyncSession, settings: Settings, *, txn_id: str,
                      otp: str | None = None, otp_sha256: str | None = None,
                      language: str | None = None) -> Account:
    """Check an OTP (given plainly, or as its SHA-256 hex digest as the national API sends it)
    and return the account, creating it on first login.

    Every try is counted, the right one too, by a guarded UPDATE before the code is compared:
    tries sent at the same moment cannot all be checked against a count read before any of
    them was made. OtpInvalid keeps the changes of its unit of work (the count is committed
    although the request fails).
    """
    challenge = await session.get(OtpChallenge, txn_id) if txn_id else None
    if challenge is None or challenge.used_at is not None:
        raise errors.OtpInvalid()
    now = clock.now()
    if challenge.expires_at <= now:
        raise errors.OtpExpired()
    if challenge.attempts >= settings.otp_max_attempts:
        raise errors.OtpTooManyTries()
    counted = await session.execute(
        update(OtpChallenge).where(OtpChallenge.id == txn_id,
                                   OtpChallenge.attempts < settings.otp_max_attempts)
        .values(attempts=OtpChallenge.attempts + 1))
    if counted.rowcount == 0:  # type: ignore[attr-defined]
        raise errors.OtpTooManyTries()
    digest = otp_sha256 if otp_sha256 is not None else signing.sha256_hex(
        (otp or "").strip().translate(phone.DEVANAGARI_DIGITS))
    if not signing.constant_time_equal(_otp_hash(settings, txn_id, digest), challenge.code_hash):
        raise errors.OtpInvalid()
    used = await session.execute(
        update(OtpChallenge).where(OtpChallenge.id == txn_id, OtpChallenge.used_at.is_(None))
        .values(used_at=now))
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.OtpInvalid()
    account = (await session.execute(select(Account).where(Account.mobile == challenge.mobile))
               ).scalar_one_or_none()
    if account is None:
        created = Account(mobile=challenge.mobile, created_at=now)
        try:
            async with session.begin_nested():
                session.add(created)
                await session.flush()
        except IntegrityError:
            # The same new number signed in at the same moment with another OTP: that login
            # made the account (its commit is what this insert waited for); this one uses it.
            account = (await session.execute(
                select(Account).where(Account.mobile == challenge.mobile))).scalar_one()
        else:
            account = created
            await log_action(session, actor=f"account:{account.id}",
                             action="citizen.account.created", object_type="account",
                             object_id=account.id)
    if language in ("hi", "en") and account.language != language:
        # The language the person signs in in is the one their SMS are sent in (bookings,
        # cancellations, moves, doses); before, every account stayed Hindi.
        account.language = language
    return account


def _id_hash(settings: Settings, id_type: str, number: str) -> str:
    return signing.keyed_hash(settings.resolved_secret(), "photo-id", f"{id_type}:{number}")


async def find_assisted_by_id(session: AsyncSession, settings: Settings, *, actor: Actor,
                              id_type: str, id_number: str) -> Beneficiary:
    """A person registered without a mobile number, found by their photo ID at a help desk
    (they lost their slip and do not know their reference id). Only people the help desk may
    act for are found (teeka.auth.access.reaches_beneficiary); anyone else is NotFound, as
    an unknown document. The lookup is audited with the document's last four digits only."""
    if not may_assist(actor):
        raise errors.Forbidden()
    number = rules.normalise_id_number(id_type, id_number)
    person = (await session.execute(select(Beneficiary).where(
        Beneficiary.id_hash == _id_hash(settings, id_type, number),
        Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one_or_none()
    await log_action(session, actor=actor.label, action="citizen.beneficiary.looked_up",
                     object_type="beneficiary",
                     object_id=person.reference_id if person is not None else "",
                     id_type=id_type, id_last4=number[-4:], found=person is not None)
    if person is None or not reaches_beneficiary(actor, person.account_id):
        raise errors.NotFound()
    return person


async def register_beneficiary(session: AsyncSession, settings: Settings, *, actor: Actor,
                               name: str, birth_year: int, gender: str, id_type: str,
                               id_number: str, priority_group: str = "none") -> Beneficiary:
    """Register a person: on the citizen's own account, or (help desk) with no mobile at all."""
    if actor.is_citizen:
        account_id: int | None = actor.id
        staff_id = None
    elif may_assist(actor):
        account_id, staff_id = None, actor.id
    else:
        raise errors.Forbidden()
    clean_name = rules.check_person(name=name, birth_year=birth_year, gender=gender,
                                    priority_group=priority_group, this_year=clock.today().year)
    number = rules.normalise_id_number(id_type, id_number)
    id_hash = _id_hash(settings, id_type, number)
    if account_id is not None:
        # One registration at a time per account: ten sent at once cannot all count three
        # people before any is added (FOR NO KEY UPDATE: the people's rows referring to the
        # account do not wait for it).
        await session.execute(select(Account.id).where(Account.id == account_id)
                              .with_for_update(key_share=True))
        count = (await session.execute(
            select(func.count()).select_from(Beneficiary)
            .where(Beneficiary.account_id == account_id,
                   Beneficiary.status == BeneficiaryStatus.ACTIVE))).scalar_one()
        if count >= settings.max_beneficiaries_per_account:
            raise errors.TooManyBeneficiaries(limit=settings.max_beneficiaries_per_account)
    if (await session.execute(select(Beneficiary.id).where(Beneficiary.id_hash == id_hash))
            ).first() is not None:
        raise errors.DuplicateIdDocument()
    person = Beneficiary(reference_id=ids.reference_id(), account_id=account_id,
                         registered_by_staff_id=staff_id, name=clean_name, birth_year=birth_year,
                         gender=gender, id_type=id_type, id_hash=id_hash, id_last4=number[-4:],
                         priority_group=priority_group, secret_code=ids.secret_code(),
                         created_at=clock.now())
    try:
        async with session.begin_nested():
            session.add(person)
            await session.flush()
    except IntegrityError as exc:  # the same document registered concurrently
        raise errors.DuplicateIdDocument() from exc
    await log_action(session, actor=actor.label, action="citizen.beneficiary.registered",
                     object_type="beneficiary", object_id=person.reference_id,
                     assisted=account_id is None)
    return person


async def list_beneficiaries(session: AsyncSession, actor: Actor) -> list[Beneficiary]:
    if not actor.is_citizen:
        raise errors.Forbidden()
    rows = await session.execute(
        select(Beneficiary).where(Beneficiary.account_id == actor.id,
                                  Beneficiary.status == BeneficiaryStatus.ACTIVE)
        .order_by(Beneficiary.id))
    return list(rows.scalars())


async def delete_beneficiary(session: AsyncSession, *, actor: Actor, reference_id: str) -> None:
    """Delete a person who has had no dose; an active appointment is cancelled first."""
    person = await access_beneficiary(session, actor, reference_id)
    if not actor.is_citizen and not actor.has_role(Role.STATE_ADMIN):
        # A help desk reaches people without a mobile from any district (they travel, and
        # come to the nearest desk), but deletes only those its own district registered.
        registered_in = (await session.execute(select(StaffUser.district_id).where(
            StaffUser.id == person.registered_by_staff_id))).scalar_one_or_none()
        if registered_in is None or registered_in != actor.district_id:
            raise errors.RegisteredElsewhere()
    # Locked before anything is checked, in the order a dose recorded for an appointment
    # locks: the person's booked appointment, then the person (FOR NO KEY UPDATE, as a booking,
    # a walk-in and a secret code's check lock them). A booking, a walk-in or a dose for them
    # that is under way ends first and is seen below (an appointment to cancel, a dose that
    # forbids the delete); one that comes later finds the person deleted. Without it a booking
    # made meanwhile stayed booked for a deleted person, and a walk-in's dose let the same
    # document register again for a "first" dose (found by a concurrent fuzz, 29 Nov).
    locked = set((await session.execute(select(Appointment.id).where(
        Appointment.beneficiary_id == person.id, Appointment.status == AppointmentStatus.BOOKED)
        .order_by(Appointment.id).with_for_update())).scalars())
    if (await session.execute(select(Beneficiary.status).where(Beneficiary.id == person.id)
                              .with_for_update(key_share=True))).scalar_one() != \
            BeneficiaryStatus.ACTIVE:
        raise errors.NotFound()  # deleted meanwhile (a double click)
    if (await session.execute(select(DoseRecord.id).where(DoseRecord.beneficiary_id == person.id))
            ).first() is not None:
        raise errors.BeneficiaryHasDoses()
    active = (await session.execute(
        select(Appointment.id).where(Appointment.beneficiary_id == person.id,
                                     Appointment.status == AppointmentStatus.BOOKED))).scalar()
    if active is not None and active not in locked:
        # booked while this waited for the person: locking it now would take the person
        # before the appointment, the reverse of a dose's order (a deadlock with a dose for
        # it). Try again (503): the retry locks it first, as resolve.record does.
        raise errors.Busy()
    if active is not None:
        from teeka.booking.service import cancel_appointment

        await cancel_appointment(session, actor=actor, appointment_id=active)
    person.status = BeneficiaryStatus.DELETED
    person.id_hash = None  # the document may be registered again
    await session.flush()
    await log_action(session, actor=actor.label, action="citizen.beneficiary.deleted",
                     object_type="beneficiary", object_id=reference_id)
