"""Traces (OpenTelemetry): one trace from an HTTP request through the outbox and Kafka to the
consumers that apply its events, and on to what they emit in turn.

- The HTTP middleware (services.common.metrics.ObserveHttp) opens a server span per request,
  continuing the caller's `traceparent` if it sent one.
- `UnitOfWork.emit` stores the W3C `traceparent` of the current span in the outbox row's headers;
  the relay sends a row's headers as the Kafka record's, so it travels with the event.
- The consumer opens a span per event it applies, child of the record's `traceparent`: our batch
  consumer decodes raw records itself, so it reads the header itself (FastStream's telemetry
  middleware sees one message per batch, not the events in it).

Each service has its own provider (several apps in one test process each name their service).
Off unless an exporter is set (OTEL_EXPORTER=otlp): then no span is made and nothing is recorded,
so the hot paths pay one attribute read."""

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()


class Tracing:
    """A service's tracer; `tracer` is None while no exporter is set (tracing off)."""

    def __init__(self, service: str, sample_ratio: float = 1.0) -> None:
        self.service = service
        self.sample_ratio = sample_ratio
        self.provider: TracerProvider | None = None
        self.tracer: trace.Tracer | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Tracing":
        tracing = cls(settings.service, settings.otel_traces_sample_ratio)
        if settings.otel_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            base = settings.otel_exporter_otlp_endpoint
            # As OTEL_EXPORTER_OTLP_ENDPOINT means: the collector's base URL; unset, the exporter's
            # own default (http://localhost:4318/v1/traces, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
            tracing.export_to(OTLPSpanExporter(endpoint=f"{base.rstrip('/')}/v1/traces" if base else None))
        return tracing

    def export_to(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        """Turn tracing on (if it was off), sending finished spans to `exporter`: in batches, in the
        background (a collector), or each as it ends (`batch=False`: a test's in-memory exporter)."""
        if self.provider is None:
            self.provider = TracerProvider(
                resource=Resource.create({"service.name": self.service}),
                sampler=ParentBased(TraceIdRatioBased(self.sample_ratio)),
            )
            self.tracer = self.provider.get_tracer("icc")
        self.provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))

    def shutdown(self) -> None:
        """Send what is still buffered, then stop."""
        if self.provider is not None:
            self.provider.shutdown()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, if there is one (what an emitted event carries)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None  # the common case with tracing off: no dict, no formatting
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def remote_parent(traceparent: str | None) -> Context | None:
    """The context a `traceparent` header names, to start a child span in (None: start a new trace)."""
    return _W3C.extract({"traceparent": traceparent}) if traceparent else None
