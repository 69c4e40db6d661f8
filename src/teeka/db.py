"""Engine, sessions and the column types shared by every table.

The request owns the transaction: `session_scope()` commits once at the end or rolls back.
Services only flush.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from teeka.config import Settings
from teeka.errors import Busy, DomainError, Invalid

# Named constraints so that Alembic migrations run the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every engine; always read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if settings.is_sqlite:
        if url.startswith("sqlite+aiosqlite:///") and not url.endswith(":memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer anyway, and a single connection cannot meet
        # "database is locked" between our own requests. Savepoints need the pysqlite recipe below.
        if url.endswith(":memory:"):  # one shared in-memory database (throwaway use only)
            from sqlalchemy.pool import StaticPool

            engine = create_async_engine(url, poolclass=StaticPool,
                                         connect_args={"timeout": 30})
        else:
            engine = create_async_engine(url, pool_size=1, max_overflow=0,
                                         pool_timeout=settings.db_pool_timeout,
                                         connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Several hosts (`?host=a:5432&host=b:5432&target_session_attrs=read-write`, a Patroni
    # cluster with synchronous replication): asyncpg tries them in turn within one connect
    # timeout, so keep it short; and bound every command, COMMIT included — a commit waiting
    # for a synchronous standby that is gone would otherwise wait for ever (statement_timeout
    # does not cover that wait). See docs/operations.md.
    hosts = make_url(url).query.get("host")
    replicated = isinstance(hosts, tuple) and len(hosts) > 1
    connect_args = {"timeout": 5, "command_timeout": COMMAND_TIMEOUT} if replicated else {}
    engine = create_async_engine(url, pool_size=settings.db_pool_size, max_overflow=0,
                                 pool_timeout=settings.db_pool_timeout,
                                 connect_args=connect_args)
    _ping_when_idle(engine)
    if engine.dialect.driver == "asyncpg":
        _watch_failover(engine)
    return engine


# A connection back from the pool after this long unused is pinged first (a node restarted or
# failed over meanwhile: the pool swaps in a new connection and the request never sees it). A
# connection in steady use is not: a ping per request was one round trip in ten of a booking
# (~10 % of its CPU, server and database, measured with bench/cpu.py). A connection that died
# while in steady use fails its request with a retryable 503, and the failover handling below
# then renews the whole pool.
IDLE_PING_S = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["teeka_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("teeka_idle_since")
        if since is not None and time.monotonic() - since < IDLE_PING_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:  # the pool drops it and connects again (up to three times)
            raise DisconnectionError() from exc


# A node that is shutting down, cannot take connections yet, or was demoted to a read-only
# standby: treat the connection as dead so the pool drops it (and every older one) and the next
# checkout finds the new primary.
_FAILOVER_STATES = {"25006", "57P01", "57P02", "57P03"}
UNREPLICATED = "teeka_commit_unreplicated"
COMMAND_TIMEOUT = 8.0  # seconds; asyncpg cancels the command (and a commit's standby wait)


def _watch_failover(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(ctx: Any) -> None:
        state = str(getattr(ctx.original_exception, "sqlstate", None) or "")
        if state in _FAILOVER_STATES or state.startswith("08"):
            ctx.is_disconnect = True

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        info = record.info

        def on_message(_conn: Any, message: Any) -> None:
            # PostgreSQL's warning when a commit's wait for a synchronous standby is cancelled
            # (statement_timeout, a cancel request): "canceling wait for synchronous
            # replication ...", detail "The transaction has already committed locally, but
            # might not have been replicated to the standby." (English server messages.)
            said = f"{getattr(message, 'message', '')} {getattr(message, 'detail', '')}"
            if "synchronous replication" in said or "committed locally" in said:
                info[UNREPLICATED] = True

        dbapi_conn.driver_connection.add_log_listener(on_message)


async def _commit(session: AsyncSession) -> None:
    """Commit; on PostgreSQL with synchronous replication, refuse (Busy) a commit whose wait for
    the standby was cancelled: it is committed on this node only, so it must not be
    acknowledged. The retry with the same idempotency key answers once a standby has it."""
    info = conn = None
    if session.in_transaction() and session.get_bind().dialect.driver == "asyncpg":
        conn = await session.connection()
        info = conn.info
        info.pop(UNREPLICATED, None)
    if session.new or session.dirty or session.deleted:
        await session.flush()  # what fails here was never committed
    session.info[OUTCOME_UNKNOWN] = True  # until the commit is known to have gone one way
    try:
        await session.commit()
    except sa_exc.DBAPIError as exc:
        if (_sqlstate(exc) or "")[:2] in ("23", "40"):  # refused: certainly rolled back
            del session.info[OUTCOME_UNKNOWN]
        raise
    except TimeoutError:
        # asyncpg's command_timeout cancelled the commit: committed locally or not, it is not
        # known to be on a standby. Drop the connection; the client gets 503 and retries.
        if conn is not None:
            await conn.invalidate()
        raise Busy() from None
    # asyncpg hands a notice to its listeners (call_soon) as it reads it, before the COMMIT's
    # own answer wakes this task: the warning, if any, has been heard by now (tested:
    # tests/booking/test_acknowledgement.py). No extra turn of the event loop to wait for it.
    if info is not None and info.pop(UNREPLICATED, False):
        raise Busy()
    del session.info[OUTCOME_UNKNOWN]


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# session.info key a service sets once its transaction has certainly written a row (a booking
# inserted): its commit then waits for a synchronous standby anyway, and the unit of work needs
# no WAL mark for it (web.deps.db).
WROTE = "teeka.wrote"
# session.info key: callables (async, taking nothing, never raising) the unit of work awaits once
# its transaction has committed, before the answer is sent (web.deps.db): what must follow a
# committed change and never a rolled-back one (the waiting room's hold used by a booking).
AFTER_COMMIT = "teeka.after_commit"
# session.info key: callables (async, taking nothing, never raising) the unit of work awaits once
# its transaction has ended, committed or not, after the AFTER_COMMIT ones: what a request took
# for the length of its work and gives back either way (a booking's claim on its hold).
AFTER_END = "teeka.after_end"
# session.info key, set while a commit is under way and left set when it failed: it may have
# committed (a commit refused for want of a standby, cut off by a timeout, a lost connection),
# so what a request took for its work is not given back as if it had not (web.deps.db).
OUTCOME_UNKNOWN = "teeka.outcome_unknown"


_log = structlog.get_logger()
_RUNNING: set[asyncio.Task[None]] = set()  # hooks whose caller was cancelled, still running


async def _one_after_another(hooks: list[Callable[[], Awaitable[None]]]) -> None:
    for hook in hooks:
        await hook()


async def run_hooks(*lists: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Await the hooks (AFTER_COMMIT, AFTER_END), list after list, one after the other, to the
    end even when the caller is cancelled meanwhile (a client gone, a shutdown): they record
    what a committed transaction did (a hold used) or give back what a unit of work took (a
    booking's claim), and one skipped would leave a used hold live or an account refused for
    the claim's 30 s. So they run in a task of their own, which a cancellation of the caller
    does not reach; the caller still waits for them, so the answer follows them."""
    hooks = [hook for found in lists for hook in found]
    if not hooks:
        return
    task = asyncio.get_running_loop().create_task(_one_after_another(hooks))
    _RUNNING.add(task)
    task.add_done_callback(_hooks_done)
    await asyncio.shield(task)


