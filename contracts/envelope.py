"""The envelope every event travels in: CloudEvents 1.0, Kafka protocol binding, binary mode.

On the wire: the Kafka key is the aggregate id, the value is the payload as JSON, and the
envelope's attributes are `ce_*` headers, so any CloudEvents-aware tool can read our topics:

    ce_specversion=1.0  ce_id=<uuid>  ce_type=CityJoined  ce_schemaversion=1
    ce_source=/icc/membership  ce_time=<RFC 3339 UTC>  ce_subject=<aggregate id>
    ce_correlationid=<uuid>  content-type=application/json
    ce_authtype=app_user|service_account|system  ce_authid=<who caused it>

`ce_authtype`/`ce_authid` are CloudEvents' auth-context extension: the person (their identity
provider subject id) or program whose action produced the event, or `system` with the producing
service's name for events a service derives from other events. Never a token.
"""

from datetime import UTC, datetime
from functools import cached_property
from uuid import UUID, uuid4

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.events import Event

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


AuthType = Literal["app_user", "service_account", "system"]


class Actor(BaseModel):
    """Who caused an event: `auth_id` is a person's (or a program's) subject id at the identity
    provider, or the service's name when `auth_type` is `system`. `name` is kept in the producing
    service's audit trail, never put on the wire."""

    model_config = ConfigDict(frozen=True)

    auth_type: AuthType
    auth_id: str
    name: str | None = Field(default=None, exclude=True)

    @classmethod
    def system(cls, service: str) -> "Actor":
        if (actor := _SYSTEM.get(service)) is None:  # one per service: every event it derives names it
            actor = _SYSTEM[service] = cls(auth_type="system", auth_id=service)
        return actor


_SYSTEM: dict[str, Actor] = {}


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    correlation_id: UUID = Field(default_factory=uuid4)
    actor: Actor | None = None
    data: Event

    @property
    def type(self) -> str:
        return self.data.type

    @property
    def schema_version(self) -> int:
        return self.data.version

    # The text forms, made once: the outbox row, its headers, the dedupe table and the ledger each
    # want them (a UUID's str is 0.4 us, and was taken a dozen times per event). Frozen: safe to keep.
    @cached_property
    def key(self) -> str:
        return self.data.key

    @cached_property
    def ce_id(self) -> str:
        return str(self.id)

    @cached_property
    def ce_correlationid(self) -> str:
        return str(self.correlation_id)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "Envelope":
        copy = super().model_copy(update=update, deep=deep)
        for made in ("key", "ce_id", "ce_correlationid"):  # a copy with another id or event makes its own
            copy.__dict__.pop(made, None)
        return copy


def wrap(event: Event, *, service: str, correlation_id: UUID | None = None, actor: Actor | None = None) -> Envelope:
    """A new envelope for an event this service emits. Built without validation: every field is
    made here from values already typed (the event validated itself), and a service emits one per
    fact, so the ~4 us validation would cost more than the rest of the envelope."""
    return Envelope.model_construct(
        id=uuid4(),
        occurred_at=datetime.now(UTC),
        source=f"/icc/{service}",
        correlation_id=correlation_id if isinstance(correlation_id, UUID) else UUID(str(correlation_id)) if correlation_id else uuid4(),
        actor=actor or Actor.system(service),
        data=event,
    )


def to_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in header_texts(envelope)]


def header_texts(envelope: Envelope) -> list[tuple[str, str]]:
    """The `ce_*` headers as text (what an outbox row keeps until the relay sends them as bytes)."""
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": envelope.ce_id,
        "ce_type": envelope.type,
        "ce_schemaversion": str(envelope.schema_version),
        "ce_source": envelope.source,
        "ce_time": envelope.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "ce_subject": envelope.key,
        "ce_correlationid": envelope.ce_correlationid,
        "content-type": CONTENT_TYPE,
    }
    if envelope.actor is not None:
        attributes["ce_authtype"] = envelope.actor.auth_type
        attributes["ce_authid"] = envelope.actor.auth_id
    return list(attributes.items())


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
            actor=_actor(attributes),
            data=data,
        )
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise UnreadableEvent(f"invalid {attributes['ce_type']} v{version_text}: {details}") from err


def _actor(attributes: dict[str, str]) -> Actor | None:
    auth_type, auth_id = attributes.get("ce_authtype"), attributes.get("ce_authid")
    if auth_type not in ("app_user", "service_account", "system") or not auth_id:
        return None  # older events (before actors were recorded), or a producer that does not say
    return Actor(auth_type=auth_type, auth_id=auth_id)
