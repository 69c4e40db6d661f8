"""The `teeka` command: serve, worker, db upgrade, demo, user create, user on-call, user
mobile, sessions import, check.

Each command is a thin adapter over a service; its work runs in one unit of work
(`teeka.db.session_scope`). A domain error is printed as a sentence with exit code 1, never a
traceback. The database comes from TEEKA_DATABASE_URL (teeka.config.Settings).
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import teeka
from teeka import errors
from teeka.auth.actor import Actor
from teeka.config import Settings
from teeka.db import make_engine, make_sessionmaker, session_scope
from teeka.models import Centre, District, StaffUser
from teeka.models.staff import Role

T = TypeVar("T")
Work = Callable[[async_sessionmaker[AsyncSession], Settings], Awaitable[T]]

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Teeka: vaccination registration and appointments.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
user_app = typer.Typer(no_args_is_help=True, help="Staff logins.")
sessions_app = typer.Typer(no_args_is_help=True, help="Vaccination sessions.")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(sessions_app, name="sessions")

GRACEFUL_SHUTDOWN_S = 20  # `teeka serve`: what requests in flight at a SIGTERM may still take
PASSWORD_ENV = "TEEKA_NEW_USER_PASSWORD"  # noqa: S105  (the name of a variable, not a secret)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _fail_domain(exc: errors.DomainError) -> NoReturn:
    from teeka.centre.csv_import import CsvRejected

    if isinstance(exc, CsvRejected):
        for row in exc.report.as_rows(limit=len(exc.report.errors)):
            where = "file" if row["row"] == 0 else f"row {row['row']}"
            for code, detail in zip(row["codes"], row["errors"], strict=True):
                typer.echo(f"{where}: {detail} [{code}]", err=True)
    _fail(exc.text("en"))


def _settings() -> Settings:
    return Settings()


def _where(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _run(work: Work[T]) -> T:
    """Run `work` with a fresh engine; domain and database errors become a message, exit 1."""
    settings = _settings()

    async def main() -> T:
        engine = make_engine(settings)
        try:
            return await work(make_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except errors.DomainError as exc:
        _fail_domain(exc)
    except sa_exc.DBAPIError as exc:
        said = str(exc.orig).strip()
        first = said.splitlines()[0] if said else type(exc.orig).__name__
        _fail(f"database error at {_where(settings)}: {first}. "
              "Is the schema up to date? Run `teeka db upgrade`.")
    except OSError as exc:
        _fail(f"cannot reach the database at {_where(settings)}: {exc}")


# ----------------------------------------------------------------------------- processes

@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
          workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
          limit_concurrency: Annotated[int, typer.Option(
              min=1, help="Open connections per worker before new ones get 503.")] = 2000,
          ) -> None:
    """Serve the web application and the APIs (uvicorn)."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.redis_url:
        # Without Redis each process would keep a waiting room and limits of its own: people
        # admitted by one refused by another (HoldRequired), limits multiplied by the workers.
        typer.echo("teeka: several worker processes share the waiting room and the limits "
                   "through Redis: set TEEKA_REDIS_URL, or serve with --workers 1", err=True)
        raise typer.Exit(2)
    typer.echo(f"teeka: serving http://{host}:{port} with {workers} worker(s), "
               f"database {_where(settings)}", err=True)
    uvicorn.run("teeka.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), proxy_headers=True, server_header=False,
                # Bounded under a flood of slow clients: open connections (beyond, 503 at
                # once), the time to send a request's head and body, the head's size, idle
                # keep-alive (teeka.web.server).
                http="teeka.web.server:GuardedHttpProtocol",
                limit_concurrency=limit_concurrency, timeout_keep_alive=5, backlog=4096,
                # at shutdown, requests still running after this are cancelled (rolled back)
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


@app.command()
def worker() -> None:
    """Deliver the outbox (SMS) until stopped (several may run at once on PostgreSQL)."""
    from teeka import logging_setup
    from teeka.kit.shutdown import exit_after
    from teeka.watch.beat import Beat
    from teeka.worker import run_forever

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:  # bounded in all (teeka.kit.shutdown)
            exit_after()
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
        logging_setup.configure(settings.log_level)
        beat = Beat("worker", runs_worker=True)
        if settings.beat_seconds:
            beat.start(maker, settings.beat_seconds)
        try:
            await run_forever(maker, settings)
        finally:
            await beat.finish()  # says it stopped (teeka.watch.beat)

    try:
        _run(work)
    except (KeyboardInterrupt, asyncio.CancelledError):
        typer.echo("teeka: worker stopped", err=True)


# ----------------------------------------------------------------------------- database

def alembic_ini() -> Path:
    return Path(teeka.__file__).resolve().parents[2] / "alembic.ini"


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head"
               ) -> None:
    """Bring the schema up to date (alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    ini = alembic_ini()
    if not ini.is_file():
        _fail(f"{ini} not found: run `teeka db upgrade` from a source checkout")
    settings = _settings()
    url = settings.database_url
    if url.startswith("sqlite+aiosqlite:///") and not url.endswith(":memory:"):
        Path(url.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(ini))
    cfg.attributes["database_url"] = url
    try:
        command.upgrade(cfg, revision)
    except CommandError as exc:
        _fail(str(exc))
    except sa_exc.DBAPIError as exc:
        _fail(f"database error at {_where(settings)}: {str(exc.orig).strip()}")
    except OSError as exc:
        _fail(f"cannot reach the database at {_where(settings)}: {exc}")
    typer.echo(f"database {_where(settings)} is at revision {revision}")


# ----------------------------------------------------------------------------- data

class Scale(enum.StrEnum):
    SMALL = "small"
    STATE = "state"


@app.command()
def demo(
    scale: Annotated[Scale, typer.Option(case_sensitive=False, help=(
        "small: three districts and staff logins (for `make run`); state: all of "
        "Chhattisgarh, 33 districts and about 2,100 centres with a week of sessions."))
    ] = Scale.SMALL,
    beneficiaries: Annotated[int, typer.Option(min=0, help=(
        "Also make sure this many load-test beneficiaries exist (4 to a mobile)."))] = 0,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the state data set (default: teeka.demo_state.SEED).")] = None,
) -> None:
    """Load demo data (idempotent: run it again on a later day to top up the week)."""
    from teeka.demo import DEMO_PASSWORD, STAFF, load_demo
    from teeka.demo_state import SEED, load_beneficiaries, load_state

    seed = SEED if seed is None else seed
    started = time.perf_counter()
    if scale is Scale.SMALL:
        added = _run(load_demo)
        typer.echo("demo data added: " + ", ".join(f"{n} {what}" for what, n in added.items()))
        typer.echo(f"demo logins (password '{DEMO_PASSWORD}', for demonstration only): "
                   + ", ".join(f"{username} ({role})" for username, _, role, *_ in STAFF))
    else:
        added = _run(lambda maker, settings: load_state(maker, settings, seed=seed))
        typer.echo("state demo data added: "
                   + ", ".join(f"{n} {what}" for what, n in added.items())
                   + f" ({time.perf_counter() - started:.1f} s)")
    if beneficiaries:
        people_started = time.perf_counter()
        people = _run(lambda maker, settings: load_beneficiaries(
            maker, settings, count=beneficiaries, seed=seed))
        typer.echo("load-test people added: "
                   + ", ".join(f"{n} {what}" for what, n in people.items())
                   + f" ({time.perf_counter() - people_started:.1f} s)")
    if scale is Scale.STATE or beneficiaries:
        typer.echo(f"done in {time.perf_counter() - started:.1f} s")


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(case_sensitive=False, help="What the user may do.")],
    district_id: Annotated[int | None, typer.Option(
        help="District (district_admin, helpdesk).")] = None,
    centre_id: Annotated[int | None, typer.Option(help="Centre (vaccinator).")] = None,
    name: Annotated[str | None, typer.Option(help="Full name (default: the username).")] = None,
) -> None:
    """Create a staff login. The password is read from TEEKA_NEW_USER_PASSWORD, or asked for
    twice; it is never a command-line argument (those end up in shell history and `ps`)."""
    from teeka.auth.service import create_staff

    password = os.environ.get(PASSWORD_ENV) or typer.prompt(
        "Password (at least 10 characters)", hide_input=True, confirmation_prompt=True)

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings) -> StaffUser:
        async with session_scope(maker) as db:
            taken = await db.execute(select(StaffUser.id).where(StaffUser.username == username))
            if taken.first() is not None:
                raise errors.Invalid(detail="the username '{username}' is taken", username=username)
            if district_id is not None and await db.get(District, district_id) is None:
                raise errors.Invalid(detail="there is no district {district_id}",
                                     district_id=district_id)
            if centre_id is not None and await db.get(Centre, centre_id) is None:
                raise errors.Invalid(detail="there is no centre {centre_id}", centre_id=centre_id)
            return await create_staff(db, username=username, password=password,
                                      name=name or username, role=role,
                                      district_id=district_id, centre_id=centre_id, actor="cli")

    staff = _run(work)
    typer.echo(f"created {staff.role} '{staff.username}' (id {staff.id})")


def _sms_contact(mobile: str | None, language: str | None) -> str | None:
    """A staff user's mobile number for SMS as given (None: not given), after checking it and
    the language; a wrong one ends the command with a sentence."""
    from teeka.kit.phone import normalise_mobile

    number = normalise_mobile(mobile) if mobile is not None else None
    if mobile is not None and number is None:
        _fail("the mobile number must have 10 digits and start with 6, 7, 8 or 9")
    if language not in (None, "hi", "en"):
        _fail("the language must be hi or en")
    return number


async def _staff_named(db: AsyncSession, username: str) -> StaffUser | None:
    return (await db.execute(select(StaffUser).where(StaffUser.username == username))
            ).scalar_one_or_none()


@user_app.command("on-call")
def user_on_call(
    username: Annotated[str, typer.Argument(help="A state administrator's login name.")],
    mobile: Annotated[str | None, typer.Option(
        help="Their mobile number (10 digits); kept from before when not given.")] = None,
    language: Annotated[str | None, typer.Option(help="Language of the SMS: hi or en.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Off call: no more SMS.")] = False,
    forget: Annotated[bool, typer.Option(
        "--forget", help="Off call, and their mobile number erased.")] = False,
) -> None:
    """Put a state operator on call (or off, with --off): while on call, trouble the watch sees
    reaches them by SMS (docs/watch.md)."""
    from teeka.audit.service import log_action
    from teeka.kit.phone import mask_mobile

    number = _sms_contact(mobile, language)

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings) -> StaffUser:
        async with session_scope(maker) as db:
            staff = await _staff_named(db, username)
            if staff is None or staff.role != Role.STATE_ADMIN:
                raise errors.Invalid(detail="'{username}' is not a state administrator",
                                     username=username)
            off_call = off or forget
            staff.mobile = None if forget else (number or staff.mobile)
            staff.language = language or staff.language
            if not off_call and staff.mobile is None:
                raise errors.Invalid(detail="give their mobile number (--mobile)")
            staff.on_call = not off_call
            await log_action(db, actor="cli", action="auth.staff.on_call",
                             object_type="staff_user", object_id=staff.id, on_call=not off_call,
                             number_erased=forget)
            return staff

    staff = _run(work)
    state = "on call" if staff.on_call else "off call"
    typer.echo(f"'{staff.username}' is {state}"
               + (f" at {mask_mobile(staff.mobile)}" if staff.mobile else ""))


@user_app.command("mobile")
def user_mobile(
    username: Annotated[str, typer.Argument(help="A staff user's login name.")],
    mobile: Annotated[str | None, typer.Option(
        help="Their mobile number (10 digits).")] = None,
    language: Annotated[str | None, typer.Option(help="Language of the SMS: hi or en.")] = None,
    forget: Annotated[bool, typer.Option(
        "--forget", help="Erase their mobile number (and take them off call).")] = False,
) -> None:
    """Keep a staff user's mobile number, so that they are told by SMS when an operator takes or
    resolves a problem they raised (docs/watch.md); --forget erases it."""
    from teeka.audit.service import log_action
    from teeka.kit.phone import mask_mobile

    number = _sms_contact(mobile, language)
    if number is None and not forget and language is None:
        _fail("give --mobile, --language or --forget")

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings) -> StaffUser:
        async with session_scope(maker) as db:
            staff = await _staff_named(db, username)
            if staff is None:
                raise errors.Invalid(detail="there is no staff user '{username}'",
                                     username=username)
            if forget:
                staff.mobile, staff.on_call = None, False
            else:
                staff.mobile = number or staff.mobile
            staff.language = language or staff.language
            await log_action(db, actor="cli", action="auth.staff.mobile",
                             object_type="staff_user", object_id=staff.id,
                             number_erased=forget, number_set=number is not None)
            return staff

    staff = _run(work)
    typer.echo(f"'{staff.username}': " + (f"SMS to {mask_mobile(staff.mobile)} in "
                                          f"{staff.language}" if staff.mobile
                                          else "no mobile number"))


@sessions_app.command("import")
def sessions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="CSV file (UTF-8, at most 1 MB, 5000 rows).")],
    as_user: Annotated[str, typer.Option("--as", help="Publish as this staff user.")],
) -> None:
    """Publish sessions from a CSV file as a staff user: all rows, or none."""
    from teeka.centre.csv_import import (
        MAX_BYTES,
        ImportReport,
        decode_upload,
        import_sessions_csv,
    )

    try:
        with file.open("rb") as f:
            text = decode_upload(f.read(MAX_BYTES + 1))  # refuses more than MAX_BYTES
    except errors.DomainError as exc:
        _fail_domain(exc)

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings) -> ImportReport:
        async with session_scope(maker) as db:
            staff = (await db.execute(select(StaffUser).where(StaffUser.username == as_user))
                     ).scalar_one_or_none()
            if staff is None or not staff.active:
                raise errors.Invalid(detail="no active staff user '{user}'", user=as_user)
            actor = Actor.for_staff(staff)
            return await import_sessions_csv(db, actor=actor, text=text)

    report = _run(work)
    typer.echo(f"{report.sessions_created} session(s) published from {report.rows} row(s) "
               f"of {file.name}")


@app.command()
def check() -> None:
    """Check every capacity counter against the appointments; exit 1 if any differs."""
    from teeka.booking.repository import recount_mismatches

    async def work(maker: async_sessionmaker[AsyncSession], settings: Settings
                   ) -> Sequence[tuple[int, int, int]]:
        async with session_scope(maker) as db:
            return await recount_mismatches(db)

    mismatches = _run(work)
    for bucket_id, counter, recount in mismatches:
        typer.echo(f"capacity bucket {bucket_id}: counter says {counter} booked, "
                   f"appointments say {recount}")
    if mismatches:
        _fail(f"{len(mismatches)} capacity counter(s) disagree with the appointments")
    typer.echo("capacity counters agree with the appointments")
