"""The outbox relay: publishes committed outbox rows to Kafka in order, then marks them published.

At least once by construction (a crash between the send and the mark re-sends; consumers dedupe
on the event id). It waits out a broker outage with back-off, keeps rows until they are
acknowledged by all in-sync replicas, and picks up where it left off after a restart.

N replicas on PostgreSQL: one relay publishes at a time per schema. Each round is one transaction
that takes a transaction-level advisory lock, selects the next batch, sends it, waits for the
acks and marks it published; a relay that does not get the lock idles and tries again at its next
poll, so when the holder dies (its transaction ends with its connection) another takes over by
itself. The lock is held through the send: a relay taking it between two rounds finds every row
the other sent already marked, so in the normal case each row is published once.

Order per key survives a takeover. A relay sends the rows it selected in position order through
one idempotent producer, and selects a row only once every earlier row is either in its own batch
(sent before it, so earlier on the partition) or marked published, which happens only after the
broker acknowledged it (already on the partition). So the FIRST copy of each row on a partition
comes after the first copy of every earlier row of its key; when relay A sent a batch and died
before marking it, relay B re-sends it from the start: later copies are duplicates, which
consumers skip by event id, and the order they apply is unchanged. (Position order is a key's
commit order where the writers of one aggregate serialise, on a row lock taken before the commit
writes the outbox; concurrent transactions' positions may interleave on PostgreSQL, with one
process as with many.)"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import OutboxMessage, advisory_key, is_sqlite, normalise_url, utcnow
from services.common.retry import Backoff
from services.common.settings import ServiceSettings
from services.common.sqlite import IN_PIPELINE

log = logging.getLogger("icc.outbox")
outbox = OutboxMessage.__table__


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: ServiceSettings,
        producer_factory: Callable[[], AIOKafkaProducer],
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._producer_factory = producer_factory
        self._wake = asyncio.Event()
        self.published_total = 0
        self._postgresql = not is_sqlite(normalise_url(settings.db_url))
        self.lock_key = relay_lock_key(settings.db_schema)
        self.origin = uuid4().hex[:12]  # what its own runtime's commits are signed with (see woken_by)

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out now rather than at the next poll."""
        self._wake.set()

    async def pending(self) -> int:
        async with self._sessions() as session:
            return await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            ) or 0

    async def run(self) -> None:
        IN_PIPELINE.set(True)  # this task's: its rounds take turns with requests for SQLite's writer lock
        producer: AIOKafkaProducer | None = None
        backoff = Backoff(cap=self._settings.retry_max_seconds)
        outage = False
        acked: list[int] = []  # positions the broker has acknowledged, to mark in the next transaction
        try:
            while True:
                try:
                    if producer is None:
                        producer = self._producer_factory()
                        await producer.start()
                    if self._postgresql:
                        rows = await self._publish_holding_lock(producer)
                    else:  # SQLite: one process; the send happens outside the writer lock
                        rows = await self._mark_and_take(acked)
                        acked = []
                        if rows:
                            acked = await self._send(producer, rows)
                    if outage:
                        log.info("kafka reachable again; outbox relay resumed")
                        outage = False
                    backoff.reset()
                    if not rows:
                        await self._idle()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # broker down, timeouts, database busy: wait and retry
                    if asyncio.current_task().cancelling():
                        raise  # aiokafka can turn a cancellation into a connection error: we are stopping
                    delay = backoff.next()
                    if not outage:
                        log.warning(
                            "outbox relay cannot publish; events stay in the outbox and will be retried",
                            extra={"error": repr(err), "retry_in_s": round(delay, 2)},
                        )
                        outage = True
                    if producer is not None:
                        await _close_quietly(producer)
                        producer = None
                    await asyncio.sleep(delay)
        finally:
            if producer is not None:
                await _close_quietly(producer)

    async def _idle(self) -> None:
        try:
            async with asyncio.timeout(self._settings.relay_poll_seconds):  # not wait_for: see _close_quietly
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def _mark_and_take(self, acked: list[int]) -> Sequence[Row]:
        """One transaction: mark what the broker acknowledged as published, and read the next batch
        (in order). Clearing the wake-up first means a commit from now on wakes the next round."""
        self._wake.clear()
        async with self._sessions() as session, session.begin():
            if acked:
                await session.execute(update(outbox).where(outbox.c.position.in_(acked)).values(published_at=utcnow()))
            rows = await self._next_batch(session)
        self._published(acked)
        return rows

    async def _publish_holding_lock(self, producer: AIOKafkaProducer) -> Sequence[Row]:
        """PostgreSQL: one transaction takes the relay lock, reads the next batch, sends it and marks
        it once acknowledged (see the module's docstring). No rows: the batch was empty or another
        replica holds the lock."""
        self._wake.clear()
        async with self._sessions() as session, session.begin():
            # A mark lost in a server crash only re-sends rows (consumers dedupe): no need to wait
            # for the WAL flush, ~3 ms before the next batch can go out. Said in the statement that
            # takes the lock: one round trip, not two.
            unflushed = func.set_config("synchronous_commit", "off", True)
            if not (await session.execute(select(func.pg_try_advisory_xact_lock(self.lock_key), unflushed))).scalar():
                return ()
            rows = await self._next_batch(session)
            acked = await self._send(producer, rows) if rows else []
            if acked:
                await session.execute(update(outbox).where(outbox.c.position.in_(acked)).values(published_at=utcnow()))
        self._published(acked)
        return rows

    async def _next_batch(self, session: AsyncSession) -> Sequence[Row]:
        return (
            await session.execute(
                select(outbox.c.position, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.position)
                .limit(self._settings.relay_batch_size)
            )
        ).all()

    def _published(self, acked: list[int]) -> None:
        if acked:
            self.published_total += len(acked)
            log.debug("outbox published", extra={"count": len(acked)})

    async def _send(self, producer: AIOKafkaProducer, rows: Sequence[Row]) -> list[int]:
        # Queue every record first, then wait for all acks: one round trip per batch, order kept per key.
        physical = self._settings.physical_topic
        deliveries = [
            await producer.send(
                physical(topic),
                value=value,
                key=key.encode() if key is not None else None,
                headers=[(name, text.encode()) for name, text in headers],
            )
            for _, topic, key, value, headers in rows
        ]
        await asyncio.gather(*deliveries)
        return [row[0] for row in rows]


def woken_by(payload: str | None, schema: str, origin: str) -> bool:
    """Whether a notification on OUTBOX_CHANNEL should wake the relay of `origin`: another replica
    committed outbox rows in our schema ("<schema> <its origin>"), or the listener (re)connected
    (None: what was sent meanwhile is lost). Our own runtime's commits wake the relay directly;
    their echo would only make it run an empty round (five round trips) after every commit."""
    if payload is None:
        return True
    written_in, _, written_by = payload.partition(" ")
    return written_in == schema and written_by != origin


def relay_lock_key(schema: str) -> int:
    """The advisory lock of a schema's relay, which other schemas' relays do not share."""
    return advisory_key(f"icc-outbox-relay:{schema}")


async def _close_quietly(producer: AIOKafkaProducer) -> None:
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as
    # stop() completes, and the relay would then retry forever instead of shutting down.
    try:
        async with asyncio.timeout(5):
            await producer.stop()
    except Exception:  # a producer that never connected may fail to stop; nothing to salvage
        pass
