"""The outbox relay over the real broker: order, restart, and its share of SQLite's writer lock."""

import asyncio
import uuid
from datetime import date

from aiokafka import AIOKafkaProducer
from sqlalchemy import update

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from contracts.topics import Topic
from services.common.db import OutboxMessage
from services.common.kafka import client_args
from tests.support import consumed, eventually, header, read_topic, running

KEYS = [f"aggregate-{i}" for i in range(7)]


async def write_outbox(app, first: int, count: int, per_transaction: int = 150, keys: str = "aggregate") -> None:
    """Outbox rows numbered first..first+count-1, keys `<keys>-<i>` in turn, a few transactions' worth."""
    runtime = app.state.runtime
    for start in range(first, first + count, per_transaction):
        async with runtime.unit_of_work() as uow:
            for n in range(start, min(start + per_transaction, first + count)):
                uow.add_outbox(message_id=f"m-{n}", topic=Topic.INVOICES.value, key=f"{keys}-{n % len(KEYS)}",
                               value=str(n).encode(), headers=[["n", str(n)]])
            await uow.commit()


async def drained(app) -> bool:
    return await app.state.runtime.relay.pending() == 0


def numbers_by_key(records) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key.decode(), []).append(int(header(r, "n")))
    return by_key


async def test_the_relay_publishes_in_order_and_after_a_restart_resends_only_what_was_not_marked(platform) -> None:
    topic = platform.topic(Topic.INVOICES.value)
    first_life = platform.finance()
    async with running(first_life):
        await write_outbox(first_life, 0, 1200)  # more than two relay batches
        await eventually(lambda: drained(first_life), timeout=60, what="the first 1200 rows published")

    # Stopped: the marks of the last 100 rows are lost (a crash between send and mark), and 300 more
    # rows are committed while no relay runs.
    second_life = platform.finance()
    async with second_life.state.runtime.sessions() as session, session.begin():
        await session.execute(update(OutboxMessage).where(OutboxMessage.position > 1100).values(published_at=None))
    async with running(second_life):
        await write_outbox(second_life, 1200, 300)
        await eventually(lambda: drained(second_life), timeout=60, what="the outbox drained after the restart")

    records = await read_topic(platform.kafka, topic, at_least=1600, timeout=60)
    numbers = [int(header(r, "n")) for r in records]
    assert sorted(set(numbers)) == list(range(1500))  # nothing lost
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == list(range(1100, 1200))  # only those re-sent
    for key, seen in numbers_by_key(records).items():
        once = [n for i, n in enumerate(seen) if n not in seen[:i]]
        assert once == sorted(once), f"{key}: published out of order"


async def test_the_relay_publishes_while_the_consumer_works_through_a_backlog(platform_sqlite) -> None:
    """SQLite has one writer at a time; a consumer applying batch after batch must not starve the
    relay (InvoiceIssued frozen, then a burst): it gets its turn at the lock between two batches."""
    backlog = 4000
    producer = AIOKafkaProducer(**client_args(platform_sqlite.kafka), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sends = []
        for _ in range(backlog):
            envelope = wrap(CityJoined(city_id=uuid.uuid4(), name="Ghent", country="BE", european=True, joined_on=date(2026, 3, 1)),
                            service="membership")
            sends.append(await producer.send(platform_sqlite.topic(Topic.CITIES.value), value=to_value(envelope),
                                             key=envelope.key.encode(), headers=to_headers(envelope)))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    app = platform_sqlite.finance()  # starts with the whole backlog waiting for it
    runtime = app.state.runtime
    async with running(app):
        await consumed(app)
        await eventually(lambda: _published_some(runtime), timeout=60, what="the relay publishing an InvoiceIssued")
        applied_then = runtime.consumer.totals["applied"]
        assert applied_then < backlog, "the relay published nothing until the consumer had finished its backlog"
        await eventually(lambda: _published_all(runtime, backlog), timeout=120, what="every InvoiceIssued published")


async def _published_some(runtime) -> bool:
    return runtime.relay.published_total > 0


async def _published_all(runtime, count: int) -> bool:
    return runtime.relay.published_total >= count
