"""Every state change leaves an audit entry: actor, dotted action code, object."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from teeka.kit import clock
from teeka.models import AuditEntry


async def log_action(session: AsyncSession, *, actor: str, action: str, object_type: str,
                     object_id: str | int, **detail: Any) -> None:
    session.add(AuditEntry(at=clock.now(), actor=actor, action=action, object_type=object_type,
                           object_id=str(object_id), detail=detail))
