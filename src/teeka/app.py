"""The ASGI application: routers, error handlers, the database and (embedded) the worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from teeka import logging_setup
from teeka.auth import api as auth_api
from teeka.auth import pages as auth_pages
from teeka.booking import api as booking_api
from teeka.booking import pages as booking_pages
from teeka.centre import api as centre_api
from teeka.centre import pages as centre_pages
from teeka.certificate import api as certificate_api
from teeka.certificate import pages as certificate_pages
from teeka.citizen import api as citizen_api
from teeka.citizen import helpdesk_pages
from teeka.citizen import pages as citizen_pages
from teeka.config import Settings, get_settings
from teeka.db import Door, hooks_finished, make_engine, make_sessionmaker
from teeka.kit.shutdown import exit_after
from teeka.national import api as national_api
from teeka.notification import pages as notification_pages
from teeka.surge import api as surge_api
from teeka.surge import pages as surge_pages
from teeka.surge.fastpath import QueueStatusFastPath
from teeka.surge.limits import Limiter
from teeka.surge.service import GIVE_BACK_AFTER_S, WaitingRoom
from teeka.surge.shedding import LoadShedder, watch_loop_lag
from teeka.surge.snapshot import SnapshotCache
from teeka.surge.store import MemoryStore, RedisStore
from teeka.vaccination import api as vaccination_api
from teeka.vaccination import pages as vaccination_pages
from teeka.watch import api as watch_api
from teeka.watch import pages as watch_pages
from teeka.watch.beat import Beat
from teeka.web import errors as web_errors
from teeka.web import security


def _announcer(app: FastAPI, settings: Settings) -> Callable[[], None]:
    """After a committed capacity change: mark this process's snapshots stale at once, and
    tell the other processes through Redis when configured."""
    publisher = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        publisher = aioredis.from_url(settings.redis_url)

    def announce() -> None:
        app.state.snapshots.capacity_changed()
        if publisher is not None:
            from teeka.surge.snapshot import CHANNEL

            async def publish() -> None:
                with contextlib.suppress(Exception):  # a lost notice costs at most max_age
                    await publisher.publish(CHANNEL, b"1")

            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(publish())
            _pending.add(task)
            task.add_done_callback(_pending.discard)

    return announce


_pending: set[asyncio.Task[None]] = set()
# Objects allocated (net) before the collector's young pass. Measured on an opening-day run at
# 205 bookings/s (27 Nov, eleventh session, two workers): with CPython's 700 each worker spent
# ~10 s of its run in 3,400 young, 310 middle and 27 full passes (up to 215 ms each, the
# machine being oversubscribed); with 50,000, 0.7 s in 10 young passes and none older.
GC_YOUNG_THRESHOLD = 50_000
BACKGROUND_STOP_S = 5.0  # at shutdown, how long the cancelled background tasks are waited for
_log = structlog.get_logger("teeka.app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging_setup.configure(settings.log_level)
    if not settings.is_development and not settings.certificate_key:
        # Certificates are then signed with a key derived from the secret key: a new secret
        # (or one host with its own var/secret.key) makes every certificate printed before
        # fail to check. docs/certificates.md, "The key".
        structlog.get_logger("teeka.certificate").warning(
            "certificate.key.derived", hint="set TEEKA_CERTIFICATE_KEY and publish its key")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported and built so far lives as long as the process: keep it out of the
        # cyclic collector, whose full passes otherwise stop the event loop for ~50 ms each
        # (measured while snapshots were being rebuilt; docs/surge.md).
        gc.freeze()
        # ... and let the young generation grow to GC_YOUNG_THRESHOLD objects before a pass
        # (CPython's default is 700): most of a request's objects are freed by reference
        # counting before the next pass, instead of being scanned and promoted while in flight.
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        task = None
        listener = None
        lag = asyncio.create_task(watch_loop_lag())
        # This process's report for the operators' view every beat_seconds (teeka.watch.beat)
        beat = Beat("web", runs_worker=settings.embedded_worker)
        if settings.beat_seconds:
            beat.start(app.state.sessionmaker, settings.beat_seconds)
        if settings.redis_url:
            from teeka.surge.snapshot import listen_for_changes

            listener = asyncio.create_task(listen_for_changes(app.state.snapshots,
                                                              settings.redis_url))
        if settings.embedded_worker:
            from teeka.worker import run_forever

            task = asyncio.create_task(run_forever(app.state.sessionmaker, settings))
        yield
        # Bounded in all (teeka.kit.shutdown): cancelled below when nothing is left stuck.
        watchdog = exit_after()
        ended = await beat.finish()  # first: it says this process stops (teeka.watch.beat)
        # What requests left running on their own (hooks after a unit of work, a claim given
        # back a moment after its answer was lost) ends before the connections it needs close.
        await hooks_finished(wait_s=5)
        await app.state.waiting_room.finished(wait_s=GIVE_BACK_AFTER_S + 5)
        gc.set_threshold(*thresholds)
        await app.state.snapshots.close()
        await app.state.limiter.close()
        # Cancelled, and waited for a bounded time: a task that does not end (a cancellation
        # lost in a library) must not keep the process from stopping.
        running = {background for background in (task, listener, lag) if background is not None}
        for background in running:
            background.cancel()
        done, stuck = await asyncio.wait(running, timeout=BACKGROUND_STOP_S) if running \
            else (set(), set())
        for background in done:  # one that had failed is not reported again at exit
            if not background.cancelled():
                background.exception()
        if stuck:
            _log.warning("shutdown.background_stuck", tasks=len(stuck))
        await app.state.engine.dispose()
        if app.state.room_engine is not None:
            await app.state.room_engine.dispose()
        if ended and not stuck:
            watchdog.cancel()

    app = FastAPI(title="Teeka", version="0.1.0", lifespan=lifespan,
                  description="Vaccination registration and appointments (API v1).")
    app.state.settings = settings
    app.state.engine = make_engine(settings)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.db_door = Door(settings.db_pool_size + settings.db_max_waiting)
    app.state.snapshots = SnapshotCache(max_age=settings.snapshot_max_age,
                                        refresh_ahead=settings.snapshot_refresh_ahead)
    app.state.limiter = Limiter(settings)
    # The waiting room's own few reads (an opening, the places at the draw, the people of the
    # accounts being admitted) use their own two connections on PostgreSQL, so that a crowd of
    # bookings holding the pool never stalls the room (SQLite has one connection in all).
    app.state.room_engine = (None if settings.is_sqlite else
                             make_engine(settings.model_copy(update={"db_pool_size": 2})))
    app.state.waiting_room = WaitingRoom(
        RedisStore(settings.redis_url) if settings.redis_url else MemoryStore(),
        settings.resolved_secret(),
        sessionmaker=(app.state.sessionmaker if app.state.room_engine is None
                      else make_sessionmaker(app.state.room_engine)))
    app.state.capacity_changed = _announcer(app, settings)
    web_errors.install(app)
    security.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    # Public availability reads whose snapshot is ready are answered here, before the
    # framework's middleware and routing (national.api.SnapshotReads); the rest goes on.
    app.add_middleware(national_api.SnapshotReads, extra_headers=security.HEADERS)
    # Waiting-room status polls that this process can answer from memory (surge.fastpath).
    app.add_middleware(QueueStatusFastPath, extra_headers=security.HEADERS)
    app.add_middleware(LoadShedder, max_in_flight=settings.max_in_flight,
                       queue_yields_at=settings.queue_yields_at, door=app.state.db_door,
                       extra_headers=security.HEADERS)
    for module in (auth_api, citizen_api, booking_api, centre_api, vaccination_api, national_api,
                   surge_api, watch_api, certificate_api):
        app.include_router(module.router)
    app.include_router(watch_api.watch_router)
    app.include_router(vaccination_api.admin_router)
    for pages in (booking_pages, citizen_pages, auth_pages, helpdesk_pages, centre_pages,
                  vaccination_pages, surge_pages, watch_pages, certificate_pages):
        app.include_router(pages.router)
    if settings.is_development:
        app.include_router(notification_pages.router)
    app.mount("/static", StaticFiles(directory=str(security.STATIC)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
