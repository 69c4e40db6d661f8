"""The national public API surface (CoWIN v2) and its protected partner surface.

Thin adapters: every rule lives in the same services as /api/v1 (citizen.service,
booking.service); this module only translates names, formats and error shapes
(docs/national-api.md).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Depends, Header, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from teeka import errors
from teeka.auth.service import citizen_token
from teeka.booking import service as booking
from teeka.booking.pages import slip_items
from teeka.booking.pdf import slip_pdf
from teeka.certificate import service as certificate_service
from teeka.certificate.api import pdf_response
from teeka.citizen import service as citizen
from teeka.db import busy_on_database_trouble, session_scope
from teeka.kit import clock
from teeka.kit.phone import mask_id_number
from teeka.models import (
    Account,
    Appointment,
    AppointmentStatus,
    Beneficiary,
    BeneficiaryStatus,
    Booking,
    District,
    DoseRecord,
    State,
    VaccinationSession,
    Vaccine,
)
from teeka.national import repository, rules
from teeka.national.repository import CentreInfo, SessionInfo
from teeka.national.schemas import (
    BeneficiaryRef,
    Cancel,
    ConfirmOtp,
    GenerateOtp,
    NewBeneficiary,
    Reschedule,
    Schedule,
)
from teeka.surge import api as surge_api
from teeka.surge.limits import (
    DECIDED,
    client_key,
    limiter,
    otp_client_limit,
    otp_send_limit,
    public_limit,
)
from teeka.surge.snapshot import Entry, SnapshotCache
from teeka.web.deps import AppSettings, CurrentActor, Db

router = APIRouter(prefix="/api/v2", tags=["national API (v2)"])
PublicLimit = Depends(public_limit)
TTL = 24
Json = dict[str, Any]


def _hindi(request: Request) -> bool:
    return request.headers.get("accept-language", "").lower().startswith("hi")


def _names(hindi: bool, **pairs: tuple[str, str]) -> Json:
    out: Json = {}
    for key, (en, hi) in pairs.items():
        out[key] = en
        if hindi:
            out[f"{key}_l"] = hi
    return out


def _centre(info: CentreInfo, hindi: bool) -> Json:
    c = info.centre
    return {
        "center_id": c.id,
        **_names(hindi, name=(c.name_en, c.name_hi), address=(c.address_en, c.address_hi),
                 state_name=(info.state.name_en, info.state.name_hi),
                 district_name=(info.district.name_en, info.district.name_hi),
                 block_name=(info.block.name_en, info.block.name_hi)),
        "pincode": c.pincode, "lat": c.lat, "long": c.long,
        "from": rules.fmt_time(c.opens_at), "to": rules.fmt_time(c.closes_at),
        "fee_type": c.fee_type,
    }


def _session(s: SessionInfo) -> Json:
    out: Json = {"session_id": s.id, "date": rules.fmt_date(s.date),
                 "available_capacity": s.available, "available_capacity_dose1": s.dose1,
                 "available_capacity_dose2": s.dose2}
    if s.precaution is not None:
        out["available_capacity_precaution"] = s.precaution
    out["min_age_limit"] = s.min_age
    if s.max_age is not None:
        out["max_age_limit"] = s.max_age
    out["allow_all_age"] = s.max_age is None and s.min_age <= 18
    out["vaccine"] = s.vaccine
    out["slots"] = s.slots
    return out


def _fee(info: CentreInfo, vaccine: str) -> str:
    return str(info.fees.get(vaccine, 0)) if info.centre.fee_type == "Paid" else "0"


def _calendar_centre(info: CentreInfo, hindi: bool) -> Json:
    out = _centre(info, hindi)
    if info.centre.fee_type == "Paid":
        out["vaccine_fees"] = [{"vaccine": v, "fee": str(f)} for v, f in sorted(info.fees.items())]
    out["sessions"] = [_session(s) for s in info.sessions]
    return out


def _flat_sessions(infos: list[CentreInfo], hindi: bool) -> list[Json]:
    return [{**_centre(i, hindi), "fee": _fee(i, s.vaccine), **_session(s)}
            for i in infos for s in i.sessions if s.available > 0]


async def _known_district(db: AsyncSession, district_id: int) -> None:
    if await db.get(District, district_id) is None:
        raise errors.Invalid(detail="unknown district_id")


@dataclass(frozen=True)
class Query:
    """A validated availability question: what the snapshot is keyed by."""

    days: int
    day: date
    district_id: int | None = None
    pincode: int | None = None
    centre_id: int | None = None
    vaccine: str | None = None

    @classmethod
    def parse(cls, *, days: int, day: str | None, district_id: str | None = None,
              pincode: str | None = None, center_id: str | None = None,
              vaccine: str | None = None) -> Query:
        if vaccine is not None and not (0 < len(vaccine) <= 40):
            raise errors.Invalid(detail="unknown vaccine")
        return cls(days=days, day=rules.parse_date(day),
                   district_id=None if district_id is None
                   else rules.parse_int(district_id, "district_id"),
                   pincode=None if pincode is None else rules.parse_pincode(pincode),
                   centre_id=None if center_id is None else rules.parse_int(center_id, "center_id"),
                   vaccine=vaccine.upper() if vaccine else None)

    async def centres(self, db: AsyncSession) -> list[CentreInfo]:
        if self.district_id is not None:
            await _known_district(db, self.district_id)
        return await repository.centres_with_sessions(
            db, day=self.day, days=self.days, district_id=self.district_id,
            pincode=self.pincode, centre_id=self.centre_id, vaccine=self.vaccine)


Shape = Callable[[list[CentreInfo], bool], Json]


def _encode(shape: Shape, infos: list[CentreInfo], hindi: bool) -> bytes:
    return json.dumps(shape(infos, hindi), ensure_ascii=False, separators=(",", ":")).encode()


def _builder(app: Any, query: Query, shape: Shape, hindi: bool) -> Callable[[], Awaitable[bytes]]:
    async def build() -> bytes:
        async with busy_on_database_trouble(), session_scope(app.state.sessionmaker) as db:
            infos = await query.centres(db)
        # Shaping and encoding ~0.5 MB of JSON: in a thread, so the event loop keeps serving.
        return await asyncio.to_thread(_encode, shape, infos, hindi)

    return build


def _answer(cache: SnapshotCache, entry: Entry, *, gzip_ok: bool, etag_seen: bool,
            before_gzip_middleware: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of a snapshot answer (the route and the fast path share it).
    The GZip middleware adds `Vary: Accept-Encoding` to the uncompressed answers it passes
    (the route's); the fast path answers before it, so it says so itself."""
    headers = [(b"etag", entry.etag.encode()), (b"cache-control", cache.cache_control),
               (b"x-data-age", f"{time.monotonic() - entry.built_at:.2f}".encode())]
    vary = b"Accept-Language, Accept-Encoding" if gzip_ok or before_gzip_middleware \
        else b"Accept-Language"
    if etag_seen:
        return 304, [*headers, (b"vary", vary)], b""
    headers.append((b"vary", vary))
    body = entry.gzipped if gzip_ok else entry.body
    if gzip_ok:
        headers.append((b"content-encoding", b"gzip"))
    return 200, [*headers, (b"content-type", b"application/json"),
                 (b"content-length", str(len(body)).encode())], body


