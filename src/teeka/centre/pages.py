"""District console pages (centres, sessions, CSV upload, today per centre)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
