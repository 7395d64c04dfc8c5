"""Events over HTTP against a real database (SQLite and PostgreSQL): who may register, seats and the
waiting list under concurrency, what is published through the outbox, the organiser's list and CSV.
Membership's facts arrive through the real consumer machinery (records built by hand, no broker)."""

import asyncio
import csv
import io
import itertools
import json
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityApplied, CityJoined, CityLeft, JoinDateCorrected
from services.common.api import today
from services.common.db import OutboxMessage
from services.events.app import build_app
from services.events.domain import Registration
from services.events.settings import EventsSettings
from tests.identity import STAND_IN
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
offsets = itertools.count()
SOON = today() + timedelta(days=30)


def record(event) -> ConsumerRecord:
    envelope = wrap(event, service="membership")
    return ConsumerRecord("icc.membership.cities", 0, next(offsets), 0, 0, envelope.key.encode(), to_value(envelope),
                          None, 0, 0, to_headers(envelope))


@pytest.fixture
async def events(databases):
    app = build_app(EventsSettings(**NO_BROKER, **databases("events")))
    async with running(app) as client:
        yield client, app.state.runtime


async def joined(runtime, name: str = "Oslo", city_id: UUID | None = None) -> str:
    city_id = city_id or uuid4()
    outcome = await runtime.consumer.apply([record(CityJoined(city_id=city_id, name=name, country="NO", european=True,
                                                              joined_on=date(2026, 3, 15)))])
    assert outcome.applied == 1
    return str(city_id)


async def workshop(client, capacity: int = 2, quota: int = 1, starts_on: date = SOON, days: int = 2) -> dict:
    response = await client.post("/workshops", json={
        "title": "Anti-rumour strategies", "kind": "thematic_workshop", "host_city": "Lisbon", "host_country": "PT",
        "starts_on": str(starts_on), "ends_on": str(starts_on + timedelta(days=days - 1)), "capacity": capacity,
        "funded_quota_per_city": quota,
    })
    assert response.status_code == 201, response.text
    return response.json()


async def register(client, workshop_id: str, city_id: str, who: str):
    return await client.post(f"/workshops/{workshop_id}/registrations",
                             json={"city_id": city_id, "delegate_name": who, "delegate_email": f"{who.lower()}@example.org"})


async def published(runtime) -> list[tuple[str, str, dict]]:
    """(ce_type, key, payload) of every event in the outbox, in order."""
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.position))).all()
    return [(dict(row.headers)["ce_type"], row.key, json.loads(row.value)) for row in rows]


async def registrations(runtime) -> int:
    async with runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Registration))


async def test_a_registration_racing_city_joined_gets_a_clear_retryable_answer_never_a_silent_accept(events) -> None:
    client, runtime = events
    event = await workshop(client)
    city_id = str(uuid4())
    early = await register(client, event["id"], city_id, "Ingrid")
    assert early.status_code == 409 and early.json()["retryable"] is True and early.headers["Retry-After"]
    assert "has not (yet) learnt" in early.json()["detail"] and early.json()["code"] == "not_yet_known"
    assert await registrations(runtime) == 0 and [t for t, _, _ in await published(runtime)] == ["WorkshopScheduled"]

    await joined(runtime, city_id=UUID(city_id))  # CityJoined consumed late
    retried = await register(client, event["id"], city_id, "Ingrid")
    assert retried.status_code == 201, retried.text
    assert (retried.json()["status"], retried.json()["funded"], retried.json()["city_name"]) == ("registered", True, "Oslo")


def refused_as_not_a_member(response, *words: str) -> bool:
    body = response.json()
    return (response.status_code, body["code"], body["retryable"]) == (409, "not_a_member", False) and \
        "Retry-After" not in response.headers and all(word in body["detail"] for word in words)


async def test_a_city_that_left_is_refused_for_good_and_its_delegates_already_registered_stay(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=5)
    city_id = await joined(runtime)
    assert (await register(client, event["id"], city_id, "Ingrid")).status_code == 201
    await runtime.consumer.apply([record(CityLeft(city_id=UUID(city_id), effective_on=today() - timedelta(days=1)))])
    refused = await register(client, event["id"], city_id, "Sven")
    assert refused_as_not_a_member(refused, "Oslo withdrew from the network effective"), refused.text
    assert [r["delegate_name"] for r in (await client.get(f"/workshops/{event['id']}/registrations")).json()] == ["Ingrid"]
    assert (await client.get(f"/member-cities/{city_id}")).json()["member"] is False


