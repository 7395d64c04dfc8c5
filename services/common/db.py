"""Database setup shared by all services: engines for SQLite (embedded default) and PostgreSQL
(schema per service), money columns in integer cents, the machinery tables, the unit of work,
and Alembic migrations applied before a service takes traffic."""

import functools
import hashlib
import ipaddress
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import pydantic_core
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON, BigInteger, Column, ColumnElement, DateTime, Insert, Integer, LargeBinary, String, TypeDecorator, any_, bindparam, event, func,
    insert, inspect, literal, select, text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts.envelope import Actor, Envelope, header_texts, to_value, wrap
from contracts.events import Event
from services.common.sqlite import READ_ONLY, sqlite_engine
from services.common.tracing import current_traceparent

MIGRATIONS = Path(__file__).parent / "migrations"
OUTBOX_CHANNEL = "icc_outbox"  # PostgreSQL NOTIFY on a commit that wrote outbox rows; payload: "<schema> <origin>"


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
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # Who caused the event applied (`<authtype>:<authid>` of its headers), kept with its effect.
    actor: Mapped[str | None] = mapped_column(String(250))


class AuditEntry(MachineryBase):
    """Who did what, when: one row per change a person (or a program with its own login) made
    through the API, written in the change's transaction. `event_id` names the event the change
    published, if any; `details` holds what a change without an event replaced (e.g. a rate)."""

    __tablename__ = "audit"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_name: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(200), index=True)
    event_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# Core INSERTs of the tables, not of the mapped classes: the ORM's bulk insert adds nothing to a
# list of dicts but its own bookkeeping per statement.
_INSERT_OUTBOX, _INSERT_AUDIT = insert(OutboxMessage.__table__), insert(AuditEntry.__table__)


@functools.cache
def _insert_outbox_notifying(origin: str) -> Insert:
    """The outbox INSERT that also notifies the other replicas' relays ("<schema> <origin>": see
    services.common.outbox.woken_by)."""
    return _INSERT_OUTBOX.returning(func.pg_notify(OUTBOX_CHANNEL, func.concat(func.current_schema(), literal(f" {origin}"))))


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// and postgresql:// forms and use the async driver."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


# JSON columns (the outbox's headers: one per event) through pydantic's Rust codec, 3-5x the stdlib's.
JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": pydantic_core.from_json}


# A pooled PostgreSQL connection idle longer than this is pinged before use (see _ping_when_idle).
IDLE_PING_SECONDS = 1.0
_IDLE_SINCE = "icc_idle_since"


def create_engine(url: str, schema: str) -> AsyncEngine:
    url = normalise_url(url.replace("postgres://", "postgresql://", 1))
    if is_sqlite(url):
        return sqlite_engine(url, **JSON_CODEC)
    connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}}
    parsed = make_url(url)
    if _on_this_machine(parsed.host) and not {"ssl", "sslmode"} & set(parsed.query):
        # asyncpg would negotiate TLS (sslmode "prefer"): over loopback it protects nothing, and
        # every statement and answer then goes through asyncio's TLS layer. The URL's ssl= decides.
        connect_args["ssl"] = False
    engine = create_async_engine(url, connect_args=connect_args, **JSON_CODEC)
    _ping_when_idle(engine)
    return engine


def _on_this_machine(host: str | None) -> bool:
    if host in (None, "", "localhost") or host.startswith("/"):  # no host or a directory: a Unix socket
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Replace a connection the server closed (a restart, an idle timeout) before a transaction
    uses it, as `pool_pre_ping` does, but only for connections that sat in the pool: pinging each
    checkout cost a round trip per transaction (a tenth of a claim's). A connection back in the
    pool within the second is used as it is; should the server have gone meanwhile, the statement
    fails as a disconnect, the pool drops its connections, and the caller's retry gets new ones."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is not None and time.monotonic() - since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as err:
                raise DisconnectionError(f"pooled connection found closed: {err!r}") from err  # the pool opens another


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The engine for transactions that only read (GET routes): on PostgreSQL READ ONLY
    transactions; on SQLite deferred ones on a WAL snapshot that do not queue for the writer lock
    (services.common.sqlite). A write attempted in one fails, on both."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    return engine.execution_options(**{READ_ONLY: True})


def alembic_config(service_migrations: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(service_migrations)]))
    return config