async def _snapshot(request: Request, kind: str, query: Query, shape: Shape) -> Response:
    """Serve a public availability answer from the snapshot cache (teeka.surge.snapshot):
    at most 2 seconds old, rebuilt in the background, and soon after any capacity change."""
    hindi = _hindi(request)
    cache: SnapshotCache = request.app.state.snapshots
    entry = await cache.get(f"{kind}|{query}|{hindi}",
                            _builder(request.app, query, shape, hindi))
    status, headers, body = _answer(
        cache, entry, gzip_ok="gzip" in request.headers.get("accept-encoding", ""),
        etag_seen=request.headers.get("if-none-match") == entry.etag,
        before_gzip_middleware=False)
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def _sessions_answer(infos: list[CentreInfo], hindi: bool) -> Json:
    return {"sessions": _flat_sessions(infos, hindi)}


def _calendar_answer(infos: list[CentreInfo], hindi: bool) -> Json:
    return {"centers": [_calendar_centre(i, hindi) for i in infos if i.sessions]}


def _one_centre_answer(infos: list[CentreInfo], hindi: bool) -> Json:
    if not infos:
        raise errors.Invalid(detail="unknown center_id")
    return {"centers": _calendar_centre(infos[0], hindi)}


# ------------------------------------------------------------------ public: locations


