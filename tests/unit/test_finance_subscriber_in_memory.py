"""Fast checks of finance's subscriber wiring with FastStream's in-memory TestKafkaBroker (no Kafka).
The same behaviours are proven over the real broker in tests/e2e."""

from datetime import date
from uuid import uuid4

import pytest
from faststream.kafka import TestKafkaBroker
from sqlalchemy import select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from services.common.db import OutboxMessage
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.support import running


@pytest.fixture
async def finance(tmp_path):
    app = build_app(FinanceSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db"))
    async with running(app) as client, TestKafkaBroker(app.state.runtime.broker) as broker:
        yield client, broker, app.state.runtime


async def publish_joined(broker, joined_on: date, city_id=None, envelope=None):
    envelope = envelope or wrap(
        CityJoined(city_id=city_id or uuid4(), name="Tampere", country="FI", european=True, joined_on=joined_on),
        service="membership",
    )
    await broker.publish(
        to_value(envelope), "icc.membership.cities", key=envelope.key.encode(),
        headers={name: value.decode() for name, value in to_headers(envelope)},
    )
    return envelope


async def test_city_joined_issues_the_contribution_and_queues_invoice_issued(finance) -> None:
    client, broker, runtime = finance
    joined = await publish_joined(broker, date(2026, 10, 2))
    [invoice] = (await client.get("/invoices")).json()
    assert (invoice["city_id"], invoice["year"], invoice["amount"]) == (str(joined.data.city_id), 2027, "5000.00")
    async with runtime.sessions() as session:
        [queued] = (await session.scalars(select(OutboxMessage))).all()
    assert dict(queued.headers)["ce_type"] == "InvoiceIssued"
    assert dict(queued.headers)["ce_correlationid"] == str(joined.correlation_id)


async def test_a_redelivered_city_joined_is_recognised(finance) -> None:
    client, broker, runtime = finance
    joined = await publish_joined(broker, date(2026, 1, 15))
    await publish_joined(broker, date(2026, 1, 15), envelope=joined)
    assert len((await client.get("/invoices")).json()) == 1
    assert runtime.consumer.totals["duplicates"] == 1


async def test_garbage_goes_to_the_dead_letter_outbox_not_into_a_loop(finance) -> None:
    client, broker, runtime = finance
    await broker.publish(b"\x00garbage", "icc.membership.cities")
    await publish_joined(broker, date(2026, 1, 15))
    assert len((await client.get("/invoices")).json()) == 1
    async with runtime.sessions() as session:
        topics = sorted(m.topic for m in await session.scalars(select(OutboxMessage)))
    assert topics == ["icc.finance.dead-letter", "icc.finance.invoices"]
