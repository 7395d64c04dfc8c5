"""Idempotent batch consumers with dead letters: exactly-once effects over at-least-once delivery.

For each batch from Kafka, in ONE database transaction:
  1. read every record into an Envelope; records this service does not handle are skipped, and
     records it cannot read (not a CloudEvent, unknown version, invalid payload) are dead-lettered;
  2. record (consumer, event id) as processed for the whole batch in one INSERT ... ON CONFLICT
     DO NOTHING RETURNING: the ids it returns are new, the others were applied before and are skipped;
  3. let the unit of work prefetch, in bulk, the state the new events touch;
  4. apply the handler of each new event;
  5. commit, and only then commit the Kafka offsets (ack).
A handler that raises is retried once in isolation (a savepoint per event) and, if it fails
again, its record goes to the service's dead-letter topic, with the reason, through the outbox
in the same transaction; the rest of the batch goes on. A database that is unreachable is not
the message's fault: the batch is rewound (nack) and retried after a back-off.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from opentelemetry.trace import SpanKind
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError

from contracts.envelope import Envelope, UnreadableEvent, from_record
from contracts.events import Event
from contracts.topics import dead_letter_topic
from services.common.db import ProcessedEvent, UnitOfWork, utcnow
from services.common.logs import event_id as logged_event_id
from services.common.retry import Backoff
from services.common.sqlite import IN_PIPELINE
from services.common.tracing import Tracing, remote_parent

log = logging.getLogger("icc.consumer")

Handler = Callable[[Any, Any], Awaitable[None]]
YIELD_EVERY = 50  # events applied between two turns of the event loop within a batch
FETCH_MAX_WAIT_MS = 20  # how long the broker holds a fetch that finds nothing new (see subscribe)


class HandlerFailed(Exception):
    """Raised inside a shared transaction when one handler fails, to redo the batch event by event."""


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: list[str] = field(default_factory=list)
    dead_letter_kinds: Counter[str] = field(default_factory=Counter)  # unreadable | handler_failed


def _is_infrastructure(err: BaseException) -> bool:
    # Connection loss, locks, serialisation failures: the database's fault, never the message's.
    return isinstance(err, OperationalError) or (isinstance(err, DBAPIError) and err.connection_invalidated)


def record_ref(record: ConsumerRecord) -> str:
    return f"kafka:{record.topic}:{record.partition}:{record.offset}"


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


class EventConsumer:
    def __init__(
        self,
        name: str,
        handlers: dict[type[Event], Handler],
        unit_of_work: Callable[[], UnitOfWork],
        retry_max_seconds: float = 5.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.name = name
        self.handlers = handlers
        self._unit_of_work = unit_of_work
        self._handled_types = {event_type.type for event_type in handlers}
        self._backoff = Backoff(cap=retry_max_seconds)
        self.totals = {"applied": 0, "duplicates": 0, "skipped": 0, "dead_lettered": 0}
        self.dead_letters: Counter[str] = Counter()  # by kind, committed ones only (services.common.metrics)
        self.tracing = tracing or Tracing(name)

    @property
    def topics(self) -> list[str]:
        return sorted({event_type.topic.value for event_type in self.handlers})

    def subscribe(
        self, broker: Any, physical_topic: Callable[[str], str], group_id: str, batch_size: int, group_instance_id: str | None = None
    ) -> None:
        broker.subscriber(
            *[physical_topic(t) for t in self.topics],
            batch=True,
            group_id=group_id,
            # Static membership (a replica's stable id): a restarted replica gets its partitions back
            # within the session timeout, without a rebalance of the others.
            group_instance_id=group_instance_id,
            auto_offset_reset="earliest",
            max_records=batch_size,
            # A poll returns as soon as records arrive; but after an empty one FastStream sleeps this
            # long, and a record arriving then waits for it: a few ms bound the latency it adds.
            batch_timeout_ms=5,
            # aiokafka sends no new fetch to a broker while one is in flight there, and a fetch for
            # partitions with nothing new waits this long on the broker: records arriving meanwhile on
            # a partition left out of it (its last records were still being consumed) waited up to
            # the default 500 ms. Short, it bounds that wait; idle, travel then takes 3.3% of a core
            # (1.5% at 500 ms).
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            # We ack ourselves, after the database commit (ACK_FIRST would be at-most-once), and
            # decide per record what a failure means (NACK_ON_ERROR would replay a poison forever).
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_records,
            title=f"{self.name}-consumer",
        )(self.on_batch)

    async def on_batch(self, message: KafkaMessage) -> None:
        records: Sequence[ConsumerRecord] = message.raw_message
        try:
            outcome = await self.apply(records)
        except Exception as err:
            delay = self._backoff.next()
            log.error(
                "batch not applied; it will be redelivered",
                extra={"consumer": self.name, "records": len(records), "error": repr(err), "retry_in_s": round(delay, 2)},
            )
            await message.nack()  # rewind to the batch's first offsets: nothing is committed past it
            await asyncio.sleep(delay)
            return
        self._backoff.reset()
        for name, count in (("applied", outcome.applied), ("duplicates", outcome.duplicates),
                            ("skipped", outcome.skipped), ("dead_lettered", len(outcome.dead_lettered))):
            self.totals[name] += count
        await self.after_commit(outcome)
        await message.ack()

    async def after_commit(self, outcome: BatchOutcome) -> None:
        """The seam between the database commit and the Kafka ack (fault tests crash here)."""
        if outcome.dead_lettered:
            log.warning(
                "records dead-lettered",
                extra={"consumer": self.name, "count": len(outcome.dead_lettered), "reasons": outcome.dead_lettered[:5]},
            )

    async def apply(self, records: Iterable[ConsumerRecord]) -> BatchOutcome:
        readable: list[tuple[ConsumerRecord, Envelope]] = []
        unreadable: list[tuple[ConsumerRecord, str]] = []
        skipped = 0
        for record in records:
            event_type = _header(record, "ce_type")
            if event_type is not None and event_type not in self._handled_types:
                skipped += 1  # a fact on a shared topic that this service has no use for
                continue
            try:
                readable.append((record, from_record(record.headers or (), record.value)))
            except UnreadableEvent as err:
                unreadable.append((record, str(err)))
        pipeline = IN_PIPELINE.set(True)  # its transaction takes turns with requests for SQLite's writer lock
        try:
            outcome = await self._apply(readable, unreadable, isolate=False)
        except HandlerFailed:
            outcome = await self._apply(readable, unreadable, isolate=True)
        finally:
            IN_PIPELINE.reset(pipeline)
        outcome.skipped = skipped
        # Counted once committed: a batch rolled back and redelivered would dead-letter its records again.
        self.dead_letters.update(outcome.dead_letter_kinds)
        return outcome

    @contextmanager
    def _applying(self, record: ConsumerRecord, envelope: Envelope, event_id: str) -> Iterator[None]:
        """While an event is applied: its id in every log line, and with tracing on, a span, child of
        the span that emitted it (the record's `traceparent`), current for what its handler emits."""
        token = logged_event_id.set(event_id)
        try:
            tracer = self.tracing.tracer
            if tracer is None:
                yield
                return
            with tracer.start_as_current_span(
                f"apply {envelope.type}",
                context=remote_parent(_header(record, "traceparent")),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.consumer.group.name": self.name,
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "messaging.message.id": event_id,
                    "icc.event.type": envelope.type,
                },
            ):
                yield
        finally:
            logged_event_id.reset(token)

    async def _apply(
        self,
        readable: list[tuple[ConsumerRecord, Envelope]],
        unreadable: list[tuple[ConsumerRecord, str]],
        *,
        isolate: bool,
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        async with self._unit_of_work() as uow:
            new = await self._claim_new(
                uow, [(env.ce_id, _actor(env)) for _, env in readable] + [(record_ref(r), None) for r, _ in unreadable]
            )
            await uow.prefetch([env.data for _, env in readable if env.ce_id in new])
            for position, (record, envelope) in enumerate(readable, start=1):
                if position % YIELD_EVERY == 0:
                    # A batch is CPU work that never waits: let the loop run the relay's sends and
                    # acks, the broker heartbeats and HTTP requests now and then.
                    await asyncio.sleep(0)
                event_id = envelope.ce_id
                if event_id not in new:
                    outcome.duplicates += 1
                    continue
                new.discard(event_id)  # the same event twice in one batch: the second is a duplicate
                uow.correlation_id = envelope.correlation_id
                uow.cause = envelope  # handlers that trace figures to events read its id and time
                handler = self.handlers[type(envelope.data)]
                if isolate:
                    try:
                        with self._applying(record, envelope, event_id):
                            async with uow.savepoint():
                                await handler(envelope.data, uow)
                        outcome.applied += 1
                    except Exception as err:
                        if _is_infrastructure(err):
                            raise
                        reason = f"{envelope.type} handler failed: {type(err).__name__}: {err}"
                        self._dead_letter(uow, record, reason)
                        # Never applied, so not processed: its replay (after a fix) must apply it.
                        await self._unclaim(uow, event_id)
                        outcome.dead_lettered.append(reason)
                        outcome.dead_letter_kinds["handler_failed"] += 1
                else:
                    try:
                        with self._applying(record, envelope, event_id):
                            await handler(envelope.data, uow)
                    except Exception as err:
                        if _is_infrastructure(err):
                            raise
                        raise HandlerFailed from err
                    outcome.applied += 1
            for record, reason in unreadable:
                ref = record_ref(record)
                if ref not in new:
                    outcome.duplicates += 1
                    continue
                new.discard(ref)
                self._dead_letter(uow, record, reason)
                outcome.dead_lettered.append(reason)
                outcome.dead_letter_kinds["unreadable"] += 1
            await uow.commit()
        return outcome

    async def _claim_new(self, uow: UnitOfWork, events: list[tuple[str, str | None]]) -> set[str]:
        """Record the batch's event ids (with who caused each) as processed by this consumer, in one
        statement, and return those that were not already: INSERT ... ON CONFLICT DO NOTHING
        RETURNING. It commits with the effects or not at all, so a rolled-back batch leaves its
        events to be applied again."""
        if not events:
            return set()
        now = utcnow()
        rows = [{"consumer": self.name, "event_id": i, "processed_at": now, "actor": actor} for i, actor in dict(events).items()]
        insert_ = pg_insert if uow.session.bind.dialect.name == "postgresql" else sqlite_insert
        table = ProcessedEvent.__table__
        statement = insert_(table).on_conflict_do_nothing().returning(table.c.event_id)
        return set((await uow.session.execute(statement, rows)).scalars())

    async def _unclaim(self, uow: UnitOfWork, event_id: str) -> None:
        table = ProcessedEvent.__table__
        await uow.session.execute(delete(table).where(table.c.consumer == self.name, table.c.event_id == event_id))

    def _dead_letter(self, uow: UnitOfWork, record: ConsumerRecord, reason: str) -> None:
        headers = [[name, raw.decode(errors="replace")] for name, raw in record.headers or ()]
        headers += [
            ["dlq_reason", reason],
            ["dlq_consumer", self.name],
            ["dlq_topic", record.topic],
            ["dlq_partition", str(record.partition)],
            ["dlq_offset", str(record.offset)],
            ["dlq_failed_at", utcnow().isoformat()],
        ]
        uow.add_outbox(
            message_id=f"dlq-{uuid4()}",
            topic=dead_letter_topic(uow.service),
            key=record.key.decode(errors="replace") if record.key else None,
            value=record.value or b"",
            headers=headers,
        )


def _actor(envelope: Envelope) -> str | None:
    return f"{envelope.actor.auth_type}:{envelope.actor.auth_id}" if envelope.actor else None


async def _raw_records(message: Any) -> Any:
    # Hand the handler the raw records: decoding is ours, so a malformed body cannot fail the batch.
    return message.raw_message
