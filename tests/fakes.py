"""Fakes for unit tests of handlers: a unit of work and repositories in memory, no database.

A handler takes its unit of work as an argument, so a test hands it one of these: the handler
runs its rules for real, and the test reads what it emitted and whether it committed. Each
service's test module adds the repositories its handlers use (its `FakeUnitOfWork` subclass)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from contracts.envelope import Envelope, wrap
from contracts.events import Event

T = TypeVar("T")


class FakeSession:
    """What handlers ask of a session besides their repositories: in memory, nothing to do."""

    async def refresh(self, row: Any) -> None:
        pass

    async def flush(self) -> None:
        pass


class InMemory(Generic[T]):
    """Rows by key, like services.common.db.Keyed: `get` answers None for an unknown key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.rows: dict[Any, T] = {}

    def add(self, row: T) -> None:
        self.rows[getattr(row, self.key)] = row

    def remember(self, row: T) -> T:
        self.add(row)
        return row

    async def get(self, key: Any) -> T | None:
        return self.rows.get(key)

    async def preload(self, keys: set[Any]) -> None:
        pass

    def loaded(self) -> list[T]:
        return list(self.rows.values())


class FakeUnitOfWork:
    """A unit of work in memory. What a handler emits counts once it commits (`committed`); a
    refusal raised before the commit leaves nothing emitted."""

    service = "fake"

    def __init__(self) -> None:
        self.session = FakeSession()
        self.committed: list[Event] = []
        self.commits = 0
        self.correlation_id: Any = None
        self.cause: Envelope | None = None
        self._pending: list[Event] = []

    async def __aenter__(self) -> "FakeUnitOfWork":
        self._pending = []
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pending = []  # a rollback: what was not committed is gone

    def emit(self, event: Event, correlation_id: Any = None) -> Envelope:
        self._pending.append(event)
        return wrap(event, service=self.service, correlation_id=correlation_id or self.correlation_id)

    async def commit(self) -> None:
        self.committed += self._pending
        self._pending = []
        self.commits += 1

    async def prefetch(self, events: list[Event]) -> None:
        pass

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        yield

    def emitted(self, *types: type[Event]) -> list[Event]:
        """What it committed, optionally only of some types, in order."""
        return [e for e in self.committed if not types or isinstance(e, types)]
