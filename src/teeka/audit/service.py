"""Every state change leaves an audit entry: actor, dotted action code, object."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from teeka.kit import clock
from teeka.models import AuditEntry

# The table, for writers that insert rows with Core statements (`entry` makes a row).
AUDIT_TABLE = cast(Table, AuditEntry.__table__)


async def log_action(session: AsyncSession, *, actor: str, action: str, object_type: str,
                     object_id: str | int, **detail: Any) -> None:
    session.add(AuditEntry(at=clock.now(), actor=actor, action=action, object_type=object_type,
                           object_id=str(object_id), detail=detail))


def entry(*, actor: str, action: str, object_type: str, object_id: str | int,
          at: datetime | None = None, **detail: Any) -> dict[str, Any]:
    """One audit entry as the values of an AUDIT_TABLE row, for a Core INSERT (the booking
    path writes its rows that way)."""
    return {"at": at or clock.now(), "actor": actor, "action": action,
            "object_type": object_type, "object_id": str(object_id), "detail": detail}
