"""JSON API for vaccinators at the centre."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/centre", tags=["vaccination"])
