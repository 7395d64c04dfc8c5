"""Observability over the real broker: one trace from a signature in membership to finance applying
the CityJoined it caused (and the invoice event finance emits then); the metrics of records
published, consumed and the consumer lag."""

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.e2e.test_join_to_invoice import join
from tests.support import eventually, header, metric, read_topic, running


async def test_one_trace_from_the_signature_through_kafka_to_finance_applying_city_joined(platform) -> None:
    spans = InMemorySpanExporter()
    membership_app, finance_app = platform.membership(), platform.finance()
    for app in (membership_app, finance_app):
        app.state.runtime.tracing.export_to(spans, batch=False)
    async with running(membership_app) as membership, running(finance_app) as finance:
        city = await join(membership)

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        await eventually(invoiced, what="the contribution invoice")

        def finished(name: str, service: str):
            return [s for s in spans.get_finished_spans() if s.name == name and s.resource.attributes["service.name"] == service]

        async def applied():
            return finished("apply CityJoined", "finance")

        [signature] = finished("POST /cities/{city_id}/financial-agreement", "membership")
        [applying] = await eventually(applied, what="finance's span applying CityJoined")
        assert signature.kind is SpanKind.SERVER and signature.attributes["http.response.status_code"] == 200
        assert applying.kind is SpanKind.CONSUMER
        # one trace: finance's span is the child of the request's, through the outbox and Kafka
        assert applying.context.trace_id == signature.context.trace_id
        assert applying.parent.span_id == signature.context.span_id and applying.parent.is_remote
        # the other requests began traces of their own
        [creation] = finished("POST /cities", "membership")
        assert creation.context.trace_id != signature.context.trace_id

        trace_id = format(signature.context.trace_id, "032x")
        cities = await read_topic(platform.kafka, platform.topic("icc.membership.cities"), at_least=2)
        [joined] = [r for r in cities if header(r, "ce_type") == "CityJoined"]
        # version-trace-parent-flags (sampled, and the trace id random: 03)
        assert header(joined, "traceparent") == f"00-{trace_id}-{signature.context.span_id:016x}-03"
        assert applying.attributes["messaging.message.id"] == header(joined, "ce_id")
        # and on: the invoice event finance emitted while applying it carries finance's span
        [issued] = await read_topic(platform.kafka, platform.topic("icc.finance.invoices"), at_least=1)
        assert header(issued, "traceparent") == f"00-{trace_id}-{applying.context.span_id:016x}-03"


async def test_metrics_count_what_was_published_and_consumed_and_the_lag_drains_to_zero(platform) -> None:
    membership_app, finance_app = platform.membership(), platform.finance()
    async with running(membership_app) as membership, running(finance_app) as finance:
        city = await join(membership)  # CityApplied, CityJoined (and statements: 2 events at least)

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        await eventually(invoiced, what="the contribution invoice")

        async def membership_published():
            text = (await membership.get("/metrics")).text
            return metric(text, "icc_outbox_published_total") >= 2 and metric(text, "icc_outbox_pending") == 0 and text

        await eventually(membership_published, what="membership's outbox published and empty")

        async def finance_caught_up():
            text = (await finance.get("/metrics")).text
            lags = metric(text, "icc_consumer_lag", every=True)
            return lags and all(lag == 0 for lag in lags.values()) and text

        text = await eventually(finance_caught_up, what="finance's consumer lag reported and at zero")
        lags = metric(text, "icc_consumer_lag", every=True)
        assert {labels["topic"] for labels in map(dict, lags)} >= {platform.topic("icc.membership.cities")}
        assert metric(text, "icc_consumer_events_total", outcome="applied") >= 1
        # FastStream's own consumer metrics, one series per subscribed topic's batches
        received = metric(text, "faststream_received_messages_total", every=True)
        assert sum(received.values()) >= 1 and {dict(k)["app_name"] for k in received} == {"finance"}
        assert metric(text, "icc_outbox_published_total") >= 1  # finance's own InvoiceIssued
