"""A service's dead letters: read them, and produce chosen ones back to the topic they came from.

A dead letter (services/common/consumer.py `_dead_letter`) is the original record (key, value,
headers) plus dlq_reason, dlq_consumer, dlq_topic, dlq_partition, dlq_offset and dlq_failed_at.
Replaying one is safe: a record is dead-lettered in the transaction that did NOT apply it, and its
event id is not recorded as processed then, so a replay after a fix is applied once; a second
replay of the same event is a duplicate the consumer skips."""

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import dead_letter_topic
from services.common.kafka import client_args
from services.common.settings import KafkaConnection

DLQ_HEADERS = ("dlq_reason", "dlq_consumer", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_failed_at")


@dataclass(frozen=True)
class DeadLetter:
    partition: int  # where it sits in the dead-letter topic
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, record: ConsumerRecord) -> "DeadLetter":
        return cls(record.partition, record.offset, record.key, record.value or b"", list(record.headers or ()))

    def header(self, name: str) -> str | None:
        return next((raw.decode(errors="replace") for key, raw in self.headers if key == name), None)

    @property
    def ref(self) -> str:
        """How the operator names it: `partition:offset` in the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str | None:
        return self.header("dlq_topic")

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(key, raw) for key, raw in self.headers if key not in DLQ_HEADERS]

    def line(self) -> str:
        what = self.header("ce_type") or "(no type)"
        return (f"{self.ref:>8}  {self.header('dlq_failed_at') or '?':32}  {self.original_topic or '?'}"
                f"[{self.header('dlq_partition') or '?'}@{self.header('dlq_offset') or '?'}]  {what}  "
                f"id={self.header('ce_id') or '-'}  reason: {self.header('dlq_reason') or '?'}")


async def partitions(kafka: KafkaConnection, topics: list[str]) -> list[TopicPartition]:
    """Every partition of those of `topics` that exist."""
    admin = AIOKafkaAdminClient(**client_args(kafka), client_id="icc-ops", request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
        return sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"])
    finally:
        await admin.close()


async def read(kafka: KafkaConnection, topic: str, stall_seconds: float = 30.0) -> list[DeadLetter]:
    """Every record of the dead-letter topic, up to its end when we look, in partition then offset order."""
    assigned = await partitions(kafka, [topic])
    if not assigned:
        return []
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False, client_id="icc-ops")
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in assigned if ends[tp] > await consumer.position(tp)}
        deadline = time.monotonic() + stall_seconds
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            if fetched:
                deadline = time.monotonic() + stall_seconds
            elif time.monotonic() > deadline:
                raise TimeoutError(f"no records from {topic} for {stall_seconds:.0f}s though its end offsets say there are more")
            for tp, records in fetched.items():
                letters.extend(DeadLetter.of(r) for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return sorted(letters, key=lambda d: (d.partition, d.offset))
    finally:
        await consumer.stop()


def physical_dead_letter_topic(service: str, prefix: str) -> str:
    return f"{prefix}{dead_letter_topic(service)}"


class NotFound(LookupError):
    pass


def choose(letters: list[DeadLetter], offsets: list[str]) -> list[DeadLetter]:
    """The dead letters named `partition:offset` (as `list` prints them) or by a bare offset when
    only one partition has it."""
    chosen = []
    for wanted in offsets:
        if ":" in wanted:
            partition, offset = (int(part) for part in wanted.split(":", 1))
            found = [d for d in letters if (d.partition, d.offset) == (partition, offset)]
        else:
            found = [d for d in letters if d.offset == int(wanted)]
            if len(found) > 1:
                raise NotFound(f"offset {wanted} is in partitions {', '.join(str(d.partition) for d in found)}: "
                               f"say which, as partition:offset ({', '.join(d.ref for d in found)})")
        if not found:
            raise NotFound(f"no dead letter at {wanted}; `dead-letters list` shows them as partition:offset")
        chosen.append(found[0])
    return chosen


async def replay(kafka: KafkaConnection, letters: list[DeadLetter]) -> None:
    """Produce each back to its original topic, with its original key, value and headers
    (idempotent producer, acks from all in-sync replicas)."""
    producer = AIOKafkaProducer(**client_args(kafka), enable_idempotence=True, acks="all", client_id="icc-ops-replay")
    await producer.start()
    try:
        for letter in letters:
            if letter.original_topic is None:
                raise ValueError(f"dead letter {letter.ref} has no dlq_topic header: it cannot say where it came from")
            await producer.send_and_wait(letter.original_topic, value=letter.value, key=letter.key, headers=letter.original_headers)
    finally:
        await producer.stop()
