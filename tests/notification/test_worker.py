"""The outbox worker delivers after commit, retries with backoff, and gives up in the end."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from teeka.db import session_scope
from teeka.kit import clock
from teeka.models import DevSms, OutboxMessage
from teeka.notification.gateway import DevGateway, FailingGateway
from teeka.notification.service import queue_sms
from teeka.worker import deliver_due


async def test_message_written_in_a_rolled_back_transaction_is_never_sent(maker, settings) -> None:
    try:
        async with session_scope(maker) as db:
            await queue_sms(db, to="9000000999", lang="en", template="Hello {name}", name="A")
            raise RuntimeError("the change that caused it failed")
    except RuntimeError:
        pass
    assert await deliver_due(maker, settings, DevGateway()) == 0


async def test_failed_delivery_is_retried_with_backoff_then_marked_failed(maker, settings) -> None:
    async with session_scope(maker) as db:
        await queue_sms(db, to="9000000998", lang="en", template="Hello {name}", name="B")
    assert await deliver_due(maker, settings, FailingGateway()) == 1
    async with session_scope(maker) as db:
        msg = (await db.execute(select(OutboxMessage))).scalar_one()
        assert msg.status == "pending" and msg.attempts == 1 and msg.last_error
        first_wait = msg.next_attempt_at - clock.now()
    assert timedelta(seconds=1) < first_wait <= timedelta(seconds=settings.outbox_backoff_base_seconds)
    # not due yet: nothing happens
    assert await deliver_due(maker, settings, FailingGateway()) == 0
    waits = []
    for _ in range(settings.outbox_max_attempts - 1):
        clock.shift(timedelta(hours=2))
        assert await deliver_due(maker, settings, FailingGateway()) == 1
        async with session_scope(maker) as db:
            msg = (await db.execute(select(OutboxMessage))).scalar_one()
            if msg.status == "pending":
                waits.append(msg.next_attempt_at - clock.now())
    assert msg.status == "failed" and msg.attempts == settings.outbox_max_attempts
    assert waits == sorted(waits) and waits[-1] > waits[0]  # the backoff grows
    clock.shift(timedelta(hours=2))
    assert await deliver_due(maker, settings, DevGateway()) == 0  # failed stays failed


async def test_delivered_message_appears_on_the_dev_outbox_newest_first(client, maker,
                                                                        settings) -> None:
    async with session_scope(maker) as db:
        await queue_sms(db, to="9000000997", lang="en", template="First")
        await queue_sms(db, to="9000000997", lang="hi", template="Second")
    assert await deliver_due(maker, settings) == 2
    r = await client.get("/dev/outbox.json")
    assert [m["text"] for m in r.json()][:2] == ["Second", "First"]
    assert set(r.json()[0]) == {"to", "text", "created_at"}
    page = await client.get("/dev/outbox")
    assert page.status_code == 200 and "9000000997" in page.text
    async with session_scope(maker) as db:
        assert len((await db.execute(select(DevSms))).scalars().all()) == 2


async def test_outbox_page_exists_only_in_development(settings) -> None:
    import httpx

    from teeka.app import create_app

    prod = create_app(settings.model_copy(update={"environment": "production"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=prod),
                                 base_url="http://teeka.test") as c:
        assert (await c.get("/dev/outbox.json")).status_code == 404
        assert (await c.get("/dev/outbox")).status_code == 404
    await prod.state.engine.dispose()