async def hooks_finished(wait_s: float) -> None:
    """At shutdown: wait (at most `wait_s` seconds) for hooks still running on their own."""
    if _RUNNING:
        await asyncio.wait(list(_RUNNING), timeout=wait_s)


def _hooks_done(task: asyncio.Task[None]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        # hooks never raise; one that did is logged here too, since a caller cancelled
        # meanwhile is no longer there to see it
        _log.error("hook_failed", error=type(exc).__name__)


class Door:
    """The units of work one worker process lets in at once: the pool's connections plus a few
    waiting for one. Beyond that a request is refused at once (503 + Retry-After) instead of
    waiting for a connection until the pool's timeout refuses it seconds later — a refusal
    late enough to be no answer, which made the refusals' p99 3.3 s when a thousand phones
    booked at once in the benchmark. The pool's timeout stays as the backstop for what does
    not come through here (the waiting room's reads, the outbox)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0

    @property
    def full(self) -> bool:
        return self.inside >= self.limit

    def enter(self) -> bool:
        if self.full:
            count_busy("db_door")
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1


# Why requests were answered Busy (503 + Retry-After) inside the application: db_door (the
# pool and its waiting places full), db_pool (no connection within the pool's timeout),
# db_retry (a deadlock, serialization failure or failover the database reported), db_host (the
# database's host refused or timed out), redis (the shared fast state unreachable or out of
# connections). The load shedder's refusals are teeka_requests_shed_total.
BUSY = Counter("teeka_busy_total", "Requests answered Busy (503) in the application, by cause",
               ["cause"])
# Of those, the crowd's (queue polls and joins, public availability: the load shedder marks
# each request, CROWD_REQUEST): the operators' view tells people refused apart from the crowd
# (teeka.watch.beat).
BUSY_CROWD = Counter("teeka_busy_crowd_total",
                     "Of the requests answered Busy in the application, the crowd's")
CROWD_REQUEST: ContextVar[bool] = ContextVar("teeka_crowd_request", default=False)


def count_busy(cause: str) -> None:
    """Count a request answered Busy (503) inside the application, and why."""
    BUSY.labels(cause).inc()
    if CROWD_REQUEST.get():
        BUSY_CROWD.inc()
for _cause in ("db_door", "db_pool", "db_retry", "db_host", "redis"):
    BUSY.labels(_cause)  # every cause shown from the start, at 0


# PostgreSQL: deadlock detected, serialization failure, lock not available, too many clients;
# and a failover in progress: admin/crash shutdown, cannot connect now, read-only transaction (a
# demoted node), query canceled (statement_timeout, e.g. a commit blocked with no synchronous
# standby). Class 08 (connection exceptions) too; see docs/operations.md.
_RETRYABLE = {"40P01", "40001", "55P03", "53300", "57P01", "57P02", "57P03", "25006", "57014"}


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _retryable(exc: sa_exc.DBAPIError) -> bool:
    state = _sqlstate(exc) or ""
    return (state in _RETRYABLE or state.startswith("08") or exc.connection_invalidated
            or "database is locked" in str(exc)
            or "None of the hosts match the target attribute" in str(exc))  # no primary yet


def _out_of_range() -> DomainError:
    return Invalid(detail="a value given is out of range or not allowed")


@asynccontextmanager
async def busy_on_database_trouble() -> AsyncIterator[None]:
    """Database trouble that asking again can cure — no connection within the pool timeout, a
    lost race the database resolved, a failover in progress, a host that refused or timed out —
    becomes Busy (503 + Retry-After), never a 500."""
    try:
        yield
    except sa_exc.TimeoutError as exc:
        count_busy("db_pool")
        raise Busy() from exc
    except sa_exc.DBAPIError as exc:
        if _retryable(exc):
            count_busy("db_retry")
            raise Busy() from exc
        if isinstance(exc, sa_exc.DataError) or (_sqlstate(exc) or "").startswith("22"):
            # A value the database cannot take (a NUL in a text, a number beyond its column):
            # the request's fault, told as such, not a 500.
            raise _out_of_range() from exc
        raise
    except OverflowError as exc:  # a number or a date beyond what SQLite or the calendar holds
        raise _out_of_range() from exc
    except (ConnectionError, TimeoutError) as exc:  # the database's host refused or timed out
        count_busy("db_host")
        raise Busy() from exc


@asynccontextmanager
async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception.

    Once the commit or rollback has returned, the session holds no connection and closing it
    awaits nothing, so it is closed in place. SQLAlchemy's own `async with` closes in a task of
    its own behind a shield (a close that does I/O must not be cut short by a cancellation):
    three more turns of the event loop for every unit of work, which under load are tens of
    milliseconds each (docs/BENCHMARKS.md, twelfth session). A session still in a transaction
    (its rollback failed or was cancelled) is closed that careful way."""
    session = maker()
    try:
        yield session
        await _commit(session)
    except DomainError as exc:
        if exc.keeps_changes:
            await session.commit()
        else:
            await session.rollback()
        raise
    except BaseException:
        await session.rollback()
        raise
    finally:
        if session.in_transaction():
            await session.__aexit__(None, None, None)  # I/O to do: in its own, shielded task
        else:
            await session.close()
