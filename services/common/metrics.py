"""Metrics of one service, in Prometheus' text format at `GET /metrics` (README: "Metrics").

One registry per app, not prometheus_client's global one: several apps in one test process keep
their own counts. What the relay and the consumer count anyway (records published, events applied,
dead letters) is read from them at scrape time, so their hot paths do no more than before; the
outbox backlog and the consumer lag are measured at scrape time; HTTP requests are counted by
`ObserveHttp`, the FastStream broker's batches by FastStream's own Prometheus middleware."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.tracing import Tracing, remote_parent

log = logging.getLogger("icc.metrics")
disable_created_metrics()  # no `_created` series beside each counter: a start time per series is noise here

# Probes and scrapes: counted, never traced (one every few seconds, telling nothing about a change).
UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "icc_http_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.http_seconds = Histogram(
            "icc_http_request_duration_seconds", "Time to answer an HTTP request (to its last byte), by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.outbox_pending = Gauge(
            "icc_outbox_pending", "Outbox rows not yet published to Kafka (read at scrape time)", registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "icc_consumer_lag", "Records on a partition assigned to this process not yet committed by its consumer group "
            "(end offset - committed offset, read at scrape time)", ["topic", "partition"], registry=self.registry,
        )

    def broker_middleware(self) -> KafkaPrometheusMiddleware:
        """FastStream's consumer metrics (faststream_received_messages_total, ..._duration_seconds...)
        into this registry: one `message` per batch, its records counted in received_messages_total."""
        return KafkaPrometheusMiddleware(registry=self.registry, app_name=self.service)

    def count(self, relay: Any, consumer: Any) -> None:
        """Expose what the relay and the consumer (if any) count themselves."""
        self.registry.register(_Counts(relay, consumer))

    async def scrape(self, pending: Callable[[], Awaitable[int]], broker: KafkaBroker | None) -> bytes:
        """The text exposition, with the outbox backlog and the consumer lag measured now; one that
        cannot be measured (database or broker away) is left out rather than failing the scrape."""
        await asyncio.gather(self._measure_backlog(pending), self._measure_lag(broker))
        return generate_latest(self.registry)

    async def _measure_backlog(self, pending: Callable[[], Awaitable[int]]) -> None:
        try:
            async with asyncio.timeout(2):
                self.outbox_pending.set(await pending())
        except Exception as err:
            self.outbox_pending.set(float("nan"))
            log.debug("outbox backlog not measured", extra={"error": repr(err)})

    async def _measure_lag(self, broker: KafkaBroker | None) -> None:
        measured: dict[tuple[str, str], int] = {}
        try:
            async with asyncio.timeout(2):
                for subscriber in broker.subscribers if broker is not None else ():
                    consumer = getattr(subscriber, "consumer", None)
                    partitions = sorted(consumer.assignment()) if consumer is not None else []
                    if not partitions:
                        continue
                    ends = await consumer.end_offsets(partitions)
                    # Committed offsets of assigned partitions come from the consumer's cache.
                    committed = dict(zip(partitions, await asyncio.gather(*(consumer.committed(p) for p in partitions))))
                    if never := [p for p, offset in committed.items() if offset is None]:
                        committed |= await consumer.beginning_offsets(never)  # nothing committed: from the start
                    for partition in partitions:
                        measured[(partition.topic, str(partition.partition))] = max(ends[partition] - committed[partition], 0)
        except Exception as err:
            measured = {}
            log.debug("consumer lag not measured", extra={"error": repr(err)})
        # All at once (no await between): a scrape running alongside never sees half of them. Partitions
        # this process no longer holds are gone: their lag is another replica's to report.
        self.consumer_lag.clear()
        for labels, lag in measured.items():
            self.consumer_lag.labels(*labels).set(lag)


class _Counts:
    """Counters kept by the relay and the consumer, read when scraped."""

    def __init__(self, relay: Any, consumer: Any) -> None:
        self.relay, self.consumer = relay, consumer

    def collect(self) -> Iterator[Metric]:
        published = CounterMetricFamily("icc_outbox_published", "Outbox records the broker acknowledged (publish rate: rate() of it)")
        published.add_metric([], self.relay.published_total)
        yield published
        if self.consumer is None:
            return
        events = CounterMetricFamily(
            "icc_consumer_events", "Records the consumer took in, by outcome: applied, duplicates (applied before), "
            "skipped (a type this service has no use for), dead_lettered", labels=["outcome"],
        )
        for outcome, total in self.consumer.totals.items():
            events.add_metric([outcome], total)
        yield events
        letters = CounterMetricFamily(
            "icc_dead_letters", "Records sent to the dead-letter topic, by kind of reason: unreadable (not an event "
            "this service can read), handler_failed (its handler failed twice)", labels=["kind"],
        )
        for kind in sorted({"unreadable", "handler_failed", *self.consumer.dead_letters}):
            letters.add_metric([kind], self.consumer.dead_letters[kind])
        yield letters


def _route(scope: Scope) -> str:
    # The route's template (/cities/{city_id}), never the raw path: one series per route, not per id.
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


class ObserveHttp:
    """ASGI middleware: counts and times every request by route template, method and status, and,
    with tracing on, wraps it in a server span (continuing the caller's `traceparent`).
    Plain ASGI rather than BaseHTTPMiddleware: streamed answers (the dashboard's) pass as they are."""

    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing) -> None:
        self.app, self.metrics, self.tracing = app, metrics, tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless an answer starts: an exception that escaped becomes a 500 outside

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        tracer = self.tracing.tracer
        span = None
        if tracer is not None and scope["path"] not in UNTRACED:
            parent = remote_parent(next((v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None))
            span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes={"http.request.method": method})
        started = perf_counter()
        try:
            if span is None:
                await self.app(scope, receive, send_noting_status)
            else:
                with trace.use_span(span, end_on_exit=False):
                    await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = perf_counter() - started
            route = _route(scope)
            labels = (route, method, str(status))
            self.metrics.http_requests.labels(*labels).inc()
            self.metrics.http_seconds.labels(*labels).observe(elapsed)
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                span.end()
