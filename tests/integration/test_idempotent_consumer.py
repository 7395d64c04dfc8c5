"""The consumer machinery against a real database (SQLite and PostgreSQL), records built by hand:
duplicates, poison, a failing handler, and the uniqueness that backs the contribution rule."""

import asyncio
import itertools
from datetime import date
from uuid import UUID, uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityApplied, CityJoined, CityLeft
from services.common.consumer import EventConsumer
from services.common.db import OutboxMessage, ProcessedEvent
from services.finance import handlers as finance_handlers
from services.finance.app import build_app
from services.finance.db import StoredInvoice, StoredMember
from services.finance.settings import FinanceSettings
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
offsets = itertools.count()


def record(event=None, *, value: bytes | None = None, headers=None) -> ConsumerRecord:
    if event is not None:
        envelope = wrap(event, service="membership")
        headers, value = to_headers(envelope), to_value(envelope)
    return ConsumerRecord("icc.membership.cities", 0, next(offsets), 0, 0, None, value, None, 0, 0, headers or [])


def joined(city_id: UUID | None = None, on: date = date(2026, 3, 1)) -> CityJoined:
    return CityJoined(city_id=city_id or uuid4(), name="Ghent", country="BE", european=True, joined_on=on)


@pytest.fixture
async def finance(databases):
    app = build_app(FinanceSettings(**NO_BROKER, **databases("finance")))
    async with running(app):
        yield app.state.runtime


async def count(runtime, model, *where) -> int:
    async with runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_the_same_city_joined_delivered_twice_gives_one_invoice(finance) -> None:
    duplicate = record(joined())
    first = await finance.consumer.apply([duplicate, duplicate])  # twice in one batch
    again = await finance.consumer.apply([duplicate])  # and redelivered later
    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (1, 1, 0, 1)
    assert await count(finance, StoredInvoice) == 1
    assert await count(finance, ProcessedEvent, ProcessedEvent.consumer == "finance") == 1


async def test_replaying_the_whole_topic_changes_nothing(finance) -> None:
    history = [record(joined()) for _ in range(20)]
    await finance.consumer.apply(history)
    invoices, outbox = await count(finance, StoredInvoice), await count(finance, OutboxMessage)
    replay = await finance.consumer.apply(history)
    assert replay.duplicates == 20 and replay.applied == 0
    assert (await count(finance, StoredInvoice), await count(finance, OutboxMessage)) == (invoices, outbox) == (20, 20)


async def test_a_second_join_event_for_the_same_year_does_not_invoice_again(finance) -> None:
    city = uuid4()
    await finance.consumer.apply([record(joined(city, date(2026, 3, 1))), record(joined(city, date(2026, 5, 1)))])
    assert await count(finance, StoredInvoice) == 1


async def test_a_malformed_record_is_dead_lettered_with_its_reason_and_the_next_one_applied(finance) -> None:
    poison = record(value=b"\x00 not json", headers=[("ce_id", b"x"), ("ce_type", b"CityJoined"), ("ce_source", b"/x"), ("ce_time", b"2026-01-01T00:00:00Z")])
    no_envelope = record(value=b'{"hello": "world"}', headers=[])
    outcome = await finance.consumer.apply([poison, no_envelope, record(joined())])
    assert outcome.applied == 1 and len(outcome.dead_lettered) == 2
    assert await count(finance, StoredInvoice) == 1
    async with finance.sessions() as session:
        letters = (await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "icc.finance.dead-letter"))).all()
    reasons = sorted(dict(letter.headers)["dlq_reason"] for letter in letters)
    assert reasons[0].startswith("invalid CityJoined v1") and reasons[1].startswith("not a CloudEvent")
    assert {letter.value for letter in letters} == {poison.value, no_envelope.value}
    # redelivered poison is not dead-lettered twice
    assert (await finance.consumer.apply([poison])).duplicates == 1


async def test_a_handler_that_fails_dead_letters_its_event_only(finance, monkeypatch) -> None:
    cursed = uuid4()
    original = finance.consumer.handlers[CityJoined]

    async def failing_for_one_city(event, uow):
        await original(event, uow)  # writes first, so the savepoint must really undo it
        if event.city_id == cursed:
            raise RuntimeError("ledger closed")

    monkeypatch.setitem(finance.consumer.handlers, CityJoined, failing_for_one_city)
    outcome = await finance.consumer.apply([record(joined()), record(joined(cursed)), record(joined())])
    assert outcome.applied == 2
    assert outcome.dead_lettered == ["CityJoined handler failed: RuntimeError: ledger closed"]
    assert await count(finance, StoredInvoice) == 2
    assert await count(finance, StoredInvoice, StoredInvoice.city_id == cursed) == 0


async def test_a_failing_handler_leaves_no_trace_on_what_earlier_events_of_its_batch_made(finance, monkeypatch) -> None:
    """The batch's new members and invoices go in at commit from the objects themselves (not through
    the ORM, which would expire them when the savepoint rolls back): what a failed handler changed on
    them is undone with it."""
    city = uuid4()

    async def leaves_then_fails(event, uow):
        member = await uow.members.get(event.city_id)
        member.left_on = event.effective_on
        for invoice in await uow.invoices.contributions_of(event.city_id):
            invoice.credited = invoice.amount
        raise RuntimeError("ledger closed")

    monkeypatch.setitem(finance.consumer.handlers, CityLeft, leaves_then_fails)
    left = CityLeft(city_id=city, effective_on=date(2026, 6, 30))
    outcome = await finance.consumer.apply([record(joined(city)), record(left)])
    assert (outcome.applied, len(outcome.dead_lettered)) == (1, 1)
    async with finance.sessions() as session:
        member = await session.get(StoredMember, city)
        invoices = (await session.scalars(select(StoredInvoice).where(StoredInvoice.city_id == city))).all()
    assert member.left_on is None
    assert invoices and all(invoice.credited == 0 for invoice in invoices)


