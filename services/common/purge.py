"""Purging old rows: what the machinery tables no longer need, deleted by every service process.

- outbox rows published more than `outbox_retention_hours` ago (default a week: time to look at
  what went out; unpublished rows are never touched);
- processed event ids older than `processed_retention_days` (default 30): a consumer dedupes a
  redelivered event by its id, so the ids must outlive any redelivery: Kafka's retention of what
  may be replayed (and any replay from an older offset) must be shorter than this.

In batches of `purge_batch_size` rows, one short transaction each, so SQLite's writer lock is
never held long. On PostgreSQL every replica purges: they delete the same rows, which is harmless."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Column, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import OutboxMessage, ProcessedEvent, utcnow
from services.common.settings import ServiceSettings

log = logging.getLogger("icc.purge")
outbox = OutboxMessage.__table__
processed = ProcessedEvent.__table__


async def purge_old_rows(sessions: async_sessionmaker[AsyncSession], settings: ServiceSettings) -> dict[str, int]:
    """Delete what is past its retention now; how many rows of each table went."""
    now = utcnow()
    return {
        "outbox": await _purge(sessions, (outbox.c.position,), outbox.c.published_at,
                               now - timedelta(hours=settings.outbox_retention_hours), settings.purge_batch_size),
        "processed_events": await _purge(sessions, (processed.c.consumer, processed.c.event_id), processed.c.processed_at,
                                         now - timedelta(days=settings.processed_retention_days), settings.purge_batch_size),
    }


async def _purge(sessions: async_sessionmaker[AsyncSession], key: tuple[Column, ...], age: Column, cutoff, batch: int) -> int:
    table = age.table
    purged = 0
    while True:
        oldest = select(*key).where(age < cutoff).order_by(age).limit(batch)
        async with sessions() as session, session.begin():
            deleted = (await session.execute(delete(table).where(tuple_(*key).in_(oldest)))).rowcount
        purged += deleted
        if deleted < batch:
            return purged
        await asyncio.sleep(0)  # others' transactions get the writer lock between two batches


async def keep_purging(sessions: async_sessionmaker[AsyncSession], settings: ServiceSettings) -> None:
    """The background task: purge now and every `purge_interval_seconds`."""
    while True:
        try:
            purged = await purge_old_rows(sessions, settings)
            if any(purged.values()):
                log.info("old rows purged", extra={"service": settings.service, **{f"{k}_rows": n for k, n in purged.items()}})
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the database unreachable: nothing lost, the next round catches up
            log.warning("purge failed; retried at the next interval", extra={"service": settings.service, "error": repr(err)})
        await asyncio.sleep(settings.purge_interval_seconds)
