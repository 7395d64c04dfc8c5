"""The AsyncAPI 3.0 document of every topic, generated from the contract code: `make asyncapi`."""

import json
import sys
from collections import defaultdict
from typing import Any

from pydantic.json_schema import models_json_schema

from contracts.events import Event
from contracts.topics import CONSUMES, PARTITIONS, PRODUCES, Topic, dead_letter_topic

CLOUDEVENT_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binding, binary mode: attributes travel as ce_* headers",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid", "description": "unique event id: consumers dedupe on it"},
        "ce_type": {"type": "string", "description": "event type, e.g. CityJoined"},
        "ce_schemaversion": {"type": "string", "description": "payload schema version (default 1)"},
        "ce_source": {"type": "string", "description": "producing service, e.g. /icc/membership"},
        "ce_time": {"type": "string", "format": "date-time", "description": "when it happened, UTC"},
        "ce_subject": {"type": "string", "description": "aggregate id, equal to the Kafka key"},
        "ce_correlationid": {"type": "string", "format": "uuid", "description": "the flow this event belongs to"},
        "ce_authtype": {"enum": ["app_user", "service_account", "system"],
                        "description": "who caused the event: a person, a program, or the producing service itself"},
        "ce_authid": {"type": "string", "description": "the person's or program's subject id at the identity provider, or the "
                      "service's name for system; never a token"},
        "content-type": {"const": "application/json"},
    },
}

def document() -> dict[str, Any]:
    event_types = sorted(Event.registry.values(), key=lambda e: (e.topic.value, e.type, e.version))
    _, schemas = models_json_schema([(e, "serialization") for e in event_types], ref_template="#/components/schemas/{model}")
    by_topic: dict[Topic, list[type[Event]]] = defaultdict(list)
    for event_type in event_types:
        by_topic[event_type.topic].append(event_type)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, types in by_topic.items():
        channel = topic.value.replace(".", "_")
        channels[channel] = {
            "address": topic.value,
            "description": f"keyed by {types[0].key_field}; {PARTITIONS} partitions",
            "messages": {f"{e.type}_v{e.version}": {"$ref": f"#/components/messages/{e.type}_v{e.version}"} for e in types},
        }
        for e in types:
            messages[f"{e.type}_v{e.version}"] = {
                "name": e.type,
                "title": f"{e.type} v{e.version}",
                "summary": (e.__doc__ or "").strip().splitlines()[0] if e.__doc__ else e.type,
                "contentType": "application/json",
                "headers": CLOUDEVENT_HEADERS,
                "payload": {"$ref": f"#/components/schemas/{e.__name__}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": e.key_field}}},
            }
    for service, topics in PRODUCES.items():
        for topic in topics:
            if topic in by_topic:
                operations[f"{service}_publishes_{topic.name.lower()}"] = {
                    "action": "send", "channel": {"$ref": f"#/channels/{topic.value.replace('.', '_')}"}
                }
        for topic in CONSUMES[service]:
            operations[f"{service}_receives_{topic.name.lower()}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{topic.value.replace('.', '_')}"}
            }
        channels[f"{service}_dead_letter"] = {
            "address": dead_letter_topic(service),
            "description": "records this service's consumers could not process: original key, value and headers, "
            "plus dlq_reason, dlq_consumer, dlq_topic, dlq_partition, dlq_offset, dlq_failed_at headers",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "ICC network platform events", "version": "1.0.0",
                 "description": "Integration events between membership, events, travel and finance."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.get("$defs", {})},
    }


if __name__ == "__main__":
    json.dump(document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
