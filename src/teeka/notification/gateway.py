"""SMS gateways. The development gateway 'delivers' into the dev_sms table, which the local
outbox page shows; a production gateway (the state's SMS provider) implements the same
protocol."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from teeka.kit import clock
from teeka.models import DevSms


class GatewayError(Exception):
    """A delivery failed and may be retried."""


class SmsGateway(Protocol):
    async def send(self, session: AsyncSession, *, to: str, text: str) -> None: ...


class DevGateway:
    async def send(self, session: AsyncSession, *, to: str, text: str) -> None:
        session.add(DevSms(recipient=to, body=text, created_at=clock.now()))


class FailingGateway:
    """Refuses every message (drills and tests of the retry path)."""

    async def send(self, session: AsyncSession, *, to: str, text: str) -> None:
        raise GatewayError("gateway refused the message")


def gateway_for(name: str) -> SmsGateway:
    gateways: dict[str, SmsGateway] = {"dev": DevGateway(), "failing": FailingGateway()}
    if name not in gateways:
        raise ValueError(f"unknown SMS gateway {name!r}")
    return gateways[name]
