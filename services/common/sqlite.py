"""SQLite, the embedded default: an engine whose statements run on the event loop's thread, and one
writer lock per process shared first come first served; transactions that only read (READ_ONLY)
take no lock. Why, with the figures: docs/performance.md."""

import asyncio
import collections
import sqlite3
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor, AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_

SQLITE_BUSY_SECONDS = 30  # how long a transaction waits for another process's writer
# Execution option of an engine (services.common.db.reading) whose transactions only read.
READ_ONLY = "icc_read_only"
# Set by the outbox relay and the consumers: their transactions carry work already in the pipeline
# (events to publish, events to apply), which the writer lock serves in turn with requests.
IN_PIPELINE: ContextVar[bool] = ContextVar("icc_in_pipeline", default=False)


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

    def begin_reading(self) -> None:
        """A deferred transaction that may not write (PRAGMA query_only: a write fails with "attempt
        to write a readonly database"). Its first read takes a snapshot of the WAL, which never
        waits for the writer nor makes it wait."""
        try:
            self._connection._conn.execute("PRAGMA query_only=ON").close()
            self._connection._conn.execute("BEGIN").close()
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
    Instead every transaction of the process queues for this lock and holds it from BEGIN until its
    connection goes back to the pool. A transaction that only reads (an engine with the READ_ONLY
    option) takes neither this lock nor SQLite's: in WAL mode it reads a snapshot while the writer
    goes on, and a write it attempts fails.

    Two queues, each first come first served, take turns: the pipeline's (the relay and the
    consumers, IN_PIPELINE) and the requests'. First come first served across both had the relay
    and the consumer wait behind every request queued (64 POSTs: ~100 ms per round), so each claim
    waited that long twice more, to be published and for its decision to show. In turns, neither
    waits for more than one of the other's transactions per transaction of its own queue."""

    WAIT_SECONDS = SQLITE_BUSY_SECONDS  # a lock held that long is a bug, not load
    HELD = "icc_writer_lock"  # flag in the pool entry's info: this connection holds the lock
    READING = "icc_query_only"  # flag in the pool entry's info: the connection refuses writes until checked in

    def __init__(self) -> None:
        self._held = False
        self._pipeline_held = False  # whether the holder (or the last one) is pipeline work
        self._waiting: dict[bool, collections.deque[asyncio.Future[None]]] = {True: collections.deque(), False: collections.deque()}

    async def _acquire(self) -> None:
        pipeline = IN_PIPELINE.get()
        if not self._held:  # free: nobody waits either (a release hands the lock to a waiter)
            self._held, self._pipeline_held = True, pipeline
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting[pipeline].append(turn)
        try:
            async with asyncio.timeout(self.WAIT_SECONDS):
                await turn
        except BaseException as err:
            if turn.done() and not turn.cancelled():
                self._release()  # handed the lock as we gave up: pass it on
            if isinstance(err, TimeoutError):
                raise TimeoutError(
                    f"waited {self.WAIT_SECONDS}s for the SQLite writer lock: a transaction held it that long, "
                    "or one task opened a second transaction while its first was still open"
                ) from None
            raise

    def _release(self) -> None:
        after_request = not self._pipeline_held  # the other queue's turn first
        for pipeline in (after_request, not after_request):
            waiting = self._waiting[pipeline]
            while waiting:
                turn = waiting.popleft()
                if not turn.done():  # not given up (cancelled) meanwhile
                    turn.set_result(None)
                    self._pipeline_held = pipeline
                    return
        self._held = False

    def install(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            info = connection.connection.info
            adapted = connection.connection.dbapi_connection
            if connection.get_execution_options().get(READ_ONLY):
                if info.get(self.HELD):  # the same connection wrote earlier in this checkout: it would be a writer's
                    raise RuntimeError("a read-only transaction on a connection that holds the SQLite writer lock")
                info[self.READING] = True
                adapted.begin_reading()
                return
            if info.get(self.READING):
                raise RuntimeError("a writing transaction on a connection checked out to read only")
            if not info.get(self.HELD):  # a connection kept checked out keeps it across its transactions
                adapted.run_async(lambda _: self._acquire())
                info[self.HELD] = True
            adapted.begin_immediate()

        @event.listens_for(engine.sync_engine, "checkin")
        @event.listens_for(engine.sync_engine, "detach")
        def _release(adapted: Any, record: Any) -> None:
            if record is None:
                return
            if record.info.pop(self.HELD, False):
                self._release()
            driver = getattr(getattr(adapted, "_connection", None), "_connection", None)  # None once closed
            if record.info.pop(self.READING, False) and driver is not None:
                driver.execute("PRAGMA query_only=OFF").close()


def sqlite_engine(url: str, **options: Any) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, module=_InlineDBAPI(aiosqlite, sqlite3), **options)

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
