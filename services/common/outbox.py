"""The outbox relay: publishes committed outbox rows to Kafka in order, then marks them published.

At least once by construction (a crash between the send and the mark re-sends; consumers dedupe
on the event id). It waits out a broker outage with back-off, keeps rows until they are
acknowledged by all in-sync replicas, and picks up where it left off after a restart."""

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import OutboxMessage, utcnow
from services.common.retry import Backoff
from services.common.settings import ServiceSettings

log = logging.getLogger("icc.outbox")


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

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out now rather than at the next poll."""
        self._wake.set()

    async def pending(self) -> int:
        async with self._sessions() as session:
            return await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            ) or 0

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        backoff = Backoff(cap=self._settings.retry_max_seconds)
        outage = False
        try:
            while True:
                try:
                    if producer is None:
                        producer = self._producer_factory()
                        await producer.start()
                    sent = await self.publish_pending(producer)
                    if outage:
                        log.info("kafka reachable again; outbox relay resumed")
                        outage = False
                    backoff.reset()
                    if sent < self._settings.relay_batch_size:
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

    async def publish_pending(self, producer: AIOKafkaProducer) -> int:
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.position)
                    .limit(self._settings.relay_batch_size)
                )
            ).all()
        if not rows:
            return 0
        # Queue every record first, then wait for all acks: one round trip per batch, order kept per key.
        deliveries = [
            await producer.send(
                self._settings.physical_topic(row.topic),
                value=row.value,
                key=row.key.encode() if row.key is not None else None,
                headers=[(name, value.encode()) for name, value in row.headers],
            )
            for row in rows
        ]
        await asyncio.gather(*deliveries)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.position.in_([row.position for row in rows]))
                .values(published_at=utcnow())
            )
        self.published_total += len(rows)
        log.debug("outbox published", extra={"count": len(rows)})
        return len(rows)


async def _close_quietly(producer: AIOKafkaProducer) -> None:
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as
    # stop() completes, and the relay would then retry forever instead of shutting down.
    try:
        async with asyncio.timeout(5):
            await producer.stop()
    except Exception:  # a producer that never connected may fail to stop; nothing to salvage
        pass