@router.get("/admin/location/states", dependencies=[PublicLimit])
async def states(db: Db, request: Request) -> Json:
    rows = (await db.execute(select(State).order_by(State.id))).scalars().all()
    return {"states": [{"state_id": s.id, **_names(_hindi(request),
                                                    state_name=(s.name_en, s.name_hi))}
                       for s in rows], "ttl": TTL}


@router.get("/admin/location/districts/{state_id}", dependencies=[PublicLimit])
async def districts(state_id: str, db: Db, request: Request) -> Json:
    sid = rules.parse_int(state_id, "state_id")
    if await db.get(State, sid) is None:
        raise errors.Invalid(detail="unknown state_id")
    rows = (await db.execute(select(District).where(District.state_id == sid)
                             .order_by(District.id))).scalars().all()
    return {"districts": [{"district_id": d.id, **_names(_hindi(request),
                                                          district_name=(d.name_en, d.name_hi))}
                          for d in rows], "ttl": TTL}


# ------------------------------------------------------------------ public: availability


def _by_pin(days: int) -> Callable[[str | None, str | None], Query]:
    return lambda value, day: Query.parse(days=days, day=day, pincode=value or "")


def _by_district(days: int) -> Callable[[str | None, str | None], Query]:
    return lambda value, day: Query.parse(days=days, day=day, district_id=value or "")


def _by_centre(value: str | None, day: str | None) -> Query:
    return Query.parse(days=7, day=day, center_id=value or "")


@dataclass(frozen=True)
class Read:
    """One public availability read: its snapshot kind, its scope parameter, how its question
    is validated and how its answer is shaped."""

    kind: str
    param: str
    parse: Callable[[str | None, str | None], Query]
    shape: Shape


FIND_BY_PIN = Read("findBy", "pincode", _by_pin(1), _sessions_answer)
FIND_BY_DISTRICT = Read("findBy", "district_id", _by_district(1), _sessions_answer)
CALENDAR_BY_PIN = Read("calendar", "pincode", _by_pin(7), _calendar_answer)
CALENDAR_BY_DISTRICT = Read("calendar", "district_id", _by_district(7), _calendar_answer)
CALENDAR_BY_CENTRE = Read("centre", "center_id", _by_centre, _one_centre_answer)
PREFIX = "/api/v2/appointment/sessions/public/"
PUBLIC_READS: dict[str, Read] = {
    PREFIX + "findByPin": FIND_BY_PIN, PREFIX + "findByDistrict": FIND_BY_DISTRICT,
    PREFIX + "calendarByPin": CALENDAR_BY_PIN, PREFIX + "calendarByDistrict": CALENDAR_BY_DISTRICT,
    PREFIX + "calendarByCenter": CALENDAR_BY_CENTRE,
}
FAILED = "teeka.snapshot_failed"  # scope key: the fast path's build failed with this error


async def _read(request: Request, read: Read, value: str | None, day: str | None) -> Response:
    failed = request.scope.get(FAILED)
    if isinstance(failed, Exception):
        raise failed  # the same question just failed: answer its error, do not build again
    return await _snapshot(request, read.kind, read.parse(value, day), read.shape)


@router.get("/appointment/sessions/public/findByPin", dependencies=[PublicLimit])
async def find_by_pin(request: Request, pincode: str | None = None,
                      date: str | None = None) -> Response:
    return await _read(request, FIND_BY_PIN, pincode, date)


