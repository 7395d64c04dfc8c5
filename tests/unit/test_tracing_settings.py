"""Traces are off unless OTEL_EXPORTER says otlp; the endpoint is the collector's base URL, as
OTEL_EXPORTER_OTLP_ENDPOINT means to OpenTelemetry's own SDKs."""

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from services.common.tracing import Tracing, current_traceparent, remote_parent
from services.finance.settings import FinanceSettings


def test_tracing_is_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER", raising=False)
    tracing = Tracing.from_settings(FinanceSettings())
    assert tracing.tracer is None and tracing.provider is None
    assert current_traceparent() is None  # no span current: emitted events carry no traceparent


def test_otlp_sends_to_the_collector_named_by_its_base_url(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.monitoring:4318/")
    monkeypatch.setenv("OTEL_TRACES_SAMPLE_RATIO", "0.25")
    tracing = Tracing.from_settings(FinanceSettings())
    try:
        assert tracing.tracer is not None
        assert tracing.provider.resource.attributes["service.name"] == "finance"
        [processor] = tracing.provider._active_span_processor._span_processors
        assert processor._batch_processor._exporter._endpoint == "http://collector.monitoring:4318/v1/traces"
        assert "0.25" in tracing.provider.sampler.get_description()
    finally:
        tracing.shutdown()  # no span was made: nothing to send to a collector that is not there


def test_an_emitted_event_carries_the_current_span_as_its_traceparent() -> None:
    tracing = Tracing("finance")
    tracing.export_to(InMemorySpanExporter(), batch=False)
    with tracing.tracer.start_as_current_span("request") as span:
        context = span.get_span_context()
        assert current_traceparent() == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert current_traceparent() is None


@pytest.mark.parametrize("value", ["zipkin", "jaeger"])
def test_an_unknown_exporter_is_refused_at_start(monkeypatch, value) -> None:
    monkeypatch.setenv("OTEL_EXPORTER", value)
    with pytest.raises(ValidationError, match="otel_exporter|OTEL_EXPORTER"):
        FinanceSettings()


def test_a_malformed_traceparent_starts_a_new_trace_rather_than_failing() -> None:
    from opentelemetry import trace

    assert not trace.get_current_span(remote_parent("not-a-traceparent")).get_span_context().is_valid
    assert remote_parent(None) is None