async def test_what_a_failed_handler_made_is_not_found_by_the_next_events_of_its_batch(finance, monkeypatch) -> None:
    city = uuid4()
    original = finance.consumer.handlers[CityJoined]
    first, again = record(joined(city)), record(joined(city))  # the join, and the same join sent again

    async def fails_on_the_first(event, uow):
        await original(event, uow)  # makes the member and its invoice, then fails
        if str(uow.cause.id) == dict(first.headers)["ce_id"].decode():
            raise RuntimeError("ledger closed")

    monkeypatch.setitem(finance.consumer.handlers, CityJoined, fails_on_the_first)
    outcome = await finance.consumer.apply([first, again])
    assert (outcome.applied, len(outcome.dead_lettered)) == (1, 1)
    assert await count(finance, StoredMember, StoredMember.city_id == city) == 1
    assert await count(finance, StoredInvoice, StoredInvoice.city_id == city) == 1


async def test_a_dead_lettered_event_is_not_processed_so_its_replay_applies_it_once(finance, monkeypatch) -> None:
    cursed = record(joined())
    original = finance.consumer.handlers[CityJoined]

    async def not_yet(event, uow):
        raise RuntimeError("ledger closed")

    monkeypatch.setitem(finance.consumer.handlers, CityJoined, not_yet)
    assert len((await finance.consumer.apply([cursed])).dead_lettered) == 1
    assert await count(finance, ProcessedEvent, ProcessedEvent.consumer == "finance") == 0
    monkeypatch.setitem(finance.consumer.handlers, CityJoined, original)  # the fix
    replayed = await finance.consumer.apply([cursed])  # `python -m deploy.ops dead-letters replay`
    again = await finance.consumer.apply([cursed])  # replayed twice by mistake
    assert (replayed.applied, again.applied, again.duplicates) == (1, 0, 1)
    assert await count(finance, StoredInvoice) == 1


async def test_events_finance_has_no_use_for_are_skipped(finance) -> None:
    applied = CityApplied(city_id=uuid4(), name="X", country="FR", population=1, european=True, small_city=True, applied_on=date(2026, 1, 1))
    outcome = await finance.consumer.apply([record(applied), record(CityLeft(city_id=uuid4(), effective_on=date(2026, 1, 1)))])
    assert (outcome.skipped, outcome.applied, outcome.dead_lettered) == (1, 1, [])


async def test_the_database_refuses_a_second_contribution_for_the_same_city_and_year(finance) -> None:
    city = uuid4()
    async with finance.sessions() as session:
        first = StoredInvoice.contribution(city, 2026, date(2026, 1, 1))
        replaced, amount = first.id, first.amount
        session.add(first)
        await session.commit()
        session.add(StoredInvoice.contribution(city, 2026, date(2026, 1, 2)))
        with pytest.raises(IntegrityError):
            await session.commit()
    async with finance.sessions() as session:  # once cancelled, the year may be invoiced again, once
        session.add(StoredInvoice.new(city, "contribution", 2026, amount, date(2026, 6, 1), replaces=replaced))
        await session.commit()
        session.add(StoredInvoice.new(city, "contribution", 2026, amount, date(2026, 6, 2), replaces=replaced))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_a_batch_of_events_seen_before_and_new_ones_applies_only_the_new(finance) -> None:
    a, b, c, d = (record(joined()) for _ in range(4))
    await finance.consumer.apply([a, b])
    outcome = await finance.consumer.apply([b, c, a, d, c])
    assert (outcome.applied, outcome.duplicates) == (2, 3)
    assert await count(finance, StoredInvoice) == 4
    assert await count(finance, ProcessedEvent, ProcessedEvent.consumer == "finance") == 4


async def test_two_deliveries_of_the_same_batch_at_once_apply_it_once(finance) -> None:
    """A rebalance can hand one batch to two consumers while the first is still applying it: the
    INSERT ... ON CONFLICT DO NOTHING of the second waits for the first's commit, then finds every
    event taken (on PostgreSQL, row locks on the unique index; on SQLite, the writer lock)."""
    batch = [record(joined()) for _ in range(200)]
    first, second = await asyncio.gather(finance.consumer.apply(batch), finance.consumer.apply(batch))
    assert sorted([(first.applied, first.duplicates), (second.applied, second.duplicates)]) == [(0, 200), (200, 0)]
    assert await count(finance, StoredInvoice) == 200
    assert await count(finance, OutboxMessage) == 200


async def test_what_one_consumer_applied_another_consumer_still_applies(finance) -> None:
    event = record(joined())
    other = EventConsumer("finance-replica-check", finance.consumer.handlers, finance.unit_of_work)
    assert (await finance.consumer.apply([event])).applied == 1
    assert (await other.apply([event])).applied == 1  # processed events are per consumer
    assert (await other.apply([event])).duplicates == 1
    assert await count(finance, StoredInvoice) == 1  # the contribution rule still holds
    assert await count(finance, ProcessedEvent) == 2
