"""The local SMS outbox (development mode only: the router is not mounted otherwise)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from teeka.kit.clock import LOCAL_TZ
from teeka.models import DevSms
from teeka.web.deps import Db, Lang
from teeka.web.templating import render

router = APIRouter(include_in_schema=False)


async def _messages(db: Db) -> list[dict[str, Any]]:
    rows = (await db.execute(select(DevSms).order_by(DevSms.id.desc()).limit(200))).scalars()
    return [{"to": m.recipient, "text": m.body, "created_at": m.created_at.isoformat()}
            for m in rows]


@router.get("/dev/outbox.json")
async def outbox_json(db: Db) -> list[dict[str, Any]]:
    return await _messages(db)


@router.get("/dev/outbox", response_class=HTMLResponse)
async def outbox_page(request: Request, db: Db, lang: Lang) -> HTMLResponse:
    messages = await _messages(db)
    for m in messages:
        from datetime import datetime

        m["created_at"] = datetime.fromisoformat(m["created_at"]).astimezone(LOCAL_TZ).strftime(
            "%d-%m-%Y %H:%M:%S")
    return render(request, "outbox.html", lang, messages=messages)
