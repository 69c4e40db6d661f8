"""JSON API for district administration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from teeka import errors
from teeka.centre import csv_import, rules, service
from teeka.centre.schemas import (
    CapacityChange,
    CapacityChanged,
    CentreCreate,
    CentreRead,
    SessionCreate,
    SessionRead,
)
from teeka.surge import api as surge_api
from teeka.web.deps import CurrentActor, Db, Lang

router = APIRouter(prefix="/api/v1/admin", tags=["district administration"])

# A multipart upload carries the file and a little framing around it.
MULTIPART_SLACK = 64 * 1024
_CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel",
              "application/octet-stream"}


class SessionUploadRead(BaseModel):
    sessions_created: int
    rows: int


@router.post("/centres", response_model=CentreRead, status_code=201)
async def create_centre(body: CentreCreate, db: Db, actor: CurrentActor) -> CentreRead:
    centre = await service.create_centre(db, actor=actor, data=body)
    return CentreRead.model_validate(centre, from_attributes=True)


@router.post("/sessions", response_model=SessionRead, status_code=201)
async def publish_session(body: SessionCreate, db: Db, actor: CurrentActor) -> SessionRead:
    vs = await service.publish_session(db, actor=actor, data=body)
    return SessionRead(id=vs.id, centre_id=vs.centre_id, date=vs.date, vaccine=body.vaccine.upper(),
                       min_age=vs.min_age, max_age=vs.max_age,
                       slots=[rules.slot_label(*rules.parse_slot(s.label)) for s in body.slots])


async def read_limited_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise csv_import.too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise csv_import.too_large()
    return bytes(body)


async def _multipart_file(request: Request, body: bytes) -> bytes:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(max_files=1, max_fields=4) as form:
            part = form.get("file")
            if isinstance(part, UploadFile):
                return await part.read(csv_import.MAX_BYTES + 1)
            if isinstance(part, str):
                return part.encode("utf-8")
    except HTTPException as exc:  # malformed multipart body
        raise csv_import.CsvRejected.single(
            csv_import.FILE, "BadUpload", f"the upload could not be read: {exc.detail}") from None
    raise csv_import.CsvRejected.single(csv_import.FILE, "NoFile",
                                        "send the CSV file in the form field 'file'")


async def _upload_text(request: Request) -> str | csv_import.CsvRejected:
    """The uploaded CSV as text, read before the unit of work begins (a slow upload over a
    mobile connection must not hold a database connection). A refusal is returned, not raised,
    so that the endpoint answers it with the per-row form after authentication."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "multipart/form-data":
            raw = await _multipart_file(request,
                                        await read_limited_body(request, csv_import.MAX_BYTES
                                                         + MULTIPART_SLACK))
        elif kind in _CSV_TYPES or not kind:
            raw = await read_limited_body(request, csv_import.MAX_BYTES)
        else:
            raise csv_import.CsvRejected.single(
                csv_import.FILE, "NotCsv",
                "send the file as text/csv, or as multipart/form-data in the field 'file'")
        return csv_import.decode_upload(raw)
    except csv_import.CsvRejected as exc:
        return exc


def _rejected(exc: csv_import.CsvRejected, lang: str) -> JSONResponse:
    return JSONResponse({"code": exc.code, "message": exc.text(lang),
                         "rows": exc.report.as_rows(),
                         "rows_with_errors": len(exc.report.errors)},
                        status_code=exc.status)


@router.post(
    "/sessions/upload", response_model=SessionUploadRead, status_code=201,
    responses={422: {"description": "CsvRejected: nothing was imported; `rows` lists "
                                    "[{row, errors, codes}] (row 1 is the header, row 0 the "
                                    "file as a whole)"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}})
async def upload_sessions(upload: Annotated[str | csv_import.CsvRejected, Depends(_upload_text)],
                          db: Db, actor: CurrentActor, lang: Lang) -> Response | SessionUploadRead:
    """Publish sessions from a CSV file (UTF-8, at most 1 MB and 5000 rows), all or nothing.

    Send the file either as the request body with `Content-Type: text/csv`
    (`curl --data-binary @week.csv -H 'Content-Type: text/csv' ...`) or as
    `multipart/form-data` in the field `file` (`curl -F file=@week.csv ...`).

    Columns (header row required, any order): centre_id, date (DD-MM-YYYY or YYYY-MM-DD),
    vaccine, min_age, max_age (empty: no upper limit), slot (09:00AM-11:00AM), dose1, dose2,
    precaution, walkin_allowance, shares (frontline:20;aay:12;bpl:52;apl:16 or empty),
    share_release_time (HH:MM, IST, or empty). One row is one slot; rows with the same
    centre_id, date, vaccine and min_age are one session and must agree on the rest.

    201 `{"sessions_created": N, "rows": M}`; 422 `{"code": "CsvRejected", "message", "rows":
    [{"row": 3, "errors": ["..."], "codes": ["..."]}]}` with nothing changed. A district
    administrator may name only centres of their own district.
    """
    if isinstance(upload, csv_import.CsvRejected):
        csv_import.may_import(actor)
        return _rejected(upload, lang)
    try:
        report = await csv_import.import_sessions_csv(db, actor=actor, text=upload)
    except csv_import.CsvRejected as exc:
        # Answered here (the shared handler knows no per-row errors), so undo by hand what
        # was flushed: the unit of work then commits nothing.
        await db.rollback()
        return _rejected(exc, lang)
    return SessionUploadRead(sessions_created=report.sessions_created, rows=report.rows)


@router.put("/slots/{slot_id}/capacity", response_model=CapacityChanged)
async def change_capacity(slot_id: int, body: CapacityChange, request: Request, db: Db,
                          actor: CurrentActor) -> CapacityChanged:
    """Set a slot's capacity for one dose kind. Below what is booked it is refused
    (CapacityBelowBooked, 409) unless `move_affected`: then the people booked last are moved
    to other places nearby and told, or cancelled and told (`moved`, `cancelled`)."""
    done = await service.change_slot_capacity(db, actor=actor, slot_id=slot_id, change=body,
                                              gate=surge_api.move_gate(request, db, actor))
    return CapacityChanged(**body.model_dump(), moved=done.moved, cancelled=done.cancelled,
                           not_told=done.not_told)


class SessionClosed(BaseModel):
    session_id: str
    moved: int
    cancelled: int
    # reference ids of those with no mobile number (registered at a help desk): tell them
    not_told: list[str]


@router.post("/sessions/{session_id}/close", response_model=SessionClosed)
async def close_session(session_id: str, request: Request, db: Db,
                        actor: CurrentActor) -> SessionClosed:
    """Close a session that cannot go ahead: every place to what is used, the people booked
    moved to places nearby and told (`moved`), or cancelled and told (`cancelled`)."""
    if len(session_id) > 36:  # no session has such an id
        raise errors.NotFound()
    done = await service.close_session(db, actor=actor, session_id=session_id,
                                       gate=surge_api.move_gate(request, db, actor))
    return SessionClosed(session_id=session_id, moved=done.moved, cancelled=done.cancelled,
                         not_told=done.not_told)
