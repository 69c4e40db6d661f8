"""Help-desk pages: assisted registration without a mobile phone, booking, slip."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