@router.get("/appointment/sessions/public/findByDistrict", dependencies=[PublicLimit])
async def find_by_district(request: Request, district_id: str | None = None,
                           date: str | None = None) -> Response:
    return await _read(request, FIND_BY_DISTRICT, district_id, date)


@router.get("/appointment/sessions/public/calendarByPin", dependencies=[PublicLimit])
async def calendar_by_pin(request: Request, pincode: str | None = None,
                          date: str | None = None) -> Response:
    return await _read(request, CALENDAR_BY_PIN, pincode, date)


@router.get("/appointment/sessions/public/calendarByDistrict", dependencies=[PublicLimit])
async def calendar_by_district(request: Request, district_id: str | None = None,
                               date: str | None = None) -> Response:
    return await _read(request, CALENDAR_BY_DISTRICT, district_id, date)


@router.get("/appointment/sessions/public/calendarByCenter", dependencies=[PublicLimit])
async def calendar_by_center(request: Request, center_id: str | None = None,
                             date: str | None = None) -> Response:
    return await _read(request, CALENDAR_BY_CENTRE, center_id, date)


class SnapshotReads:
    """The public availability reads at the speed of a static file: pure ASGI, in front of the
    framework's middleware, routing and dependency injection. It answers a read of
    PUBLIC_READS from its snapshot with the same validation (Query.parse), the same per-IP limit,
    the same headers (the security headers included) and the same bytes as the routes above.
    Anything else goes on to the application unchanged: another path or method, a question
    with a missing, repeated or unexpected parameter, an invalid one, a refusal by the limit, a
    failed build. The route then answers it (400 or 429 in the national error shape, 503, ...),
    counting the public limit only once (`surge.limits.DECIDED`) and not building again after a
    failed build (`FAILED`)."""

    def __init__(self, app: ASGIApp, extra_headers: dict[str, str]) -> None:
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in extra_headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            read = PUBLIC_READS.get(scope["path"])
            if read is not None and await self._serve(scope, send, read):
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, send: Send, read: Read) -> bool:
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if len(params) != 2 or read.param not in params or "date" not in params \
                or scope["query_string"].count(b"&") != 1:
            return False
        try:
            query = read.parse(params[read.param], params["date"])
        except errors.DomainError:
            return False
        seen: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in (b"accept-language", b"accept-encoding", b"if-none-match"):
                seen.setdefault(name, value)
        app = scope["app"]
        client = scope.get("client")
        try:
            await app.state.limiter.hit("public", client_key(client[0] if client else "unknown"))
        except errors.RateLimited as refused:
            scope[DECIDED] = refused
            return False
        scope[DECIDED] = True
        hindi = seen.get(b"accept-language", b"").lower().startswith(b"hi")
        cache: SnapshotCache = app.state.snapshots
        key = f"{read.kind}|{query}|{hindi}"
        build = _builder(app, query, read.shape, hindi)
        entry = cache.peek(key, build)
        if entry is None:
            try:
                entry = await cache.get(key, build)
            except Exception as exc:
                scope[FAILED] = exc  # the route renders it (400, 503, ...)
                return False
        status, headers, body = _answer(
            cache, entry, gzip_ok=b"gzip" in seen.get(b"accept-encoding", b""),
            etag_seen=seen.get(b"if-none-match") == entry.etag.encode(),
            before_gzip_middleware=True)
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + self.extra})
        await send({"type": "http.response.body", "body": body})
        return True


@router.get("/appointment/centers/public/findByLatLong", dependencies=[PublicLimit])
async def find_by_lat_long(db: Db, request: Request, lat: str | None = None,
                           long: str | None = None) -> Json:
    la = rules.parse_coordinate(lat, "lat", -90, 90)
    lo = rules.parse_coordinate(long, "long", -180, 180)
    rows = await repository.centres_near(db, la, lo)
    nearest = sorted(rows, key=lambda r: rules.distance_km(la, lo, r[0].lat, r[0].long))[:20]
    hindi = _hindi(request)
    return {"centers": [{
        "center_id": c.id,
        **_names(hindi, name=(c.name_en, c.name_hi), district_name=(d.name_en, d.name_hi),
                 state_name=(s.name_en, s.name_hi), location=(c.address_en, c.address_hi),
                 block_name=(b.name_en, b.name_hi)),
        "pincode": c.pincode, "lat": str(c.lat), "long": str(c.long)}
        for c, d, b, s in nearest], "ttl": TTL}


