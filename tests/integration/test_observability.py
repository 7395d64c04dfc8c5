"""What a service tells about itself, without a broker: `/metrics` (requests by route, the outbox
backlog, dead letters by kind), the trace an emitted event carries, and log lines that name the
trace and the event being applied."""

import json
import logging
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from services.common.db import OutboxMessage
from services.common.logs import JsonFormatter
from services.finance.app import build_app as build_finance
from services.finance.settings import FinanceSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from tests.integration.test_idempotent_consumer import joined, record
from tests.support import metric, running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
CITY = {"name": "Oslo", "country": "NO", "population": 709_000, "foreign_born_share": "0.28"}


@pytest.fixture
async def membership(databases):
    app = build_membership(MembershipSettings(**NO_BROKER, **databases("membership")))
    async with running(app) as client:
        yield app, client


@pytest.fixture
async def finance(databases):
    app = build_finance(FinanceSettings(**NO_BROKER, **databases("finance")))
    async with running(app) as client:
        yield app, client


class Lines(logging.Handler):
    """Log lines as the service writes them (formatted when logged: in the logger's context)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logged():
    lines = Lines()
    logging.getLogger("icc").addHandler(lines)
    yield lines.lines
    logging.getLogger("icc").removeHandler(lines)


def traced(event, traceparent: str):
    """The record of `event` as a service with tracing on publishes it."""
    envelope = wrap(event, service="membership")
    return record(value=to_value(envelope), headers=[*to_headers(envelope), ("traceparent", traceparent.encode())])


async def test_requests_are_counted_by_route_template_method_and_status_and_emitted_events_wait_in_the_backlog(membership) -> None:
    _, client = membership
    before = (await client.get("/metrics")).text
    assert metric(before, "icc_outbox_pending") == 0
    unknown = [uuid4(), uuid4()]
    for city_id in unknown:
        assert (await client.get(f"/cities/{city_id}")).status_code == 404
    assert (await client.post("/cities", json=CITY)).status_code == 201  # emits CityApplied; no broker to take it

    after = (await client.get("/metrics")).text
    unknown_city = {"route": "/cities/{city_id}", "method": "GET", "status": "404"}
    assert metric(after, "icc_http_requests_total", **unknown_city) - metric(before, "icc_http_requests_total", **unknown_city) == 2
    assert metric(after, "icc_http_request_duration_seconds_count", **unknown_city) == 2
    assert metric(after, "icc_http_requests_total", route="/cities", method="POST", status="201") == 1
    assert metric(after, "icc_http_requests_total", route="/metrics", method="GET", status="200") == 1  # the one before
    assert not any(str(city_id) in after for city_id in unknown)  # one series per route, not per id
    assert metric(after, "icc_outbox_pending") == 1
    assert metric(after, "icc_outbox_published_total") == 0


async def test_metrics_answer_without_a_token(membership) -> None:
    _, client = membership
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_dead_letters_are_counted_by_kind_once_their_batch_committed(finance, monkeypatch) -> None:
    app, client = finance
    consumer = app.state.runtime.consumer
    cursed = uuid4()
    original = consumer.handlers[CityJoined]

    async def failing_for_one_city(event, uow):
        if event.city_id == cursed:
            raise RuntimeError("ledger closed")
        await original(event, uow)

    monkeypatch.setitem(consumer.handlers, CityJoined, failing_for_one_city)
    poison = record(value=b'{"hello": "world"}', headers=[])
    outcome = await consumer.apply([poison, record(joined(cursed)), record(joined())])
    assert outcome.applied == 1 and len(outcome.dead_lettered) == 2

    text = (await client.get("/metrics")).text
    assert metric(text, "icc_dead_letters_total", kind="unreadable") == 1
    assert metric(text, "icc_dead_letters_total", kind="handler_failed") == 1
    # redelivered, the poison is a duplicate: not dead-lettered, not counted, again
    await consumer.apply([poison])
    assert metric((await client.get("/metrics")).text, "icc_dead_letters_total", kind="unreadable") == 1


async def test_an_applied_event_logs_its_event_id_and_trace_and_what_it_emits_carries_the_trace_on(finance, monkeypatch, logged) -> None:
    app, _ = finance
    runtime = app.state.runtime
    spans = InMemorySpanExporter()
    runtime.tracing.export_to(spans, batch=False)
    original = runtime.consumer.handlers[CityJoined]

    async def logging_handler(event, uow):
        logging.getLogger("icc.finance.test").info("invoicing a new member", extra={"city_id": str(event.city_id)})
        await original(event, uow)

    monkeypatch.setitem(runtime.consumer.handlers, CityJoined, logging_handler)
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the span that emitted it, elsewhere
    city_joined = traced(joined(), upstream)
    assert (await runtime.consumer.apply([city_joined])).applied == 1

    [line] = [line for line in logged if line["msg"] == "invoicing a new member"]
    [applying] = [s for s in spans.get_finished_spans() if s.name == "apply CityJoined"]
    assert line["event_id"] == dict(city_joined.headers)["ce_id"].decode()
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c" == format(applying.context.trace_id, "032x")
    assert line["span_id"] == format(applying.context.span_id, "016x")
    assert format(applying.parent.span_id, "016x") == "b7ad6b7169203331"
    # the invoice event emitted while applying it goes on in the same trace, child of this span
    async with runtime.sessions() as session:
        [issued] = (await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "icc.finance.invoices"))).all()
    assert dict(issued.headers)["traceparent"] == f"00-0af7651916cd43dd8448eb211c80319c-{line['span_id']}-01"
    # outside the event, no event id
    logging.getLogger("icc.finance.test").info("between events")
    assert "event_id" not in logged[-1] and "trace_id" not in logged[-1]


async def test_with_tracing_off_nothing_is_traced_and_log_lines_still_name_the_event(finance, monkeypatch, logged) -> None:
    app, client = finance
    runtime = app.state.runtime
    assert runtime.tracing.tracer is None  # OTEL_EXPORTER defaults to none
    original = runtime.consumer.handlers[CityJoined]

    async def logging_handler(event, uow):
        logging.getLogger("icc.finance.test").info("invoicing a new member")
        await original(event, uow)

    monkeypatch.setitem(runtime.consumer.handlers, CityJoined, logging_handler)
    city_joined = traced(joined(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    await runtime.consumer.apply([city_joined])
    [line] = [line for line in logged if line["msg"] == "invoicing a new member"]
    assert line["event_id"] == dict(city_joined.headers)["ce_id"].decode() and "trace_id" not in line
    async with runtime.sessions() as session:
        [issued] = (await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "icc.finance.invoices"))).all()
    assert "traceparent" not in dict(issued.headers)


async def test_a_request_is_traced_with_its_route_continuing_its_callers_trace_into_what_it_emits(membership) -> None:
    app, client = membership
    spans = InMemorySpanExporter()
    app.state.runtime.tracing.export_to(spans, batch=False)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # a caller already tracing
    created = await client.post("/cities", json=CITY, headers={"traceparent": caller})
    assert created.status_code == 201
    await client.get("/health")  # probes are not traced
    [span] = spans.get_finished_spans()
    assert span.name == "POST /cities" and span.attributes["http.route"] == "/cities"
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    async with app.state.runtime.sessions() as session:
        [applied] = (await session.scalars(select(OutboxMessage))).all()
    assert dict(applied.headers)["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span.context.span_id:016x}-01"
