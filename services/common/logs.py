"""Structured logs: one JSON object per line, with whatever `extra=` fields the caller adds, and
`trace_id`/`span_id` when a span is current (services.common.tracing), `event_id` while a consumer
applies an event (set by services.common.consumer): a line leads to its trace and its event."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace

# The id of the event being applied in this task, if any.
event_id: ContextVar[str | None] = ContextVar("event_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"], entry["span_id"] = format(span.trace_id, "032x"), format(span.span_id, "016x")
        if (applying := event_id.get()) is not None:
            entry["event_id"] = applying
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka narrates every reconnect attempt at ERROR; our own retry loops say it once, better.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL if level != "DEBUG" else logging.DEBUG)
    logging.getLogger("icc").info("logging configured", extra={"service": service})