# ------------------------------------------------------------------ OTP (public and partner)


async def _generate(body: GenerateOtp, db: Db, settings: AppSettings, request: Request) -> Json:
    await otp_client_limit(request)
    txn = await citizen.request_otp(db, settings, mobile=body.mobile,
                                    lang="hi" if _hindi(request) else "en",
                                    before_send=otp_send_limit(request))
    return {"txnId": txn}


async def _confirm(body: ConfirmOtp, db: Db, settings: AppSettings) -> Json:
    if not rules.is_sha256_hex(body.otp):
        raise errors.OtpInvalid()
    account = await citizen.confirm_otp(db, settings, txn_id=body.txnId, otp_sha256=body.otp)
    return {"token": citizen_token(settings, account.id)}


for _prefix, _limits in (("/auth/public", [PublicLimit]), ("/auth", [])):
    # The public pair is part of the public API and counts in its per-IP limit like the reads.
    router.add_api_route(f"{_prefix}/generateOTP", _generate, methods=["POST"],
                         dependencies=_limits)
    router.add_api_route(f"{_prefix}/confirmOTP", _confirm, methods=["POST"],
                         dependencies=_limits)


@router.get("/registration/certificate/public/download")
async def certificate(db: Db, actor: CurrentActor, settings: AppSettings,
                      beneficiary_reference_id: str = "") -> Response:
    """The certificate PDF (`Content-Type: application/pdf`), with its signed QR code
    (teeka.certificate)."""
    found = await certificate_service.certificate(db, settings, actor=actor,
                                                  reference_id=beneficiary_reference_id)
    return await pdf_response(found, settings.certificate_issuer)


# ------------------------------------------------------------------ partner: beneficiaries


@router.get("/registration/beneficiary/idTypes")
async def id_types(actor: CurrentActor) -> Json:
    return {"types": [{"id": k, "type": label} for k, (_, label) in rules.ID_TYPES.items()]}


@router.get("/registration/beneficiary/genders")
async def genders(actor: CurrentActor) -> Json:
    return {"genders": [{"id": k, "gender": label} for k, (_, label) in rules.GENDERS.items()]}


@router.post("/registration/beneficiary/new")
async def new_beneficiary(body: NewBeneficiary, db: Db, actor: CurrentActor,
                          settings: AppSettings) -> Json:
    person = await citizen.register_beneficiary(
        db, settings, actor=actor, name=body.name, birth_year=rules.birth_year(body.birth_year),
        gender=rules.gender_of(body.gender_id), id_type=rules.id_type_of(body.photo_id_type),
        id_number=body.photo_id_number)
    return {"beneficiary_reference_id": person.reference_id}


@router.post("/registration/beneficiary/delete", status_code=204)
async def delete_beneficiary(body: BeneficiaryRef, db: Db, actor: CurrentActor) -> Response:
    await citizen.delete_beneficiary(db, actor=actor, reference_id=body.beneficiary_reference_id)
    return Response(status_code=204)


