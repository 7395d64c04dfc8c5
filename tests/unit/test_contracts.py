from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import BaseModel, ValidationError

from contracts.envelope import UnreadableEvent, from_record, to_headers, to_value, wrap
from contracts.events import CityJoined, InvoiceIssued
from contracts.money import Money, to_cents
from contracts.reference import coe_members_on, is_coe_member, is_country_code
from contracts.topics import Topic


class Priced(BaseModel):
    amount: Money


def test_money_is_exact_and_serialises_with_two_places() -> None:
    assert Priced(amount="5000").model_dump_json() == '{"amount":"5000.00"}'
    assert Priced(amount=Decimal("0.10")).amount + Priced(amount="0.20").amount == Decimal("0.30")


@pytest.mark.parametrize("bad", [0.1, "1.005", "NaN", "abc"])
def test_money_refuses_floats_sub_cents_and_non_numbers(bad: object) -> None:
    with pytest.raises(ValidationError):
        Priced(amount=bad)


def test_rounding_is_half_up_to_the_cent() -> None:
    assert to_cents(Decimal("2.345")) == Decimal("2.35")
    assert to_cents(Decimal("2.344")) == Decimal("2.34")


def test_coe_membership_is_dated_not_geographic() -> None:
    today = date(2026, 11, 26)
    assert len(coe_members_on(today)) == 46
    for transcontinental in ["TR", "AM", "AZ", "GE", "CY"]:
        assert is_coe_member(transcontinental, today)
    for outside in ["MA", "IL", "CA", "JP", "MX", "US", "AU", "KR", "BY", "XK", "VA", "KZ"]:
        assert not is_coe_member(outside, today)


def test_russia_was_european_until_2022_03_15() -> None:
    assert is_coe_member("RU", date(2022, 3, 15))
    assert not is_coe_member("RU", date(2022, 3, 16))


def test_country_codes_are_iso_alpha_2_plus_kosovo() -> None:
    assert is_country_code("FR") and is_country_code("XK")
    assert not is_country_code("ZZ") and not is_country_code("FRA")


def test_envelope_round_trips_through_cloudevents_headers() -> None:
    event = CityJoined(city_id=uuid4(), name="Oslo", country="NO", european=True, joined_on=date(2026, 2, 1))
    envelope = wrap(event, service="membership")
    headers = dict(to_headers(envelope))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"CityJoined"
    assert headers["ce_source"] == b"/icc/membership"
    assert headers["ce_subject"] == str(event.city_id).encode()
    assert headers["content-type"] == b"application/json"
    assert from_record(list(headers.items()), to_value(envelope)) == envelope
    assert event.topic is Topic.CITIES and envelope.key == str(event.city_id)


def test_an_envelope_copy_with_another_id_or_event_says_its_own() -> None:
    """The header texts are made once per envelope; a copy must not keep the original's."""
    envelope = wrap(CityJoined(city_id=uuid4(), name="Ghent", country="BE", european=True, joined_on=date(2026, 3, 1)), service="membership")
    assert (envelope.ce_id, envelope.ce_correlationid) == (str(envelope.id), str(envelope.correlation_id))
    other_city = envelope.data.model_copy(update={"city_id": uuid4()})
    copy = envelope.model_copy(update={"id": uuid4(), "correlation_id": uuid4(), "data": other_city})
    assert (copy.ce_id, copy.ce_correlationid, copy.key) == (str(copy.id), str(copy.correlation_id), str(other_city.city_id))
    assert dict(to_headers(copy))["ce_id"] == str(copy.id).encode()


def test_money_travels_as_a_decimal_string() -> None:
    invoice = InvoiceIssued(
        invoice_id=uuid4(), city_id=uuid4(), kind="contribution", year=2026, amount="5000.00",
        issued_on=date(2026, 1, 1), due_on=date(2026, 3, 2),
    )
    assert b'"amount":"5000.00"' in to_value(wrap(invoice, service="finance"))


def test_a_newer_producer_may_add_fields() -> None:
    event = CityJoined(city_id=uuid4(), name="Oslo", country="NO", european=True, joined_on=date(2026, 2, 1))
    headers = to_headers(wrap(event, service="membership"))
    value = to_value(wrap(event, service="membership"))[:-1] + b',"mayor":"new field"}'
    assert from_record(headers, value).data == event


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "missing header"),
        ([("ce_id", b"1"), ("ce_type", b"CityJoined"), ("ce_source", b"/x"), ("ce_time", b"2026-01-01T00:00:00Z")], b"{not json", "invalid CityJoined"),
        ([("ce_id", b"1"), ("ce_type", b"CityJoined"), ("ce_source", b"/x"), ("ce_time", b"2026-01-01T00:00:00Z"), ("ce_schemaversion", b"9")], b"{}", "unknown event type"),
        ([("ce_id", b"\xff"), ("ce_type", b"CityJoined")], b"{}", "not UTF-8"),
    ],
)
def test_unreadable_records_say_why(headers: list, value: bytes, reason: str) -> None:
    with pytest.raises(UnreadableEvent, match=reason):
        from_record(headers, value)


def test_the_asyncapi_document_lists_every_topic_and_event_from_the_code() -> None:
    from contracts.asyncapi import document
    from contracts.events import Event

    doc = document()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert {t.value for t in {e.topic for e in Event.registry.values()}} <= addresses
    assert "icc.finance.dead-letter" in addresses
    for required in ["CityJoined_v1", "WorkshopScheduled_v1", "TravelClaimed_v1", "InvoiceIssued_v1"]:
        assert required in doc["components"]["messages"]
    assert doc["components"]["schemas"]["InvoiceIssued"]["properties"]["amount"]["type"] == "string"
