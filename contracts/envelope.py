"""The envelope every event travels in: CloudEvents 1.0, Kafka protocol binding, binary mode.

On the wire: the Kafka key is the aggregate id, the value is the payload as JSON, and the
envelope's attributes are `ce_*` headers, so any CloudEvents-aware tool can read our topics:

    ce_specversion=1.0  ce_id=<uuid>  ce_type=CityJoined  ce_schemaversion=1
    ce_source=/icc/membership  ce_time=<RFC 3339 UTC>  ce_subject=<aggregate id>
    ce_correlationid=<uuid>  content-type=application/json
"""

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.events import Event

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    correlation_id: UUID = Field(default_factory=uuid4)
    data: Event

    @property
    def type(self) -> str:
        return self.data.type

    @property
    def schema_version(self) -> int:
        return self.data.version

    @property
    def key(self) -> str:
        return self.data.key


def wrap(event: Event, *, service: str, correlation_id: UUID | None = None) -> Envelope:
    return Envelope(
        source=f"/icc/{service}",
        data=event,
        **({"correlation_id": correlation_id} if correlation_id else {}),
    )


def to_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(envelope.id),
        "ce_type": envelope.type,
        "ce_schemaversion": str(envelope.schema_version),
        "ce_source": envelope.source,
        "ce_time": envelope.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "ce_subject": envelope.key,
        "ce_correlationid": str(envelope.correlation_id),
        "content-type": CONTENT_TYPE,
    }
    return [(name, value.encode()) for name, value in attributes.items()]


def to_value(envelope: Envelope) -> bytes:
    return envelope.data.model_dump_json().encode()


class UnreadableEvent(ValueError):
    """The record is not an event this consumer can read; the reason says why (for the dead-letter topic)."""


def from_record(headers: list[tuple[str, bytes]] | tuple, value: bytes | None) -> Envelope:
    """Read a Kafka record back into an Envelope, or raise UnreadableEvent with the reason."""
    try:
        attributes = {name: raw.decode() for name, raw in headers}
    except (UnicodeDecodeError, AttributeError, ValueError) as err:
        raise UnreadableEvent(f"headers are not UTF-8 text: {err}") from err
    missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_time") if h not in attributes]
    if missing:
        raise UnreadableEvent(f"not a CloudEvent: missing header(s) {', '.join(missing)}")
    version_text = attributes.get("ce_schemaversion", "1")
    if not version_text.isdigit():
        raise UnreadableEvent(f"ce_schemaversion {version_text!r} is not a number")
    event_class = Event.registry.get((attributes["ce_type"], int(version_text)))
    if event_class is None:
        raise UnreadableEvent(f"unknown event type {attributes['ce_type']!r} version {version_text}")
    try:
        data = event_class.model_validate_json(value or b"")
        return Envelope(
            id=attributes["ce_id"],
            occurred_at=attributes["ce_time"],
            source=attributes["ce_source"],
            correlation_id=attributes.get("ce_correlationid") or attributes["ce_id"],
            data=data,
        )
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise UnreadableEvent(f"invalid {attributes['ce_type']} v{version_text}: {details}") from err
