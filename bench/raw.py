"""The raw reference pipeline, the bench's baseline: what CityJoined -> InvoiceIssued costs with no
framework at all, run as its own process on the same broker and the same database as finance.

aiokafka consume a batch -> one transaction: executemany INSERTs of the rows finance writes for
each event (processed event, member, invoice, ledger entry, two feed entries, outbox row) and the
mark of the previous batch's outbox rows -> commit -> produce InvoiceIssued (CloudEvents headers,
same payload) and wait for the acks -> commit the offsets. No ORM, no pydantic, no dedupe, no
domain: json in, dicts to SQLAlchemy Core, json out.

    KAFKA_BOOTSTRAP_SERVERS=... KAFKA_TOPIC_PREFIX=... DATABASE_URL=... python -m bench.raw
"""

import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import Topic
from services.common.db import OutboxMessage, ProcessedEvent, create_engine, migrate
from services.common.kafka import client_args, create_producer
from services.common.serve import settle_collector
from services.finance.db import activity, invoices, ledger, members
from services.finance.settings import FinanceSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "finance" / "migrations"
CONTRIBUTION = Decimal("5000.00")
outbox, processed = OutboxMessage.__table__, ProcessedEvent.__table__


def effects(record, today: date, now: datetime) -> tuple[dict, dict, dict, dict, list[dict], dict, bytes, list]:
    """The rows and the InvoiceIssued record one CityJoined makes."""
    headers = {name: value.decode() for name, value in record.headers}
    city = json.loads(record.value)
    city_id, joined_on = uuid.UUID(city["city_id"]), date.fromisoformat(city["joined_on"])
    year = joined_on.year + 1 if joined_on.month >= 10 else joined_on.year
    invoice_id, event_id = uuid.uuid4(), str(uuid.uuid4())
    due_on = today + timedelta(days=60)
    value = json.dumps({
        "invoice_id": str(invoice_id), "city_id": str(city_id), "kind": "contribution", "year": year,
        "amount": f"{CONTRIBUTION:.2f}", "issued_on": today.isoformat(), "due_on": due_on.isoformat(),
    }).encode()
    out_headers = [
        ["ce_specversion", "1.0"], ["ce_id", event_id], ["ce_type", "InvoiceIssued"], ["ce_schemaversion", "1"],
        ["ce_source", "/icc/finance"], ["ce_time", now.isoformat().replace("+00:00", "Z")], ["ce_subject", str(invoice_id)],
        ["ce_correlationid", headers.get("ce_correlationid", headers["ce_id"])], ["content-type", "application/json"],
    ]
    return (
        {"consumer": "finance", "event_id": headers["ce_id"], "processed_at": now},
        {"city_id": city_id, "name": city["name"], "european": city["european"], "joined_on": joined_on, "left_on": None},
        {"id": invoice_id, "city_id": city_id, "kind": "contribution", "year": year, "amount": CONTRIBUTION,
         "issued_on": today, "due_on": due_on, "paid": Decimal(0), "credited": Decimal(0)},
        {"event_id": event_id, "event_type": "InvoiceIssued", "correlation_id": out_headers[7][1], "occurred_on": today,
         "year": year, "account": "invoiced", "invoice_kind": "contribution", "budget_line": None, "city_id": city_id,
         "ref": invoice_id, "amount": CONTRIBUTION},
        [{"event_id": headers["ce_id"], "type": "CityJoined", "occurred_at": now, "summary": f"{city['name']} joined"},
         {"event_id": event_id, "type": "InvoiceIssued", "occurred_at": now, "summary": f"Invoice to {city['name']}"}],
        {"message_id": event_id, "topic": Topic.INVOICES.value, "key": str(invoice_id), "value": value,
         "headers": out_headers, "created_at": now},
        value,
        out_headers,
    )


async def write(engine: AsyncEngine, batch: list, sent: list[str]) -> list[tuple]:
    """One transaction: the rows of each CityJoined of `batch` (`effects`), and the mark of the
    outbox rows `sent` after the previous one. Returns the effects (the records to produce)."""
    now = datetime.now(UTC)
    rows = [effects(record, now.date(), now) for record in batch]
    async with engine.begin() as connection:
        await connection.execute(insert(processed), [r[0] for r in rows])
        await connection.execute(insert(members), [r[1] for r in rows])
        await connection.execute(insert(invoices), [r[2] for r in rows])
        await connection.execute(insert(ledger), [r[3] for r in rows])
        await connection.execute(insert(activity), [a for r in rows for a in r[4]])
        await connection.execute(insert(outbox), [r[5] for r in rows])
        if sent:
            await connection.execute(update(outbox).where(outbox.c.message_id.in_(sent)).values(published_at=now))
    return rows


async def run(settings: FinanceSettings) -> None:
    engine = create_engine(settings.db_url, settings.db_schema)
    await migrate(engine, settings.db_schema, MIGRATIONS)
    consumer = AIOKafkaConsumer(
        settings.physical_topic(Topic.CITIES), **client_args(settings.kafka),
        group_id=settings.consumer_group, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    producer = create_producer(settings)
    await consumer.start()
    await producer.start()
    target = settings.physical_topic(Topic.INVOICES)
    settle_collector()  # the garbage collector set as the services set it (services.common.serve)
    sent: list[str] = []  # outbox rows published, marked in the next transaction
    try:
        while True:
            batch = [r for records in (await consumer.getmany(timeout_ms=5, max_records=500)).values() for r in records]
            if not batch:
                continue
            rows = await write(engine, batch, sent)
            deliveries = [
                await producer.send(target, value=value, key=row["key"].encode(),
                                    headers=[(name, text.encode()) for name, text in out_headers])
                for *_, row, value, out_headers in rows
            ]
            await asyncio.gather(*deliveries)
            sent = [r[5]["message_id"] for r in rows]
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
        await engine.dispose()


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(run(FinanceSettings()))
