"""The ASGI application: routers, error handlers, the database and (embedded) the worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from teeka import logging_setup
from teeka.auth import api as auth_api
from teeka.auth import pages as auth_pages
from teeka.booking import api as booking_api
from teeka.booking import pages as booking_pages
from teeka.centre import api as centre_api
from teeka.centre import pages as centre_pages
from teeka.citizen import api as citizen_api
from teeka.citizen import helpdesk_pages
from teeka.citizen import pages as citizen_pages
from teeka.config import Settings, get_settings
from teeka.db import make_engine, make_sessionmaker
from teeka.national import api as national_api
from teeka.notification import pages as notification_pages
from teeka.vaccination import api as vaccination_api
from teeka.vaccination import pages as vaccination_pages
from teeka.web import errors as web_errors
from teeka.web import security


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging_setup.configure(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.embedded_worker:
            from teeka.worker import run_forever

            task = asyncio.create_task(run_forever(app.state.sessionmaker, settings))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await app.state.engine.dispose()

    app = FastAPI(title="Teeka", version="0.1.0", lifespan=lifespan,
                  description="Vaccination registration and appointments (API v1).")
    app.state.settings = settings
    app.state.engine = make_engine(settings)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    web_errors.install(app)
    security.install(app)
    app.add_middleware(GZipMiddleware, minimum_size=500)
    for module in (auth_api, citizen_api, booking_api, centre_api, vaccination_api, national_api):
        app.include_router(module.router)
    for pages in (booking_pages, citizen_pages, auth_pages, helpdesk_pages, centre_pages,
                  vaccination_pages):
        app.include_router(pages.router)
    if settings.is_development:
        app.include_router(notification_pages.router)
    app.mount("/static", StaticFiles(directory=str(security.STATIC)), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
