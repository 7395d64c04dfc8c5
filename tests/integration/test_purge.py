"""Purging old rows (services/common/purge.py): only published outbox rows and processed event ids
past their retention go, in bounded batches (SQLite and PostgreSQL)."""

import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from services.common.db import OutboxMessage, ProcessedEvent, migrate, utcnow
from services.common.purge import purge_old_rows
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.integration.test_finance_budget import NO_BROKER
from tests.support import eventually, running

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "finance" / "migrations"


async def test_purge_deletes_only_old_published_outbox_rows_and_old_processed_events(databases) -> None:
    settings = FinanceSettings(**NO_BROKER, **databases("finance"), outbox_retention_hours=24, processed_retention_days=30,
                               purge_batch_size=3)
    app = build_app(settings)
    runtime = app.state.runtime
    now = utcnow()
    old, recent = now - timedelta(hours=25), now - timedelta(hours=23)
    outbox = {  # message id: (created, published)
        **{f"old-published-{i}": (old, old) for i in range(7)},  # more than two batches
        "recent-published": (recent, recent),
        "old-unpublished": (old, None),  # never sent: kept whatever its age
        "sent-late": (old, recent),  # written long ago, published recently: the publication counts
    }
    processed = {**{f"old-{i}": now - timedelta(days=31) for i in range(5)}, "recent": now - timedelta(days=29)}

    await migrate(runtime.engine, settings.db_schema, MIGRATIONS)  # not started: no background purge meanwhile
    try:
        async with runtime.sessions() as session, session.begin():
            await session.execute(insert(OutboxMessage), [
                {"message_id": m, "topic": "t", "key": None, "value": b"", "headers": [], "created_at": c, "published_at": p}
                for m, (c, p) in outbox.items()])
            await session.execute(insert(ProcessedEvent), [
                {"consumer": "finance", "event_id": e, "processed_at": at} for e, at in processed.items()])

        assert await purge_old_rows(runtime.sessions, settings) == {"outbox": 7, "processed_events": 5}
        async with runtime.sessions() as session:
            assert set(await session.scalars(select(OutboxMessage.message_id))) == {"recent-published", "old-unpublished", "sent-late"}
            assert set(await session.scalars(select(ProcessedEvent.event_id))) == {"recent"}
        assert await purge_old_rows(runtime.sessions, settings) == {"outbox": 0, "processed_events": 0}
    finally:
        await runtime.engine.dispose()


async def test_every_service_purges_in_the_background_and_logs_what_went(databases) -> None:
    settings = FinanceSettings(**NO_BROKER, **databases("finance"), purge_interval_seconds=0.1)
    app = build_app(settings)
    runtime = app.state.runtime
    logged = Recorded()
    logging.getLogger("icc.purge").addHandler(logged)  # the app's logging setup replaces the root's handlers
    try:
        async with running(app):
            long_ago = utcnow() - timedelta(days=settings.processed_retention_days, minutes=1)
            async with runtime.sessions() as session, session.begin():
                await session.execute(insert(ProcessedEvent), [{"consumer": "finance", "event_id": "e1", "processed_at": long_ago}])

            async def gone() -> bool:
                async with runtime.sessions() as session:
                    return await session.scalar(select(ProcessedEvent.event_id)) is None

            await eventually(gone, timeout=10, what="the background purge")
    finally:
        logging.getLogger("icc.purge").removeHandler(logged)
    [entry] = [r for r in logged.records if r.getMessage() == "old rows purged"]
    assert (entry.outbox_rows, entry.processed_events_rows, entry.service) == (0, 1, "finance")


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
