"""Database setup shared by all services: engines for SQLite (embedded default) and PostgreSQL
(schema per service), money columns in integer cents, the machinery tables, the unit of work,
and Alembic migrations applied before a service takes traffic."""

import asyncio
import collections
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import aiosqlite
import pydantic_core
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String, TypeDecorator, event, insert, text
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor, AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.util import await_

from contracts.envelope import Envelope, to_headers, to_value, wrap
from contracts.events import Event

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact Decimal with at most SCALE places, stored as an integer: exact on SQLite and PostgreSQL alike."""

    impl = BigInteger
    cache_ok = True
    SCALE = 2

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> int | None:
        if value is None:
            return None
        scaled = value.scaleb(self.SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.SCALE} decimal places; round it first (contracts.money.to_cents)")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value).scaleb(-self.SCALE)


class Cents(ScaledDecimal):
    """A euro amount stored as integer cents."""

    cache_ok = True  # SQLAlchemy asks each subclass itself


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps always come back timezone-aware in UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MachineryBase(DeclarativeBase):
    pass


class OutboxMessage(MachineryBase):
    """A Kafka record waiting to be published, written in the transaction of the change that caused it."""

    __tablename__ = "outbox"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[list[str]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)



class ProcessedEvent(MachineryBase):
    """One row per event a consumer has applied, committed with the effect: the dedupe key."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// and postgresql:// forms and use the async driver."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


# --- SQLite, the embedded default ------------------------------------------------------------

SQLITE_BUSY_SECONDS = 30  # how long a transaction waits for another process's writer


def _run_statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else ()
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _begin_waiting(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    try:
        connection.execute("BEGIN IMMEDIATE").close()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


async def _nothing() -> None:
    pass


class _InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """Runs each statement right here, on the event loop's thread.

    SQLAlchemy's aiosqlite adapter sends every cursor operation to the connection's own thread:
    four hand-offs per statement (open, execute, fetch, close), each a queue, a thread wake-up, the
    GIL and a loop wake-up, and each costs far more than the statement (0.2-1 ms against ~5 us on
    a busy 2-core machine). SQLite has one writer at a time and a transaction holds the write lock
    through all its hand-offs, so they, not the work, set how many writes per second a service
    takes. Nothing here waits: a transaction begins by taking the write lock (BEGIN IMMEDIATE,
    see _InlineConnection), after which SQLite in WAL mode never makes it wait."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: nothing to open
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = {}
        self._description, self._rowcount, self._lastrowid = None, -1, None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(operation, seq_of_parameters, True)

    def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        try:
            self._description, self._rowcount, self._lastrowid, rows = _run_statement(
                self._connection._conn, operation, parameters, many
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._rows = collections.deque(rows)
        await_(_nothing())  # AsyncConnection.execute insists that a statement awaited something

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        pass


class _InlineConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _InlineCursor

    def begin_immediate(self) -> None:
        """Take SQLite's write lock up front (a deferred transaction that upgrades later fails with
        "database is locked" without waiting). Inline when it is free, as it is unless another
        process writes to the file; then on the connection's thread, where waiting blocks nothing."""
        driver = self._connection
        try:
            driver._conn.execute("BEGIN IMMEDIATE").close()
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # SQLITE_BUSY and its extended codes
                self._handle_exception(err)
            try:
                await_(driver._execute(_begin_waiting, driver._conn))
            except Exception as error:
                self._handle_exception(error)

    def commit(self) -> None:  # in WAL mode (synchronous=NORMAL) a commit writes, it does not sync
        if self._connection._connection:
            try:
                self._connection._conn.commit()
            except Exception as error:
                self._handle_exception(error)

    def rollback(self) -> None:
        if self._connection._connection:
            try:
                self._connection._conn.rollback()
            except Exception as error:
                self._handle_exception(error)


