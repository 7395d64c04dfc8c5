"""Fakes for driving handlers without a database (cosmicpython's FakeUnitOfWork): repositories are
dicts, and what a handler publishes is kept, in order, once it commits."""

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


class FakeKeyed(Generic[T]):
    """The fake of `services.common.db.Keyed`: rows by the attribute `key`."""

    def __init__(self, key: str, *rows: T) -> None:
        self.key = key
        self.rows: dict[Any, T] = {getattr(row, key): row for row in rows}

    async def preload(self, keys: set[Any]) -> None:
        pass

    async def get(self, key: Any, *, for_update: bool = False) -> T | None:
        return self.rows.get(key)

    def add(self, row: T) -> None:
        self.rows[getattr(row, self.key)] = row

    def remember(self, row: T) -> T:
        self.add(row)
        return row

    def loaded(self) -> list[T]:
        return list(self.rows.values())


class FakeUnitOfWork:
    """Subclass it with a service's fake repositories as attributes. `published`: the events of
    every commit, in order; what is emitted and not committed is lost, as with the real one."""

    service = "fake"

    def __init__(self) -> None:
        self.session = FakeSession()
        self.published: list[Event] = []
        self.commits = 0
        self.correlation_id: Any = None
        self.cause: Any = None
        self.actor: Any = None
        self.audited: list[tuple[str, Any, dict | None]] = []  # (action, subject, details) of every commit
        self._pending: list[Event] = []
        self._audit: list[tuple[str, Any, dict | None]] = []

    async def __aenter__(self) -> "FakeUnitOfWork":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._pending = []
        self._audit = []

    def audit(self, action: str, subject: Any, *, event_id: str | None = None, details: dict | None = None) -> None:
        self._audit.append((action, subject, details))

    async def prefetch(self, events: list[Event]) -> None:
        pass

    def emit(self, event: Event, correlation_id: Any = None) -> Envelope:
        self._pending.append(event)
        return wrap(event, service=self.service, correlation_id=correlation_id or self.correlation_id)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        pending = len(self._pending)
        try:
            yield
        except BaseException:
            del self._pending[pending:]
            raise

    async def commit(self) -> None:
        self.published += self._pending
        self.audited += self._audit
        self._pending, self._audit = [], []
        self.commits += 1

    def published_of(self, *types: type[Event]) -> list[Event]:
        """The committed events of these types, in order."""
        return [event for event in self.published if isinstance(event, types)]