@router.get("/appointment/beneficiaries")
async def beneficiaries(db: Db, actor: CurrentActor) -> Json:
    people = await citizen.list_beneficiaries(db, actor)
    account = await db.get(Account, actor.id)
    out = []
    for p in people:
        doses = (await db.execute(select(DoseRecord).where(DoseRecord.beneficiary_id == p.id)
                                  .order_by(DoseRecord.dose_number))).scalars().all()
        dates = {d.dose_number: rules.fmt_date(d.administered_at.astimezone(clock.LOCAL_TZ).date())
                 for d in doses}
        # The primary course's vaccine (its first dose) and whether its schedule is complete.
        vaccine = await db.get(Vaccine, doses[0].vaccine_id) if doses else None
        complete = vaccine is not None and any(d.dose_number >= vaccine.doses for d in doses)
        status = ("Not Vaccinated" if not doses else
                  "Vaccinated" if complete else "Partially Vaccinated")
        appts = (await db.execute(select(Appointment, Booking).join(
            Booking, Booking.id == Appointment.booking_id).where(
            Appointment.beneficiary_id == p.id,
            Appointment.status == AppointmentStatus.BOOKED))).all()
        appointments = []
        for appt, bk in appts:
            vs = await db.get(VaccinationSession, appt.session_id)
            infos = await repository.centres_with_sessions(
                db, day=vs.date if vs else clock.today(), days=1,
                centre_id=vs.centre_id if vs else -1)
            item: Json = {"appointment_id": bk.confirmation_no, "session_id": appt.session_id,
                          "dose": appt.dose_number}
            if infos and vs:
                c = _centre(infos[0], False)
                item.update({k: c[k] for k in ("center_id", "name", "state_name", "district_name",
                                               "block_name", "from", "to")})
                item["date"] = rules.fmt_date(vs.date)
            item["slot"] = await _slot(db, appt)
            appointments.append(item)
        out.append({
            "beneficiary_reference_id": p.reference_id, "name": p.name,
            "birth_year": str(p.birth_year), "gender": rules.gender_label(p.gender),
            "mobile_number": account.mobile[-4:] if account else "",
            "photo_id_type": rules.id_type_label(p.id_type),
            "photo_id_number": mask_id_number(p.id_last4), "comorbidity_ind": "N",
            "vaccination_status": status, "vaccine": vaccine.code if vaccine else "",
            "dose1_date": dates.get(1, ""), "dose2_date": dates.get(2, ""),
            "appointments": appointments})
    return {"beneficiaries": out}


async def _slot(db: Db, appt: Appointment) -> str:
    from teeka.models import SessionSlot

    slot = await db.get(SessionSlot, appt.slot_id)
    return slot.label if slot else ""


# ------------------------------------------------------------------ partner: sessions


@router.get("/appointment/sessions/findByPin")
async def p_find_by_pin(request: Request, actor: CurrentActor, pincode: str | None = None,
                        date: str | None = None, vaccine: str | None = None) -> Response:
    await limiter(request).hit("search", actor.label)
    query = Query.parse(days=1, day=date, pincode=pincode or "", vaccine=vaccine)
    return await _snapshot(request, "findBy", query, _sessions_answer)


@router.get("/appointment/sessions/findByDistrict")
async def p_find_by_district(request: Request, actor: CurrentActor,
                             district_id: str | None = None, date: str | None = None,
                             vaccine: str | None = None) -> Response:
    await limiter(request).hit("search", actor.label)
    query = Query.parse(days=1, day=date, district_id=district_id or "", vaccine=vaccine)
    return await _snapshot(request, "findBy", query, _sessions_answer)


@router.get("/appointment/sessions/calendarByPin")
async def p_calendar_by_pin(request: Request, actor: CurrentActor, pincode: str | None = None,
                            date: str | None = None, vaccine: str | None = None) -> Response:
    await limiter(request).hit("search", actor.label)
    query = Query.parse(days=7, day=date, pincode=pincode or "", vaccine=vaccine)
    return await _snapshot(request, "calendar", query, _calendar_answer)


@router.get("/appointment/sessions/calendarByDistrict")
async def p_calendar_by_district(request: Request, actor: CurrentActor,
                                 district_id: str | None = None, date: str | None = None,
                                 vaccine: str | None = None) -> Response:
    await limiter(request).hit("search", actor.label)
    query = Query.parse(days=7, day=date, district_id=district_id or "", vaccine=vaccine)
    return await _snapshot(request, "calendar", query, _calendar_answer)


# ------------------------------------------------------------------ partner: appointments