class _InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite adapter with the inline cursor (passed as create_async_engine's module)."""

    def connect(self, *args: Any, **kwargs: Any) -> _InlineConnection:
        # Opened on the connection's thread, used from the loop's too (one at a time).
        connection = self.aiosqlite.connect(*args, **{**kwargs, "check_same_thread": False})
        connection._thread.daemon = True  # as SQLAlchemy does: a forgotten connection must not hold the exit
        return _InlineConnection(self, await_(connection))


class WriterLock:
    """SQLite has one writer at a time. Left to itself, a transaction waiting for the lock sleeps in
    SQLite's busy handler and polls, so a writer that commits and begins again within milliseconds
    (a consumer working through a backlog) can starve the others (the outbox relay) for seconds.
    Instead every transaction of the process queues for this lock, first come first served, and
    holds it from BEGIN until its connection goes back to the pool."""

    WAIT_SECONDS = SQLITE_BUSY_SECONDS  # a lock held that long is a bug, not load
    HELD = "icc_writer_lock"  # flag in the pool entry's info: this connection holds the lock

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(self.WAIT_SECONDS):
                await self._lock.acquire()
        except TimeoutError:
            raise TimeoutError(
                f"waited {self.WAIT_SECONDS}s for the SQLite writer lock: a transaction held it that long, "
                "or one task opened a second transaction while its first was still open"
            ) from None

    def install(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            info = connection.connection.info
            adapted = connection.connection.dbapi_connection
            if not info.get(self.HELD):  # a connection kept checked out keeps it across its transactions
                adapted.run_async(lambda _: self._acquire())
                info[self.HELD] = True
            adapted.begin_immediate()

        @event.listens_for(engine.sync_engine, "checkin")
        @event.listens_for(engine.sync_engine, "detach")
        def _release(_: Any, record: Any) -> None:
            if record is not None and record.info.pop(self.HELD, False):
                self._lock.release()


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


# JSON columns (the outbox's headers: one per event) through pydantic's Rust codec, 3-5x the stdlib's.
JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": pydantic_core.from_json}


def create_engine(url: str, schema: str) -> AsyncEngine:
    url = normalise_url(url.replace("postgres://", "postgresql://", 1))
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, module=_InlineDBAPI(aiosqlite, sqlite3), **JSON_CODEC)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN (savepoints need it)
            cursor = dbapi_connection.cursor()
            # busy_timeout=0: nothing inline may wait (see _InlineConnection.begin_immediate).
            for pragma in ("journal_mode=WAL", "busy_timeout=0", "foreign_keys=ON", "synchronous=NORMAL"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        WriterLock().install(engine)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        connect_args={"server_settings": {"search_path": schema}},
        **JSON_CODEC,
    )


def alembic_config(service_migrations: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(service_migrations)]))
    return config


async def migrate(engine: AsyncEngine, schema: str, service_migrations: Path) -> None:
    """Bring the machinery tables and the service's own tables to the newest revision."""
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = alembic_config(service_migrations)

    def upgrade(sync_connection: Any) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "heads")

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


class UnitOfWork:
    """One database transaction: the state change and the events it causes commit together.

    Services subclass it to add their repositories as attributes built on `self.session`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], service: str, on_commit: Callable[[], None]) -> None:
        self._sessions = sessions
        self.service = service
        self._on_commit = on_commit
        self.correlation_id: Any = None  # set by consumers: what a handler emits carries the cause's id
        self.cause: Envelope | None = None  # set by consumers: the event being applied

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._outbox: list[dict[str, Any]] = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.rollback()  # no-op after commit; discards anything left uncommitted
        await self.session.close()

    async def prefetch(self, events: list[Event]) -> None:
        """Load, in a few queries, the state a batch of incoming events will touch.

        Consumers call it once per batch before the handlers run, so that handlers find what they
        need in the repositories without a query per event. Services override it; default: nothing."""

    def emit(self, event: Event, correlation_id: Any = None) -> Envelope:
        """Record an integration event to be published once this transaction commits."""
        envelope = wrap(event, service=self.service, correlation_id=correlation_id or self.correlation_id)
        self.add_outbox(
            message_id=str(envelope.id),
            topic=envelope.data.topic.value,
            key=envelope.key,
            value=to_value(envelope),
            headers=[[name, raw.decode()] for name, raw in to_headers(envelope)],
        )
        return envelope

    def add_outbox(self, *, message_id: str, topic: str, key: str | None, value: bytes, headers: list[list[str]]) -> None:
        self._outbox.append(
            {"message_id": message_id, "topic": topic, "key": key, "value": value, "headers": headers, "created_at": utcnow()}
        )

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo everything inside, outbox rows included, if it raises."""
        pending = len(self._outbox)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self._outbox[pending:]
            raise

    async def commit(self) -> None:
        # Outbox rows go in as one multi-row INSERT: a batch of 500 events is one statement, not 500.
        published = bool(self._outbox)
        if published:
            await self.session.execute(insert(OutboxMessage), self._outbox)
            self._outbox = []
        await self.session.commit()
        if published:
            self._on_commit()