async def migrate(engine: AsyncEngine, schema: str, service_migrations: Path, target: str = "heads") -> None:
    """Bring the machinery tables and the service's own tables to the newest revision (or `target`)."""
    # Replicas starting together migrate one at a time (PostgreSQL: a lock per schema, held by each
    # step's transaction); the later ones find nothing left to do.
    postgresql = engine.dialect.name == "postgresql"
    one_at_a_time = select(func.pg_advisory_xact_lock(advisory_key(f"icc-migrate:{schema}")))
    if postgresql:
        async with engine.begin() as connection:
            await connection.execute(one_at_a_time)
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config = alembic_config(service_migrations)

    def upgrade(sync_connection: Any) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, target)

    async with engine.begin() as connection:
        if postgresql:
            await connection.execute(one_at_a_time)
        await connection.run_sync(upgrade)


def one_of(session: AsyncSession, column: Column, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values`, with the values bound as one parameter: `= ANY(array)` on PostgreSQL, a
    JSON array read by json_each on SQLite. An expanding IN binds and renders one parameter per
    value on every execution: a batch's 500-key preload spent ~4 us per key on that alone."""
    values = list(values)
    dialect = session.bind.dialect
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    process = column.type.bind_processor(dialect)
    stored = [process(v) for v in values] if process else values
    if not all(isinstance(v, str | int) for v in stored):
        return column.in_(values)
    listed = func.json_each(bindparam(None, pydantic_core.to_json(stored).decode(), type_=String)).table_valued("value")
    return column.in_(select(listed.c.value))


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory lock's key for `name`: a stable signed 64-bit number, the same in every
    process and release (unlike hash()), as an old and a new version must agree on it."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class UnitOfWork:
    """One database transaction: the state change and the events it causes commit together.

    Services subclass it to add their repositories as attributes built on `self.session`."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], service: str, on_commit: Callable[[], None], origin: str = ""
    ) -> None:
        self._sessions = sessions
        self.service = service
        self._on_commit = on_commit  # wakes this runtime's relay
        self._origin = origin  # names this runtime's relay in the notification (services.common.outbox.woken_by)
        self.correlation_id: Any = None  # set by consumers: what a handler emits carries the cause's id
        self.cause: Envelope | None = None  # set by consumers: the event being applied
        # Who acts: set by the API from the signed-in principal (read when first needed, as route
        # rules may run after the unit of work is made): what it emits carries them and is audited.
        # None: the service itself acts (a consumer deriving facts from facts), `system` on the wire.
        self._actor: Actor | None = None
        self.caller: Callable[[], Actor | None] | None = None

    @property
    def actor(self) -> Actor | None:
        if self._actor is None and self.caller is not None:
            self._actor = self.caller()
        return self._actor

    @actor.setter
    def actor(self, actor: Actor | None) -> None:
        self._actor = actor

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._outbox: list[dict[str, Any]] = []
        self._audit: list[dict[str, Any]] = []
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
        envelope = wrap(event, service=self.service, correlation_id=correlation_id or self.correlation_id, actor=self.actor)
        if self.actor is not None:
            self.audit(envelope.type, envelope.key, event_id=envelope.ce_id)
        headers = header_texts(envelope)
        if traceparent := current_traceparent():  # the trace goes on in the consumers (services.common.tracing)
            headers.append(("traceparent", traceparent))
        self.add_outbox(
            message_id=envelope.ce_id,
            topic=envelope.data.topic.value,
            key=envelope.key,
            value=to_value(envelope),
            headers=headers,
        )
        return envelope

    def add_outbox(self, *, message_id: str, topic: str, key: str | None, value: bytes, headers: list[tuple[str, str]] | list[list[str]]) -> None:
        self._outbox.append(
            {"message_id": message_id, "topic": topic, "key": key, "value": value, "headers": headers, "created_at": utcnow()}
        )

    def audit(self, action: str, subject: Any, *, event_id: str | None = None, details: dict[str, Any] | None = None) -> None:
        """Record in the audit trail that the signed-in actor did `action` to `subject` (with this
        transaction). Changes that publish an event are recorded by `emit`; others call this."""
        if self.actor is None:
            return  # the service acting on its own: its trail is the events it consumed
        self._audit.append({
            "at": utcnow(), "actor_type": self.actor.auth_type, "actor_id": self.actor.auth_id, "actor_name": self.actor.name,
            "action": action, "subject": None if subject is None else str(subject), "event_id": event_id, "details": details,
        })

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo everything inside, outbox and audit rows included, if it raises."""
        pending, audited = len(self._outbox), len(self._audit)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self._outbox[pending:]
            del self._audit[audited:]
            raise

    async def commit(self) -> None:
        # Outbox rows go in as one multi-row INSERT: a batch of 500 events is one statement, not 500.
        published = bool(self._outbox)
        if published:
            # PostgreSQL, replicas: the same statement wakes the relay holding the lock, wherever it runs
            # (one NOTIFY at the commit: PostgreSQL folds a transaction's identical ones), no round trip of its own.
            postgresql = self.session.bind.dialect.name == "postgresql"
            await self.session.execute(_insert_outbox_notifying(self._origin) if postgresql else _INSERT_OUTBOX, self._outbox)
            self._outbox = []
        if self._audit:
            await self.session.execute(_INSERT_AUDIT, self._audit)
            self._audit = []
        await self.session.commit()
        if published:
            self._on_commit()


T = TypeVar("T")


class Keyed(Generic[T]):
    """Rows of one mapped class by primary key, for one unit of work: loaded in bulk (a batch
    consumer preloads what its events touch in one query), remembered, absent ones too, so a
    handler never queries per event."""

    def __init__(self, session: AsyncSession, model: type[T], key: Column) -> None:
        self.session, self.model, self.key = session, model, key
        self._loaded: dict[Any, T | None] = {}

    async def preload(self, keys: set[Any]) -> None:
        # Not `keys - self._loaded.keys()`: that hashes every key loaded so far, per call.
        wanted = {key for key in keys if key not in self._loaded}
        if wanted:
            query = select(self.model).where(one_of(self.session, self.key, wanted))
            found = {getattr(row, self.key.name): row for row in await self.session.scalars(query)}
            self._loaded.update({key: found.get(key) for key in wanted})

    async def get(self, key: Any, *, for_update: bool = False) -> T | None:
        """`for_update` reads the row afresh and locks it until the commit (PostgreSQL; SQLite
        serialises writers anyway): decisions that count or change it go one at a time."""
        if for_update:
            query = select(self.model).where(self.key == key).with_for_update().execution_options(populate_existing=True)
            self._loaded[key] = await self.session.scalar(query)
        if key not in self._loaded:
            await self.preload({key})
        row = self._loaded[key]
        if row is not None and (state := inspect(row, raiseerr=False)) is not None and state.expired_attributes:
            # A savepoint rolled back (a failing handler in the batch) expired what it touched. (A
            # repository may keep rows it inserts itself as plain objects: no state, nothing expired.)
            await self.session.refresh(row)
        return row

    def add(self, row: T) -> None:
        self.session.add(row)
        self._loaded[getattr(row, self.key.name)] = row

    def remember(self, row: T) -> T:
        """Keep a row some other query loaded, so later `get`s find it without a query."""
        self._loaded[getattr(row, self.key.name)] = row
        return row

    def loaded(self) -> list[T]:
        return [row for row in self._loaded.values() if row is not None]
