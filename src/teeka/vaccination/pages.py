"""Vaccinator pages (the day's list, find, secret code, record dose, walk-ins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
