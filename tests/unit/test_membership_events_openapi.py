"""The OpenAPI docs of membership and events describe every endpoint, with examples, and keep the
public contract of API.md (paths and fields may be added, never renamed)."""

import pytest

from services.events.app import build_app as build_events
from services.events.settings import EventsSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "sqlite+aiosqlite:///:memory:"}


def documents() -> dict[str, dict]:
    return {
        "membership": build_membership(MembershipSettings(**NO_BROKER)).openapi(),
        "events": build_events(EventsSettings(**NO_BROKER)).openapi(),
    }


DOCS = documents()
OPERATIONS = [
    (service, path, method, operation)
    for service, doc in DOCS.items()
    for path, item in doc["paths"].items()
    if path not in ("/health", "/ready")
    for method, operation in item.items()
]


def schema(doc: dict, ref_or_schema: dict) -> dict:
    if "$ref" in ref_or_schema:
        return doc["components"]["schemas"][ref_or_schema["$ref"].rsplit("/", 1)[-1]]
    if ref_or_schema.get("type") == "array":
        return schema(doc, ref_or_schema["items"])
    if "anyOf" in ref_or_schema:  # an optional body
        return schema(doc, next(s for s in ref_or_schema["anyOf"] if s.get("type") != "null"))
    return ref_or_schema


@pytest.mark.parametrize(("service", "path", "method", "operation"), OPERATIONS, ids=[f"{m.upper()} {p}" for _, p, m, _ in OPERATIONS])
def test_every_endpoint_is_described_with_examples(service, path, method, operation) -> None:
    doc = DOCS[service]
    assert operation.get("summary") and operation.get("description"), "say what it does and why"
    if body := operation.get("requestBody"):
        assert schema(doc, body["content"]["application/json"]["schema"]).get("examples"), "request example"
    [(status, success)] = [(s, r) for s, r in operation["responses"].items() if s.startswith("2")]
    content = success.get("content", {})
    if "application/json" in content and "text/csv" not in content:
        assert schema(doc, content["application/json"]["schema"]).get("examples"), f"{status} response example"
    else:
        assert content["text/csv"]["example"].startswith("participation,")
    if method in ("post", "put", "delete") and path != "/workshops" and path != "/cities":
        refusals = [s for s in operation["responses"] if s.startswith("4") and s != "422"]
        assert refusals, "document how it refuses"
        for s in refusals:
            media = operation["responses"][s]["content"]["application/json"]
            assert media.get("example") or media.get("examples")


def test_the_public_contract_of_api_md_is_all_there() -> None:
    paths = {service: {(m.upper(), p) for p, item in doc["paths"].items() for m in item} for service, doc in DOCS.items()}
    assert {
        ("POST", "/cities"), ("GET", "/cities/{city_id}"), ("GET", "/cities"),
        ("POST", "/cities/{city_id}/statement-of-intent"), ("POST", "/cities/{city_id}/financial-agreement"),
        ("POST", "/cities/{city_id}/index-questionnaire"), ("GET", "/index-queue"), ("POST", "/cities/{city_id}/withdrawal"),
    } <= paths["membership"]
    assert {
        ("POST", "/workshops"), ("GET", "/workshops/{workshop_id}"), ("POST", "/workshops/{workshop_id}/registrations"),
        ("GET", "/workshops/{workshop_id}/registrations"), ("DELETE", "/workshops/{workshop_id}/registrations/{registration_id}"),
        ("POST", "/workshops/{workshop_id}/cancellation"),
    } <= paths["events"]
    fields = lambda service, name: set(DOCS[service]["components"]["schemas"][name]["properties"])  # noqa: E731
    assert {"id", "name", "country", "population", "european", "status", "small_city", "joined_on"} <= fields("membership", "CityView")
    assert {"title", "kind", "host_city", "host_country", "starts_on", "ends_on", "capacity", "funded_quota_per_city"} <= fields(
        "events", "WorkshopRequest")
    assert {"id", "status"} <= fields("events", "WorkshopView")
    assert {"id", "city_id", "delegate_email", "status", "funded"} <= fields("events", "RegistrationView")
    assert {"city_id", "delegate_name", "delegate_email"} <= fields("events", "RegistrationRequest")
    assert DOCS["membership"]["paths"]["/cities/{city_id}/index-questionnaire"]["post"]["responses"].keys() >= {"202"}