async def test_a_withdrawal_takes_effect_on_its_date_not_when_it_is_announced(events) -> None:
    """The city is a member up to and including its effective date: its delegates register for an
    event whose first day is on or before it, not for a later one."""
    client, runtime = events
    city_id = await joined(runtime)
    await runtime.consumer.apply([record(CityLeft(city_id=UUID(city_id), effective_on=SOON))])
    view = (await client.get(f"/member-cities/{city_id}")).json()
    assert (view["left_on"], view["member"]) == (str(SOON), True)
    before = await workshop(client, starts_on=SOON)
    after = await workshop(client, starts_on=SOON + timedelta(days=1))
    assert (await register(client, before["id"], city_id, "Ingrid")).status_code == 201
    refused = await register(client, after["id"], city_id, "Ingrid")
    assert refused_as_not_a_member(refused, f"effective {SOON}", "not a member on the event's first day"), refused.text


async def test_an_applicant_city_gets_a_final_refusal_not_a_retry(events) -> None:
    client, runtime = events
    event = await workshop(client)
    city_id = uuid4()
    applied = CityApplied(city_id=city_id, name="Lublin", country="PL", population=339_000, european=True, small_city=False,
                          applied_on=today())
    assert (await runtime.consumer.apply([record(applied)])).applied == 1
    refused = await register(client, event["id"], str(city_id), "Ania")
    assert refused_as_not_a_member(refused, "Lublin is an applicant"), refused.text
    view = (await client.get(f"/member-cities/{city_id}")).json()
    assert (view["applied_on"], view["joined_on"], view["member"]) == (str(today()), None, False)
    # once it joins, its delegates register
    await joined(runtime, "Lublin", city_id)
    assert (await register(client, event["id"], str(city_id), "Ania")).status_code == 201


async def test_a_corrected_join_date_is_what_events_knows(events) -> None:
    client, runtime = events
    city_id = await joined(runtime)
    corrected = JoinDateCorrected(city_id=UUID(city_id), joined_on=date(2026, 4, 2), previous_joined_on=date(2026, 3, 15),
                                  european=True, reason="mistyped agreement date")
    assert (await runtime.consumer.apply([record(corrected)])).applied == 1
    assert (await client.get(f"/member-cities/{city_id}")).json()["joined_on"] == "2026-04-02"


async def test_a_city_known_only_from_city_left_is_refused_not_told_to_retry(events) -> None:
    client, runtime = events
    event = await workshop(client)
    city_id = uuid4()
    await runtime.consumer.apply([record(CityLeft(city_id=city_id, effective_on=date(2026, 6, 30)))])
    refused = await register(client, event["id"], str(city_id), "Sven")
    assert refused_as_not_a_member(refused, "withdrew"), refused.text
    # its CityJoined replayed afterwards (older than the departure) does not readmit it
    await joined(runtime, city_id=city_id)
    assert refused_as_not_a_member(await register(client, event["id"], str(city_id), "Sven"))


async def test_the_waiting_list_moves_up_after_a_cancellation_and_everything_is_published(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=1)
    oslo, ghent, malmo = await joined(runtime, "Oslo"), await joined(runtime, "Ghent"), await joined(runtime, "Malmö")
    seated = (await register(client, event["id"], oslo, "Ingrid")).json()
    first = (await register(client, event["id"], ghent, "Pieter")).json()
    second = (await register(client, event["id"], malmo, "Sven")).json()
    assert [r["status"] for r in (seated, first, second)] == ["registered", "waitlisted", "waitlisted"]
    assert (first["waitlist_position"], second["waitlist_position"]) == (1, 2)

    cancelled = await client.delete(f"/workshops/{event['id']}/registrations/{seated['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    listed = (await client.get(f"/workshops/{event['id']}/registrations")).json()
    assert [(r["delegate_name"], r["status"], r["funded"], r["waitlist_position"]) for r in listed] == [
        ("Pieter", "registered", True, None), ("Sven", "waitlisted", False, 1),
    ]
    again = await client.delete(f"/workshops/{event['id']}/registrations/{seated['id']}")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]

    facts = await published(runtime)
    assert [t for t, _, _ in facts] == ["WorkshopScheduled", "DelegateRegistered", "DelegateRegistered", "DelegateRegistered",
                                        "RegistrationCancelled", "RegistrationPromoted"]
    assert {key for _, key, _ in facts} == {event["id"]}  # one workshop's facts stay in order
    assert facts[-1][2] == {"registration_id": first["id"], "workshop_id": event["id"], "city_id": ghent, "funded": True}
    view = (await client.get(f"/workshops/{event['id']}")).json()
    assert (view["seats_taken"], view["seats_left"], view["waitlisted"]) == (1, 0, 1)


