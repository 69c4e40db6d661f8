"""The outbox worker: delivers what committed transactions queued, with retries and backoff.

Runs as `teeka worker`, or inside the server process in the embedded default. Several workers
may run at once on PostgreSQL: each claims rows with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from teeka.config import Settings
from teeka.db import session_scope
from teeka.kit import clock
from teeka.kit.phone import mask_mobile
from teeka.models import OutboxMessage, OutboxStatus
from teeka.notification.gateway import GatewayError, SmsGateway, gateway_for

log = structlog.get_logger("teeka.worker")
BATCH = 50


def backoff(settings: Settings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.outbox_backoff_base_seconds * 2 ** (attempts - 1), 3600))


async def deliver_due(maker: async_sessionmaker[AsyncSession], settings: Settings,
                      gateway: SmsGateway | None = None) -> int:
    """Deliver every message that is due, one transaction per message; return how many were
    handled (sent or given another try)."""
    gateway = gateway or gateway_for(settings.sms_gateway)
    handled = 0
    while True:
        async with session_scope(maker) as session:
            now = clock.now()
            msg = (await session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING,
                       OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id).limit(1)
                .with_for_update(skip_locked=True))).scalar_one_or_none()
            if msg is None:
                return handled
            msg.attempts += 1
            try:
                await gateway.send(session, to=msg.recipient, text=msg.body)
            except GatewayError as exc:
                msg.last_error = str(exc)[:300]
                if msg.attempts >= settings.outbox_max_attempts:
                    msg.status = OutboxStatus.FAILED
                    msg.next_attempt_at = now  # when it was given up on (teeka.watch.signals)
                else:
                    msg.next_attempt_at = now + backoff(settings, msg.attempts)
                log.warning("sms.failed", id=msg.id, to=mask_mobile(msg.recipient),
                            attempts=msg.attempts)
            else:
                msg.status = OutboxStatus.SENT
                msg.sent_at = now
                if msg.sensitive:
                    msg.body = "[delivered]"
                log.info("sms.sent", id=msg.id, to=mask_mobile(msg.recipient))
            handled += 1
        if handled >= BATCH:
            return handled


async def page_due(maker: async_sessionmaker[AsyncSession]) -> list[str]:
    """Tell the operators on call about trouble the watch sees (teeka.watch.pager)."""
    from teeka.watch.pager import page_on_call

    async with session_scope(maker) as session:
        return await page_on_call(session)


async def run_forever(maker: async_sessionmaker[AsyncSession], settings: Settings,
                      interval: float = 0.5) -> None:
    from teeka.watch.pager import PAGE_EVERY, PAGE_TIMEOUT_S

    next_page = time.monotonic() + PAGE_EVERY.total_seconds()
    while True:
        try:
            await deliver_due(maker, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the worker alive; the message stays pending
            log.exception("worker.error")
        if time.monotonic() >= next_page:  # apart: a failing delivery does not stop paging
            next_page = time.monotonic() + PAGE_EVERY.total_seconds()
            try:
                async with asyncio.timeout(PAGE_TIMEOUT_S):  # not wait_for (teeka.watch.beat)
                    await page_due(maker)
            except asyncio.CancelledError:
                raise
            except Exception:  # a timeout too: the next look is in a minute
                log.exception("pager.error")
        await asyncio.sleep(interval)