async def _booking(db: Db, actor: CurrentActor, appointment_id: str) -> list[Appointment]:
    """The appointments of one national appointment_id (our confirmation number) that the
    actor may touch; NotFound otherwise. A person of the booking deleted since (their
    appointment was cancelled with them) is left out: the others' slip, cancel and reschedule
    go on working (before, the whole confirmation number was 404)."""
    bk = (await db.execute(select(Booking).where(Booking.confirmation_no == appointment_id))
          ).scalar_one_or_none()
    if bk is None:
        raise errors.NotFound()
    appts = (await db.execute(
        select(Appointment).join(Beneficiary, Beneficiary.id == Appointment.beneficiary_id)
        .where(Appointment.booking_id == bk.id, Beneficiary.status == BeneficiaryStatus.ACTIVE)
        .order_by(Appointment.created_at, Appointment.id))).scalars().all()
    if not appts:
        raise errors.NotFound()
    for appt in appts:
        await booking.access_appointment(db, actor, appt.id)
    return list(appts)


@router.post("/appointment/schedule")
async def schedule(request: Request, body: Schedule, db: Db, actor: CurrentActor,
                   idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
                   ) -> Json:
    await limiter(request).hit("booking", actor.label)
    if body.center_id is not None:
        vs = await db.get(VaccinationSession, body.session_id)
        if vs is None or vs.centre_id != body.center_id:
            raise errors.Invalid(detail="session_id is not at center_id")
    passed = await surge_api.gate(request, db, actor, body.session_id,
                                  people=body.beneficiaries, idempotency_key=idempotency_key)
    result = await booking.book_appointment(
        db, actor=actor, session_id=body.session_id, slot=body.slot,
        beneficiary_refs=body.beneficiaries, dose=body.dose,
        idempotency_key=idempotency_key or f"v2-{uuid.uuid4()}", may_take=passed.may_take)
    await surge_api.used(request, db, passed, actor, pools=result.pools or None,
                         appointment_ids=result.appointment_ids,
                         replayed=result.replayed)
    return {"appointment_confirmation_no": result.confirmation_no}


@router.post("/appointment/reschedule", status_code=204)
async def reschedule(request: Request, body: Reschedule, db: Db, actor: CurrentActor
                     ) -> Response:
    live = [a for a in await _booking(db, actor, body.appointment_id)
            if a.status == AppointmentStatus.BOOKED]
    if not live:
        raise errors.NotReschedulable()
    passed = await surge_api.gate(request, db, actor, body.session_id, people=len(live))
    await booking.reschedule_appointments(
        db, actor=actor, appointment_ids=[a.id for a in live], session_id=body.session_id,
        slot=body.slot, may_take=passed.may_take)
    await surge_api.used(request, db, passed, actor, appointment_ids=[a.id for a in live])
    return Response(status_code=204)


@router.post("/appointment/cancel", status_code=204)
async def cancel(body: Cancel, db: Db, actor: CurrentActor) -> Response:
    appts = await _booking(db, actor, body.appointment_id)
    by_ref = {}
    for appt in appts:
        person = await db.get(Beneficiary, appt.beneficiary_id)
        if person is not None:
            by_ref[person.reference_id] = appt
    for ref in dict.fromkeys(body.beneficiariesToCancel):
        if ref not in by_ref:
            raise errors.NotFound()
        await booking.cancel_appointment(db, actor=actor, appointment_id=by_ref[ref].id)
    return Response(status_code=204)


@router.get("/appointment/appointmentslip/download")
async def slip_download(db: Db, actor: CurrentActor, appointment_id: str = "") -> Response:
    appts = await _booking(db, actor, appointment_id)
    items = await slip_items(db, Appointment.id.in_([a.id for a in appts]))
    # a PDF takes tens of milliseconds of CPU: made in a thread, not on the event loop
    body = await anyio.to_thread.run_sync(
        lambda: slip_pdf(confirmation_no=appointment_id, items=items))
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{appointment_id}.pdf"',
                             "Cache-Control": "no-store"})