async def test_a_funded_colleague_cancelling_passes_the_funding_on(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=5, quota=1)
    oslo = await joined(runtime)
    funded = (await register(client, event["id"], oslo, "Ingrid")).json()
    colleague = (await register(client, event["id"], oslo, "Sven")).json()
    assert (funded["funded"], colleague["funded"], colleague["participation"]) == (True, False, "self_funded")
    await client.delete(f"/workshops/{event['id']}/registrations/{funded['id']}")
    [now_funded] = (await client.get(f"/workshops/{event['id']}/registrations")).json()
    assert (now_funded["id"], now_funded["funded"], now_funded["participation"]) == (colleague["id"], True, "funded")
    assert (await published(runtime))[-1][:1] == ("RegistrationFundingChanged",)


async def test_concurrent_registrations_never_overbook_and_the_waiting_list_keeps_arrival_order(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=5, quota=2)
    cities = [await joined(runtime, f"City {n}") for n in range(3)]
    answers = await asyncio.gather(*(register(client, event["id"], cities[n % 3], f"Delegate{n}") for n in range(14)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("registered") == 5 and statuses.count("waitlisted") == 9
    listed = (await client.get(f"/workshops/{event['id']}/registrations")).json()
    assert [r["waitlist_position"] for r in listed if r["status"] == "waitlisted"] == list(range(1, 10))
    funded_per_city = {c: sum(1 for r in listed if r["city_id"] == c and r["funded"]) for c in cities}
    assert all(count <= 2 for count in funded_per_city.values())
    async with runtime.sessions() as session:
        sequences = sorted((await session.scalars(select(Registration.sequence))).all())
    assert sequences == list(range(1, 15))
    assert [t for t, _, _ in await published(runtime)].count("DelegateRegistered") == 14


async def test_the_same_delegate_registering_twice_at_once_gets_one_seat(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=10)
    oslo = await joined(runtime)
    answers = await asyncio.gather(*(register(client, event["id"], oslo, "Ingrid") for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    assert await registrations(runtime) == 1


async def test_registration_closes_after_the_last_day(events) -> None:
    client, runtime = events
    oslo = await joined(runtime)
    yesterday = await workshop(client, starts_on=today() - timedelta(days=3), days=3)  # ended yesterday
    ends_today = await workshop(client, starts_on=today() - timedelta(days=1), days=2)
    closed = await register(client, yesterday["id"], oslo, "Late")
    assert closed.status_code == 409 and "closed after its last day" in closed.json()["detail"]
    assert closed.json()["retryable"] is False
    assert (await register(client, ends_today["id"], oslo, "Punctual")).status_code == 201
    assert (await client.get(f"/workshops/{yesterday['id']}")).json()["registration_open"] is False


async def test_rescheduling_publishes_new_dates_and_refuses_a_capacity_below_the_seats_taken(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=2)
    oslo = await joined(runtime)
    for who in ("A", "B", "C"):
        await register(client, event["id"], oslo, who)
    new_start = SOON + timedelta(days=7)
    body = {"starts_on": str(new_start), "ends_on": str(new_start + timedelta(days=1))}
    too_small = await client.post(f"/workshops/{event['id']}/rescheduling", json={**body, "capacity": 1})
    assert too_small.status_code == 409 and "2 delegates hold seats" in too_small.json()["detail"]
    assert (await client.get(f"/workshops/{event['id']}")).json()["starts_on"] == event["starts_on"]

    moved = await client.post(f"/workshops/{event['id']}/rescheduling", json={**body, "capacity": 3})
    assert moved.status_code == 200 and moved.json()["starts_on"] == str(new_start)
    assert (moved.json()["seats_taken"], moved.json()["waitlisted"]) == (3, 0)
    assert [t for t, _, _ in await published(runtime)][-2:] == ["WorkshopRescheduled", "RegistrationPromoted"]


async def test_a_cancelled_event_takes_no_registrations_and_says_so_once(events) -> None:
    client, runtime = events
    event = await workshop(client)
    oslo = await joined(runtime)
    seated = (await register(client, event["id"], oslo, "Ingrid")).json()
    cancelled = await client.post(f"/workshops/{event['id']}/cancellation")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    for refused in (
        await client.post(f"/workshops/{event['id']}/cancellation"),
        await register(client, event["id"], oslo, "Sven"),
        await client.delete(f"/workshops/{event['id']}/registrations/{seated['id']}"),
        await client.post(f"/workshops/{event['id']}/rescheduling", json={"starts_on": str(SOON), "ends_on": str(SOON)}),
    ):
        assert refused.status_code == 409 and "was cancelled on" in refused.json()["detail"]
    assert [t for t, _, _ in await published(runtime)].count("WorkshopCancelled") == 1
    assert [r["id"] for r in (await client.get(f"/workshops/{event['id']}/registrations")).json()] == [seated["id"]]
    assert [w["id"] for w in (await client.get("/workshops", params={"status": "cancelled"})).json()] == [event["id"]]


async def test_the_organiser_exports_the_participant_list_as_csv(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=2, quota=1)
    oslo, ghent = await joined(runtime, "Oslo"), await joined(runtime, "Ghent")
    await register(client, event["id"], oslo, "Ingrid")
    await register(client, event["id"], oslo, "Sven")
    await client.post(f"/workshops/{event['id']}/registrations",
                      json={"city_id": ghent, "delegate_name": "=HYPERLINK(1)", "delegate_email": "x@example.org"})
    exported = await client.get(f"/workshops/{event['id']}/participants.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["participation"], r["delegate_name"], r["city_name"], r["waitlist_position"]) for r in rows] == [
        ("funded", "Ingrid", "Oslo", ""), ("self_funded", "Sven", "Oslo", ""), ("waitlisted", "'=HYPERLINK(1)", "Ghent", "1"),
    ]


async def test_bad_input_gets_a_clear_4xx_and_writes_nothing(events) -> None:
    client, runtime = events
    event = await workshop(client)
    oslo = await joined(runtime)
    before = await published(runtime)
    good = {"title": "T", "kind": "study_visit", "host_city": "Oslo", "host_country": "NO", "starts_on": "2027-05-02",
            "ends_on": "2027-05-03", "capacity": 10}
    for body, field in [
        ({**good, "ends_on": "2027-05-01"}, "ends_on"),
        ({**good, "capacity": 0}, "capacity"),
        ({**good, "capacity": 2**40}, "capacity"),  # was a 500 on PostgreSQL: the column overflowed
        ({**good, "capacity": 10**30}, "capacity"),
        ({**good, "host_country": "ZZ"}, "host_country"),
        ({**good, "kind": "party"}, "kind"),
        ({**good, "title": "  "}, "title"),
        ({**good, "funded_quota_per_city": -1}, "funded_quota_per_city"),
        ({**good, "funded_quota_per_city": 2**40}, "funded_quota_per_city"),
        ({**good, "starts_on": "9999-12-30", "ends_on": "9999-12-31"}, "starts_on"),
    ]:
        response = await client.post("/workshops", json=body)
        assert response.status_code == 422, body
        detail = response.json()["detail"]
        assert response.json().get("field") == field if isinstance(detail, str) else any(e["loc"][-1] == field for e in detail)
    for body in ({"city_id": oslo, "delegate_name": "X", "delegate_email": "not-an-email"},
                 {"city_id": "nope", "delegate_name": "X", "delegate_email": "x@example.org"},
                 {"city_id": oslo, "delegate_name": " ", "delegate_email": "x@example.org"}):
        assert (await client.post(f"/workshops/{event['id']}/registrations", json=body)).status_code == 422
    past = {"starts_on": str(today() - timedelta(days=5)), "ends_on": str(today() - timedelta(days=4))}
    moved_back = await client.post(f"/workshops/{event['id']}/rescheduling", json=past)
    assert moved_back.status_code == 422 and (moved_back.json()["code"], moved_back.json()["field"]) == ("in_the_past", "ends_on")
    huge = await client.post(f"/workshops/{event['id']}/rescheduling", json={**past, "capacity": 2**40})
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"][-1] == "capacity"
    for params in ({"limit": 10**20}, {"offset": 10**20}, {"limit": 0}):
        assert (await client.get("/workshops", params=params)).status_code == 422
    assert (await client.get("/workshops", params={"unknown": "harmless"})).status_code == 200
    assert (await register(client, str(uuid4()), oslo, "Ingrid")).status_code == 404
    assert (await client.delete(f"/workshops/{event['id']}/registrations/{uuid4()}")).status_code == 404
    assert (await client.get(f"/member-cities/{uuid4()}")).status_code == 404
    assert await published(runtime) == before and await registrations(runtime) == 0


# --- who registers whom, who sees the list --------------------------------------------------


async def test_delegates_register_themselves_coordinators_their_city_and_lists_leak_nothing(events) -> None:
    client, runtime = events
    event = await workshop(client, capacity=10, quota=2)
    oslo, bergen = await joined(runtime), await joined(runtime, "Bergen")
    ingrid = STAND_IN.bearer("delegate", username="ingrid", email="ingrid@example.org", city_id=oslo)
    oslo_coordinator = STAND_IN.bearer("city_coordinator", username="olav", city_id=oslo)
    url = f"/workshops/{event['id']}/registrations"

    def body(city_id: str, who: str) -> dict:
        return {"city_id": city_id, "delegate_name": who, "delegate_email": f"{who.lower()}@example.org"}

    # a delegate registers themselves, not a colleague nor into another city (403, nothing written)
    for refused_body in (body(oslo, "Sven"), body(bergen, "Ingrid")):
        refused = await client.post(url, json=refused_body, headers=ingrid)
        assert refused.status_code == 403 and refused.json()["code"] == "not_yours", refused.text
    assert await registrations(runtime) == 0
    mine = await client.post(url, json=body(oslo, "Ingrid"), headers=ingrid)
    assert mine.status_code == 201, mine.text
    # a coordinator registers their city's delegates, not another city's
    assert (await client.post(url, json=body(oslo, "Sven"), headers=oslo_coordinator)).status_code == 201
    assert (await client.post(url, json=body(bergen, "Kari"), headers=oslo_coordinator)).status_code == 403
    kari = (await client.post(url, json=body(bergen, "Kari"))).json()  # the organiser's staff token

    names = lambda response: sorted(r["delegate_name"] for r in response.json())  # noqa: E731
    assert names(await client.get(url, headers=ingrid)) == ["Ingrid"]
    assert names(await client.get(url, headers=oslo_coordinator)) == ["Ingrid", "Sven"]
    assert names(await client.get(url)) == ["Ingrid", "Kari", "Sven"]
    assert (await client.get(f"/workshops/{event['id']}/participants.csv", headers=ingrid)).status_code == 403
    # cancelling another's registration answers as if it did not exist
    assert (await client.delete(f"{url}/{kari['id']}", headers=ingrid)).status_code == 404
    assert (await client.delete(f"{url}/{kari['id']}", headers=oslo_coordinator)).status_code == 404
    assert (await client.delete(f"{url}/{mine.json()['id']}", headers=ingrid)).status_code == 200
    assert names(await client.get(url)) == ["Kari", "Sven"]

    # who did what: the registration event names ingrid (her subject id), the trail her name
    [row] = [r for r in await published(runtime) if r[0] == "RegistrationCancelled"]
    audit = (await client.get("/audit", params={"subject": row[1], "action": "RegistrationCancelled"})).json()
    assert [(e["actor_name"], e["actor_type"]) for e in audit] == [("ingrid", "app_user")]
