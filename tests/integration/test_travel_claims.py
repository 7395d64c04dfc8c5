"""Travel claims through HTTP and the consumer machinery, on SQLite and PostgreSQL (no broker):
the facts travel learns are fed to its consumer as records built by hand, as Kafka would deliver them."""

import asyncio
import itertools
import json
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import event, func, select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import (
    CityApplied,
    CityJoined,
    CityLeft,
    DelegateRegistered,
    Event,
    RegistrationCancelled,
    RegistrationPromoted,
    ReimbursementApproved,
    ReimbursementHeld,
    ReimbursementPaid,
    ReimbursementRejected,
    JoinDateCorrected,
    RegistrationFundingChanged,
    WorkshopCancelled,
    WorkshopRescheduled,
    WorkshopScheduled,
)
from services.common.api import today
from services.common.db import OutboxMessage
from services.travel.app import build_app
from services.travel.db import travel_claims
from services.travel.settings import TravelSettings
from tests.identity import STAND_IN
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
offsets = itertools.count()
SOURCES = {"icc.membership.cities": "membership", "icc.events.workshops": "events", "icc.finance.reimbursements": "finance"}


def record(event: Event, envelope=None) -> ConsumerRecord:
    envelope = envelope or wrap(event, service=SOURCES[event.topic.value])
    return ConsumerRecord(
        event.topic.value, 0, next(offsets), 0, 0, envelope.key.encode(), to_value(envelope), None, 0, 0, to_headers(envelope)
    )


class World:
    """Travel running on its own database, and what it has been told by the other services."""

    def __init__(self, client, runtime) -> None:
        self.client, self.runtime = client, runtime

    async def learn(self, *events: Event):
        outcome = await self.runtime.consumer.apply([record(event) for event in events])
        assert outcome.dead_lettered == [], outcome.dead_lettered
        return outcome

    async def city(self, name="Ghent", country="BE", european=True, joined_on=date(2024, 5, 1)) -> UUID:
        city_id = uuid4()
        await self.learn(CityJoined(city_id=city_id, name=name, country=country, european=european, joined_on=joined_on))
        return city_id

    async def workshop(self, starts_on: date | None = None, days: int = 2, country: str = "PT") -> UUID:
        workshop_id, starts_on = uuid4(), starts_on or today() - timedelta(days=1)
        await self.learn(
            WorkshopScheduled(
                workshop_id=workshop_id, title="Intercultural public services", kind="thematic_workshop", host_city="Lisbon",
                host_country=country, starts_on=starts_on, ends_on=starts_on + timedelta(days=days - 1), capacity=40,
                funded_quota_per_city=1,
            )
        )
        return workshop_id

    async def registration(self, workshop_id, city_id, *, funded=True, status="registered", email="ana@ghent.be") -> UUID:
        registration_id = uuid4()
        await self.learn(
            DelegateRegistered(
                registration_id=registration_id, workshop_id=workshop_id, city_id=city_id, delegate_name="Ana Lopes",
                delegate_email=email, status=status, funded=funded,
            )
        )
        return registration_id

    async def delegate(self, *, european=True, funded=True, **registered) -> UUID:
        city = await self.city() if european else await self.city("Montréal", "CA", european=False)
        return await self.registration(await self.workshop(), city, funded=funded, **registered)

    async def outbox(self, topic="icc.travel.claims") -> list[OutboxMessage]:
        async with self.runtime.sessions() as session:
            return list(await session.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.position)))

    async def claims(self) -> int:
        async with self.runtime.sessions() as session:
            return await session.scalar(select(func.count()).select_from(travel_claims))

    async def published(self) -> list[tuple[str, dict]]:
        return [(dict(row.headers)["ce_type"], json.loads(row.value)) for row in await self.outbox()]


@pytest.fixture
async def travel(databases):
    app = build_app(TravelSettings(**NO_BROKER, **databases("travel")))
    async with running(app) as client:
        world = World(client, app.state.runtime)
        # Rates for the expense dates the tests use: travel seeds none.
        assert (await client.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2025-01-01"})).status_code == 200
        on = (today() - timedelta(days=10)).isoformat()
        assert (await client.put("/exchange-rates/NOK", json={"units_per_eur": "11.4500", "on": on})).status_code == 200
        yield world


def claim_body(registration_id, *, receipt="SAS-7781", spent_on=None, currency="NOK", amount="4580.00", nights=3, travel_days=1):
    spent_on = (spent_on or today() - timedelta(days=3)).isoformat()
    return {
        "registration_id": str(registration_id),
        "nights": nights,
        "travel_days_without_night": travel_days,
        "lines": [
            {"kind": "transport", "amount": amount, "currency": currency, "spent_on": spent_on, "receipt": receipt},
            {"kind": "visa", "amount": "60.00", "currency": "EUR", "spent_on": spent_on},
        ],
    }


def line_amounts(claim: dict) -> list[tuple]:
    return [(line["kind"], line["eur_amount"], line["coe_funded"], line["city_borne"]) for line in claim["lines"]]


def field_of(response) -> str:
    """The field a 422 names: a refusal's `field`, or the last part of FastAPI's first error location."""
    body = response.json()
    return body["field"] if isinstance(body["detail"], str) else body["detail"][0]["loc"][-1]


# --- the funding rule, end to end through the API -----------------------------------------------


async def test_a_european_delegate_claim_is_coe_funded_line_by_line_and_published(travel) -> None:
    registration_id = await travel.delegate()
    response = await travel.client.post("/claims", json=claim_body(registration_id))
    assert response.status_code == 201, response.text
    claim = response.json()
    assert (claim["status"], claim["coe_funded"], claim["city_borne"], claim["claimed"]) == ("submitted", "1002.50", "0.00", "1002.50")
    assert line_amounts(claim) == [
        ("transport", "400.00", "400.00", "0.00"),  # 4580.00 NOK / 11.45
        ("visa", "60.00", "60.00", "0.00"),
        ("daily_allowance", "542.50", "542.50", "0.00"),  # 3 x 155.00 + 77.50
    ]
    transport = claim["lines"][0]
    assert (transport["amount"], transport["currency"], transport["exchange_rate"]) == ("4580.00", "NOK", "11.45")
    assert transport["rate_on"] == (today() - timedelta(days=10)).isoformat()
    assert transport["rule"] == "european_member_coe_funded" and "Ghent is a European member city" in transport["explanation"]
    assert (await travel.client.get(f"/claims/{claim['id']}")).json() == claim

    [published] = await travel.outbox()
    headers = dict(published.headers)
    assert (headers["ce_type"], published.key) == ("TravelClaimed", claim["id"])
    payload = json.loads(published.value)
    assert {k: payload[k] for k in ("claim_id", "registration_id", "european", "budget_line", "coe_funded", "city_borne", "event_year")} == {
        "claim_id": claim["id"], "registration_id": str(registration_id), "european": True, "budget_line": "delegate_travel",
        "coe_funded": "1002.50", "city_borne": "0.00", "event_year": (today() - timedelta(days=1)).year,
    }


async def test_a_non_european_delegate_claim_is_all_city_borne(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(european=False)))).json()
    assert (claim["coe_funded"], claim["city_borne"]) == ("0.00", "1002.50")
    assert {line["rule"] for line in claim["lines"]} == {"non_european_member_city_borne"}
    assert json.loads((await travel.outbox())[0].value)["european"] is False


async def test_a_delegate_beyond_the_city_quota_is_self_funded(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(funded=False)))).json()
    assert (claim["funded"], claim["coe_funded"], claim["city_borne"]) == (False, "0.00", "1002.50")
    assert {line["rule"] for line in claim["lines"]} == {"beyond_funded_quota_self_funded"}


async def test_transport_without_a_receipt_is_shown_but_not_reimbursed(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(), receipt=None))).json()
    assert line_amounts(claim)[0] == ("transport", "400.00", "0.00", "0.00")
    assert claim["lines"][0]["rule"] == "missing_proof_of_payment"
    assert (claim["coe_funded"], claim["blocked"], claim["claimed"]) == ("602.50", "400.00", "1002.50")


async def test_nights_claimed_beyond_the_event_are_capped_and_explained(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(), nights=6, travel_days=0))).json()
    allowance = claim["lines"][-1]
    assert allowance["eur_amount"] == "465.00"  # 3 nights: the event's 2 days + 1
    assert "6 nights claimed, capped at 3" in allowance["explanation"]


# --- refusals, each writing nothing ---------------------------------------------------------


async def test_a_second_claim_for_the_same_registration_is_refused(travel) -> None:
    registration_id = await travel.delegate()
    first = await travel.client.post("/claims", json=claim_body(registration_id))
    second = await travel.client.post("/claims", json=claim_body(registration_id, amount="100.00"))
    assert second.status_code == 409 and f"already has claim {first.json()['id']}" in second.json()["detail"]
    assert (await travel.claims(), len(await travel.outbox())) == (1, 1)


async def test_a_claim_for_a_registration_travel_has_not_learnt_is_a_retryable_409(travel) -> None:
    response = await travel.client.post("/claims", json=claim_body(uuid4()))
    assert response.status_code == 409 and response.json()["retryable"] is True
    assert response.headers["Retry-After"] == "2" and "not known to travel" in response.json()["detail"]
    assert await travel.claims() == 0


async def test_a_missing_exchange_rate_is_a_422_naming_the_line_and_never_a_guess(travel) -> None:
    response = await travel.client.post("/claims", json=claim_body(await travel.delegate(), currency="ISK", amount="30000.00"))
    assert response.status_code == 422
    body = response.json()
    assert "line 1 (transport, 30000.00 ISK spent on" in body["detail"] and "no ISK exchange rate on or before" in body["detail"]
    assert (body["code"], body["field"]) == ("rate_missing", "lines[0].currency")
    assert (await travel.claims(), await travel.outbox()) == (0, [])


async def test_travel_seeds_no_rates_so_a_claim_without_them_is_refused_not_guessed(databases) -> None:
    app = build_app(TravelSettings(**NO_BROKER, **databases("travel")))
    async with running(app) as client:
        assert (await client.get("/allowance-rates", params={"limit": 1000})).json() == []
        assert (await client.get("/exchange-rates", params={"limit": 1000})).json() == []
        world = World(client, app.state.runtime)
        refused = await client.post("/claims", json=claim_body(await world.delegate(), currency="EUR", amount="100.00"))
        assert refused.status_code == 422 and refused.json()["code"] == "allowance_rate_missing"
        assert "PUT /allowance-rates/PT" in refused.json()["detail"]


async def test_claims_close_60_days_after_the_event_ends_as_rescheduled(travel) -> None:
    city = await travel.city()
    workshop = await travel.workshop(starts_on=today() - timedelta(days=62), days=2)  # ended 61 days ago
    registration_id = await travel.registration(workshop, city)
    late = await travel.client.post("/claims", json=claim_body(registration_id))
    assert late.status_code == 409 and "closed on" in late.json()["detail"]
    # the event was in fact held later: the window follows its current dates
    await travel.learn(WorkshopRescheduled(workshop_id=workshop, starts_on=today() - timedelta(days=30), ends_on=today() - timedelta(days=29)))
    assert (await travel.client.post("/claims", json=claim_body(registration_id))).status_code == 201


async def test_claims_open_on_the_events_first_day(travel) -> None:
    city = await travel.city()
    registration_id = await travel.registration(await travel.workshop(starts_on=today() + timedelta(days=1)), city)
    early = await travel.client.post("/claims", json=claim_body(registration_id))
    assert early.status_code == 409 and "open on its first day" in early.json()["detail"]


async def test_a_waitlisted_delegate_can_claim_only_once_promoted(travel) -> None:
    city, workshop = await travel.city(), await travel.workshop()
    registration_id = await travel.registration(workshop, city, status="waitlisted", funded=False)
    refused = await travel.client.post("/claims", json=claim_body(registration_id))
    assert refused.status_code == 409 and "waiting list" in refused.json()["detail"]
    await travel.learn(RegistrationPromoted(registration_id=registration_id, workshop_id=workshop, city_id=city, funded=True))
    promoted = await travel.client.post("/claims", json=claim_body(registration_id))
    assert promoted.status_code == 201 and promoted.json()["coe_funded"] == "1002.50"


async def test_a_cancelled_registration_or_event_cannot_claim(travel) -> None:
    city, workshop = await travel.city(), await travel.workshop()
    cancelled = await travel.registration(workshop, city)
    await travel.learn(RegistrationCancelled(registration_id=cancelled, workshop_id=workshop, city_id=city))
    assert "was cancelled" in (await travel.client.post("/claims", json=claim_body(cancelled))).json()["detail"]
    other = await travel.registration(workshop, city)
    await travel.learn(WorkshopCancelled(workshop_id=workshop))
    response = await travel.client.post("/claims", json=claim_body(other))
    assert response.status_code == 409 and "nothing to claim" in response.json()["detail"]
    assert await travel.claims() == 0


async def test_bad_input_gets_a_clear_422_naming_the_field_and_writes_nothing(travel) -> None:
    registration_id = await travel.delegate()
    tomorrow = (today() + timedelta(days=1)).isoformat()
    cases = [
        ({"amount": 4580.5}, "amount"),  # a float has already lost the cents
        ({"amount": "-10.00"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "1E+30"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "Infinity"}, "amount"),
        ({"amount": "99999999999999.99"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"spent_on": tomorrow}, "spent_on"),
        ({"kind": "taxi_to_the_moon"}, "kind"),
    ]
    for change, field in cases:
        body = claim_body(registration_id)
        body["lines"][0].update(change)
        response = await travel.client.post("/claims", json=body)
        assert response.status_code == 422, (change, response.text)
        assert any(error["loc"][-1] == field for error in response.json()["detail"]), response.text
    for change, field in [({"nights": -1}, "nights"), ({"nights": 10**20}, "nights"),
                          ({"travel_days_without_night": 10**20}, "travel_days_without_night")]:
        response = await travel.client.post("/claims", json={**claim_body(registration_id), **change})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", field], response.text
    for params in ({"limit": 10**20}, {"offset": 10**20}, {"limit": 0}, {"offset": -1}):
        assert (await travel.client.get("/claims", params=params)).status_code == 422
    assert (await travel.client.get("/claims", params={"unknown": "harmless"})).status_code == 200
    assert (await travel.claims(), await travel.outbox()) == (0, [])


# --- decisions from finance ---------------------------------------------------------------


async def test_the_claim_status_follows_finance_decisions_and_replays_change_nothing(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate()))).json()
    claim_id, year = UUID(claim["id"]), claim["event_year"]

    async def status() -> tuple[str, list[str]]:
        seen = (await travel.client.get(f"/claims/{claim_id}")).json()
        return seen["status"], [d["status"] for d in seen["decisions"]]

    held = ReimbursementHeld(claim_id=claim_id, amount="1002.50", budget_line="delegate_travel", year=year, reason="headroom 500.00")
    await travel.learn(held)
    assert await status() == ("held", ["held"])
    assert (await travel.client.get(f"/claims/{claim_id}")).json()["decisions"][0]["reason"] == "headroom 500.00"

    approved = record(ReimbursementApproved(claim_id=claim_id, amount="1002.50", budget_line="delegate_travel", year=year))
    await travel.runtime.consumer.apply([approved])
    assert await status() == ("approved", ["held", "approved"])
    assert (await travel.runtime.consumer.apply([approved])).duplicates == 1  # redelivered: no second decision
    assert await status() == ("approved", ["held", "approved"])

    await travel.learn(ReimbursementPaid(claim_id=claim_id, amount="1002.50", paid_on=today()))
    await travel.learn(ReimbursementRejected(claim_id=claim_id, reason="late"))  # paid is final
    assert await status() == ("paid", ["held", "approved", "paid"])
    paid = (await travel.client.get("/claims", params={"status": "paid"})).json()
    assert [c["id"] for c in paid] == [str(claim_id)] and paid[0]["decisions"][-1]["paid_on"] == today().isoformat()


async def test_a_claim_is_shown_in_one_statement_every_line_and_decision_once_in_order(travel) -> None:
    # GET /claims/{id} reads the claim joined with its lines and its decisions (one row per pair):
    # three lines and three decisions are nine rows, shown as three lines and three decisions, as the
    # list (the ORM's loading) shows them.
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate()))).json()
    claim_id, year = UUID(claim["id"]), claim["event_year"]
    await travel.learn(ReimbursementHeld(claim_id=claim_id, amount="1002.50", budget_line="delegate_travel", year=year, reason="headroom"))
    await travel.learn(ReimbursementApproved(claim_id=claim_id, amount="1002.50", budget_line="delegate_travel", year=year))
    await travel.learn(ReimbursementPaid(claim_id=claim_id, amount="1002.50", paid_on=today()))
    statements, request = [], asyncio.current_task()

    def count(connection, cursor, statement, *args) -> None:
        if asyncio.current_task() is request:
            statements.append(statement.split(None, 1)[0].upper())

    engine = travel.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        shown = (await travel.client.get(f"/claims/{claim_id}")).json()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == ["SELECT"]
    assert [line["kind"] for line in shown["lines"]] == ["transport", "visa", "daily_allowance"]
    assert [(d["status"], d["reason"], d["paid_on"]) for d in shown["decisions"]] == [
        ("held", "headroom", None), ("approved", None, None), ("paid", None, today().isoformat())]
    assert (shown["status"], shown["coe_funded"], shown["claimed"]) == ("paid", "1002.50", "1002.50")
    assert [shown] == (await travel.client.get("/claims", params={"status": "paid"})).json()
    assert shown == {**claim, "status": "paid", "decisions": shown["decisions"]}


async def test_decisions_arriving_in_one_batch_apply_in_order_and_paid_stays_final(travel) -> None:
    claims = [(await travel.client.post("/claims", json=claim_body(await travel.delegate()))).json() for _ in range(2)]
    paid_id, approved_id = (UUID(c["id"]) for c in claims)
    year = claims[0]["event_year"]
    await travel.learn(
        ReimbursementHeld(claim_id=paid_id, amount="1002.50", budget_line="delegate_travel", year=year, reason="headroom"),
        ReimbursementApproved(claim_id=approved_id, amount="1002.50", budget_line="delegate_travel", year=year),
        ReimbursementApproved(claim_id=paid_id, amount="1002.50", budget_line="delegate_travel", year=year),
        ReimbursementPaid(claim_id=paid_id, amount="1002.50", paid_on=today()),
        ReimbursementRejected(claim_id=paid_id, reason="late"),  # after the payment, in the same batch: ignored
    )
    shown = [(await travel.client.get(f"/claims/{claim_id}")).json() for claim_id in (paid_id, approved_id)]
    assert [(c["status"], [d["status"] for d in c["decisions"]]) for c in shown] == [
        ("paid", ["held", "approved", "paid"]), ("approved", ["approved"])]


async def test_a_batch_of_decisions_on_claims_looks_for_expert_visits_only_when_a_claim_is_missing(travel) -> None:
    claims = [(await travel.client.post("/claims", json=claim_body(await travel.delegate()))).json() for _ in range(2)]
    year = claims[0]["event_year"]
    tables = []

    def count(connection, cursor, statement, *args) -> None:
        if statement.startswith("SELECT"):
            tables.append("expert_visits" if "FROM expert_visits" in statement else "travel_claims" if "FROM travel_claims" in statement else "?")

    engine = travel.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await travel.learn(*(ReimbursementApproved(claim_id=UUID(c["id"]), amount="1002.50", budget_line="delegate_travel", year=year)
                             for c in claims))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert tables.count("travel_claims") == 1 and "expert_visits" not in tables, tables
    assert [(await travel.client.get(f"/claims/{c['id']}")).json()["status"] for c in claims] == ["approved", "approved"]


async def test_a_decision_on_a_claim_travel_does_not_have_is_dead_lettered(travel) -> None:
    stray = ReimbursementRejected(claim_id=uuid4(), reason="?")
    outcome = await travel.runtime.consumer.apply([record(stray)])
    assert outcome.applied == 0 and "which travel does not have" in outcome.dead_lettered[0]
    [letter] = await travel.outbox("icc.travel.dead-letter")
    assert dict(letter.headers)["ce_type"] == "ReimbursementRejected"


# --- listing ------------------------------------------------------------------------------


async def test_delegates_list_their_own_claims_and_the_secretariat_filters_all(travel) -> None:
    ghent, montreal = await travel.city(), await travel.city("Montréal", "CA", european=False)
    lisbon, other = await travel.workshop(), await travel.workshop()
    ana = await travel.registration(lisbon, ghent, email="Ana@Ghent.be")
    ben = await travel.registration(lisbon, montreal, email="ben@montreal.ca")
    ana_again = await travel.registration(other, ghent, email="ana@ghent.be")
    ids = {}
    for name, registration_id in (("ana", ana), ("ben", ben), ("ana_again", ana_again)):
        ids[name] = (await travel.client.post("/claims", json=claim_body(registration_id))).json()["id"]

    async def listed(**params) -> set[str]:
        response = await travel.client.get("/claims", params=params)
        assert response.status_code == 200, response.text
        return {claim["id"] for claim in response.json()}

    assert await listed(delegate_email="ANA@ghent.be") == {ids["ana"], ids["ana_again"]}
    assert await listed(workshop_id=str(lisbon)) == {ids["ana"], ids["ben"]}
    assert await listed(city_id=str(montreal)) == {ids["ben"]}
    assert await listed(workshop_id=str(lisbon), city_id=str(ghent)) == {ids["ana"]}
    assert await listed(status="submitted") == set(ids.values()) and await listed(status="approved") == set()
    assert len(await listed(limit=2)) == 2 and len(await listed(limit=2, offset=2)) == 1
    assert (await travel.client.get("/claims", params={"status": "lost"})).status_code == 422


# --- expert visits ------------------------------------------------------------------------


async def test_an_expert_visit_to_a_non_european_city_is_recharged_and_published(travel) -> None:
    unknown = await travel.client.post("/expert-visits", json={"city_id": str(uuid4()), "visit_date": today().isoformat()})
    assert unknown.status_code == 409 and unknown.json()["retryable"] is True
    city_id = await travel.city("Montréal", "CA", european=False)
    assert (await travel.client.put("/allowance-rates/CA", json={"eur_per_night": "195.00", "valid_from": "2026-01-01"})).status_code == 200
    visit_date = today() - timedelta(days=5)
    body = {
        "city_id": str(city_id),
        "visit_date": visit_date.isoformat(),
        "nights": 2,
        "lines": [
            {"kind": "transport", "traveller": "expert", "amount": "612.40", "currency": "EUR", "spent_on": visit_date.isoformat(), "receipt": "AF-1"},
            {"kind": "local_transport", "traveller": "CoE representative", "amount": "35.60", "currency": "EUR", "spent_on": visit_date.isoformat()},
        ],
    }
    response = await travel.client.post("/expert-visits", json=body)
    assert response.status_code == 201, response.text
    visit = response.json()
    assert (visit["european"], visit["coe_funded"], visit["recharged"], visit["status"]) == (False, "0.00", "1428.00", "submitted")
    assert visit["lines"][-1]["eur_amount"] == "780.00"  # 2 travellers x 2 nights x 195.00
    assert visit["lines"][0]["traveller"] == "expert"
    assert (await travel.client.get(f"/expert-visits/{visit['id']}")).json() == visit
    [published] = await travel.outbox()
    payload = json.loads(published.value)
    assert (dict(published.headers)["ce_type"], payload["claim_id"], payload["recharged"]) == ("ExpertVisitClaimed", visit["id"], "1428.00")

    again = await travel.client.post("/expert-visits", json=body)
    assert again.status_code == 409 and "already claimed" in again.json()["detail"]
    await travel.learn(ReimbursementApproved(claim_id=UUID(visit["id"]), amount="0.00", budget_line="expert_visits", year=visit_date.year))
    assert (await travel.client.get("/expert-visits", params={"city_id": str(city_id), "status": "approved"})).json()[0]["id"] == visit["id"]


# --- the rate tables ----------------------------------------------------------------------


async def test_rate_tables_are_managed_through_the_api(travel) -> None:
    assert (await travel.client.put("/allowance-rates/FR", json={"eur_per_night": "190.00", "valid_from": "2025-01-01"})).status_code == 200
    assert (await travel.client.put("/exchange-rates/KRW", json={"units_per_eur": "1564.6800", "on": "2026-02-01"})).status_code == 200
    assert (await travel.client.get("/allowance-rates/FR", params={"on": "2026-06-01"})).json()["eur_per_night"] == "190.00"
    assert (await travel.client.get("/exchange-rates/KRW", params={"on": "2026-02-14"})).json() == {
        "currency": "KRW", "on": "2026-02-01", "units_per_eur": "1564.68",
    }

    # a new rate from a later date leaves the earlier one in force before it
    put = await travel.client.put("/allowance-rates/fr", json={"eur_per_night": "205.00", "valid_from": "2027-01-01"})
    assert put.status_code == 200 and put.json() == {"country": "FR", "valid_from": "2027-01-01", "eur_per_night": "205.00"}
    assert (await travel.client.get("/allowance-rates/FR", params={"on": "2026-12-31"})).json()["eur_per_night"] == "190.00"
    assert (await travel.client.get("/allowance-rates/FR", params={"on": "2027-01-01"})).json()["eur_per_night"] == "205.00"
    corrected = await travel.client.put("/exchange-rates/NOK", json={"units_per_eur": "11.2300", "on": "2026-03-02"})
    assert corrected.json()["units_per_eur"] == "11.23"
    assert (await travel.client.put("/exchange-rates/KRW", json={"units_per_eur": "1600.0000", "on": "2026-03-02"})).status_code == 200
    assert (await travel.client.get("/exchange-rates/KRW", params={"on": "2026-03-02"})).json()["units_per_eur"] == "1600"  # not 1.6E+3
    assert (await travel.client.get("/exchange-rates", params={"currency": "NOK", "limit": 1000})).status_code == 200
    assert (await travel.client.get("/exchange-rates/ISK")).status_code == 404

    for path, body, field in [
        ("/allowance-rates/ZZ", {"eur_per_night": "100.00", "valid_from": "2026-01-01"}, "country"),
        ("/allowance-rates/FR", {"eur_per_night": "0.00", "valid_from": "2026-01-01"}, "eur_per_night"),
        ("/allowance-rates/FR", {"eur_per_night": "1E+30", "valid_from": "2026-01-01"}, "eur_per_night"),
        ("/exchange-rates/EUR", {"units_per_eur": "1", "on": "2026-01-01"}, "currency"),
        ("/exchange-rates/NOK", {"units_per_eur": 11.45, "on": "2026-01-01"}, "units_per_eur"),
        ("/exchange-rates/NOK", {"units_per_eur": "11.1234567", "on": "2026-01-01"}, "units_per_eur"),
        ("/exchange-rates/NOK", {"units_per_eur": "NaN", "on": "2026-01-01"}, "units_per_eur"),
        ("/exchange-rates/NOK", {"units_per_eur": "1E+30", "on": "2026-01-01"}, "units_per_eur"),
    ]:
        response = await travel.client.put(path, json=body)
        assert response.status_code == 422 and field_of(response) == field, (path, body, response.text)


# --- concurrency and batches --------------------------------------------------------------


async def test_two_simultaneous_claims_for_one_registration_give_one_claim(travel) -> None:
    registration_id = await travel.delegate()
    answers = await asyncio.gather(*(travel.client.post("/claims", json=claim_body(registration_id)) for _ in range(2)))
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    assert (await travel.claims(), len(await travel.outbox())) == (1, 1)


async def test_a_claim_is_decided_in_two_reads_and_written_in_four_inserts(travel) -> None:
    # Registration, event and city in one read; the existing claim, the quota count and the rates in
    # another; then the claim, its lines, the outbox row and the audit row. Not one query per fact.
    registration = await travel.delegate()
    statements, request = [], asyncio.current_task()  # the in-process client runs the request in this task

    def count(connection, cursor, statement, *args) -> None:
        if asyncio.current_task() is request:  # not the relay's
            statements.append(statement.split(None, 1)[0].upper())

    engine = travel.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        answer = await travel.client.post("/claims", json=claim_body(registration))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert answer.status_code == 201, answer.text
    assert (statements.count("SELECT"), statements.count("INSERT"), len(statements)) == (2, 4, 6), statements
    shown = (await travel.client.get(f"/claims/{answer.json()['id']}")).json()
    assert shown == answer.json() and [e for e, _ in await travel.published()] == ["TravelClaimed"]


async def test_a_batch_of_facts_is_applied_in_a_few_queries_not_one_per_event(travel) -> None:
    city, workshop = await travel.city(), await travel.workshop()
    registered = [
        DelegateRegistered(
            registration_id=uuid4(), workshop_id=workshop, city_id=city, delegate_name=f"Delegate {n}",
            delegate_email=f"d{n}@ghent.be", status="registered", funded=n == 0,
        )
        for n in range(200)
    ]
    promoted = [RegistrationPromoted(registration_id=r.registration_id, workshop_id=workshop, city_id=city, funded=True) for r in registered[:50]]
    statements = []
    engine = travel.runtime.engine.sync_engine
    count = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", count)
    try:
        outcome = await travel.learn(*registered, *promoted)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert outcome.applied == 250
    assert len(statements) <= 12, statements


# --- the funded quota, whatever is cancelled or promoted afterwards -------------------------------


async def test_funding_passed_on_after_a_funded_delegate_claimed_never_funds_a_second_claim(travel) -> None:
    """The quota is 1: Ana (funded) claims and then cancels; events passes the funding to Ben;
    Ben's claim is self-funded, because Ana's CoE-funded claim still uses Ghent's funded place."""
    city, workshop = await travel.city(), await travel.workshop()
    ana = await travel.registration(workshop, city, funded=True, email="ana@ghent.be")
    ben = await travel.registration(workshop, city, funded=False, email="ben@ghent.be")
    first = (await travel.client.post("/claims", json=claim_body(ana))).json()
    assert first["coe_funded"] == "1002.50"
    await travel.learn(
        RegistrationCancelled(registration_id=ana, workshop_id=workshop, city_id=city),
        RegistrationFundingChanged(registration_id=ben, workshop_id=workshop, city_id=city, funded=True),
    )
    second = await travel.client.post("/claims", json=claim_body(ben))
    assert second.status_code == 201, second.text
    claim = second.json()
    assert (claim["funded"], claim["coe_funded"], claim["city_borne"]) == (False, "0.00", "1002.50")
    assert claim["funding"] == "funded_quota_used_self_funded"
    assert "Ghent's funded quota for this event (1 delegate) is already used" in claim["lines"][0]["explanation"]

    # Once finance rejects Ana's claim, the place is free again: Ben's resubmission would be funded.
    await travel.learn(ReimbursementRejected(claim_id=UUID(first["id"]), reason="registration cancelled"))
    carl = await travel.registration(workshop, city, funded=True, email="carl@ghent.be")
    assert (await travel.client.post("/claims", json=claim_body(carl))).json()["funding"] == "european_member_coe_funded"


async def test_simultaneous_claims_of_one_city_never_exceed_its_funded_quota(travel) -> None:
    # Both registrations say funded (events' news of the second losing its funding has not arrived).
    city, workshop = await travel.city(), await travel.workshop()
    delegates = [await travel.registration(workshop, city, funded=True, email=f"d{n}@ghent.be") for n in range(4)]
    answers = await asyncio.gather(*(travel.client.post("/claims", json=claim_body(r)) for r in delegates))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert sorted(a.json()["coe_funded"] for a in answers) == ["0.00", "0.00", "0.00", "1002.50"]
    published = [payload for kind, payload in await travel.published() if kind == "TravelClaimed"]
    assert sum(payload["coe_funded"] != "0.00" for payload in published) == 1
    assert sorted(a.json()["funding"] for a in answers) == ["european_member_coe_funded"] + ["funded_quota_used_self_funded"] * 3


# --- who is a member, and European, on the date that matters ------------------------------------


async def test_european_is_decided_on_the_event_s_first_day_not_frozen_at_joining(travel) -> None:
    # Membership said European when this Russian city joined in 2021; Russia left the CoE on 2022-03-15.
    city = await travel.city("Kazan", "RU", european=True, joined_on=date(2021, 6, 1))
    claim = (await travel.client.post("/claims", json=claim_body(await travel.registration(await travel.workshop(), city)))).json()
    assert (claim["european"], claim["coe_funded"], claim["city_borne"]) == (False, "0.00", "1002.50")
    assert claim["funding"] == "non_european_member_city_borne"
    assert json.loads((await travel.outbox())[0].value)["european"] is False


async def test_a_city_is_a_member_up_to_and_including_its_effective_date_and_claims_follow(travel) -> None:
    workshop = await travel.workshop(starts_on=today() - timedelta(days=1))
    stayed, left_before = await travel.city("Ghent"), await travel.city("Lublin", "PL")
    await travel.learn(
        CityLeft(city_id=stayed, effective_on=today() - timedelta(days=1)),  # its last day: the event's first
        CityLeft(city_id=left_before, effective_on=today() - timedelta(days=2)),
    )
    accepted = await travel.client.post("/claims", json=claim_body(await travel.registration(workshop, stayed)))
    assert accepted.status_code == 201, accepted.text
    refused = await travel.client.post("/claims", json=claim_body(await travel.registration(workshop, left_before, email="x@lublin.pl")))
    assert refused.status_code == 409 and (refused.json()["code"], refused.json()["retryable"]) == ("not_a_member", False)
    assert "Lublin withdrew from the network effective" in refused.json()["detail"]


async def test_a_corrected_join_date_is_what_travel_checks_claims_against(travel) -> None:
    city, workshop = await travel.city(joined_on=date(2024, 5, 1)), await travel.workshop(starts_on=today() - timedelta(days=3))
    registration_id = await travel.registration(workshop, city)
    # The secretariat corrects the financial agreement's date: the city joined only yesterday.
    await travel.learn(JoinDateCorrected(city_id=city, joined_on=today() - timedelta(days=1), previous_joined_on=date(2024, 5, 1),
                                         european=True, reason="agreement signed later than typed"))
    refused = await travel.client.post("/claims", json=claim_body(registration_id))
    assert refused.status_code == 409 and refused.json()["code"] == "not_a_member"
    assert "so it was not yet a member on the event's first day" in refused.json()["detail"]


async def test_an_applicant_s_expert_visit_gets_a_final_refusal_naming_it_an_applicant(travel) -> None:
    city_id = uuid4()
    await travel.learn(CityApplied(city_id=city_id, name="Lublin", country="PL", population=339_000, european=True,
                                   small_city=False, applied_on=today() - timedelta(days=30)))
    body = {"city_id": str(city_id), "visit_date": (today() - timedelta(days=2)).isoformat()}
    refused = await travel.client.post("/expert-visits", json=body)
    assert refused.status_code == 409 and (refused.json()["code"], refused.json()["retryable"]) == ("not_a_member", False)
    assert "Lublin is an applicant" in refused.json()["detail"] and "Retry-After" not in refused.headers
    too_small = await travel.client.post("/expert-visits", json={**body, "travellers": 1})
    assert too_small.status_code == 422 and field_of(too_small) == "travellers"
    for huge in ({"travellers": 10**20}, {"nights": 10**20}):
        assert (await travel.client.post("/expert-visits", json={**body, **huge})).status_code == 422
    assert await travel.outbox() == []


async def test_a_claim_of_a_city_travel_knows_only_as_an_applicant_is_retryable(travel) -> None:
    """Events registered its delegate as a member's, so travel has only not yet consumed CityJoined."""
    city_id, workshop = uuid4(), await travel.workshop()
    await travel.learn(CityApplied(city_id=city_id, name="Lublin", country="PL", population=339_000, european=True,
                                   small_city=False, applied_on=date(2024, 1, 5)))
    registration_id = await travel.registration(workshop, city_id)
    early = await travel.client.post("/claims", json=claim_body(registration_id))
    assert early.status_code == 409 and early.json()["retryable"] is True
    await travel.learn(CityJoined(city_id=city_id, name="Lublin", country="PL", european=True, joined_on=date(2024, 5, 1)))
    assert (await travel.client.post("/claims", json=claim_body(registration_id))).status_code == 201


# --- the allowance: each calendar day earns one allowance at most ---------------------------------


async def test_nights_and_travel_days_are_capped_at_the_event_s_days_plus_two(travel) -> None:
    # A 2-day event: 3 nights + 2 travel days is 5 calendar days; 3 nights + 1 travel day count.
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(), nights=3, travel_days=2))).json()
    allowance = claim["lines"][-1]
    assert allowance["eur_amount"] == "542.50"  # 3 x 155.00 + 77.50, not 620.00
    assert "2 travel days without a night claimed, capped at 1: each calendar day earns one allowance at most" in allowance["explanation"]
    day_trip = (await travel.client.post("/claims", json=claim_body(await travel.delegate(email="b@ghent.be"), nights=0, travel_days=2))).json()
    assert day_trip["lines"][-1]["eur_amount"] == "77.50"  # one day, not two half days


# --- corrections: amendments until finance decides, new versions after a rejection ---------------


async def test_a_claim_is_amended_until_finance_decides_and_finance_is_told(travel) -> None:
    claim = (await travel.client.post("/claims", json=claim_body(await travel.delegate(), receipt=None))).json()
    assert (claim["coe_funded"], claim["blocked"]) == ("602.50", "400.00")
    await travel.learn(ReimbursementHeld(claim_id=UUID(claim["id"]), amount="602.50", budget_line="delegate_travel",
                                         year=claim["event_year"], reason="headroom 100.00"))
    body = claim_body(claim["registration_id"])  # the receipt found
    del body["registration_id"]
    amended = await travel.client.post(f"/claims/{claim['id']}/amendment", json=body)
    assert amended.status_code == 200, amended.text
    assert (amended.json()["id"], amended.json()["status"], amended.json()["coe_funded"], amended.json()["amendments"]) == (
        claim["id"], "submitted", "1002.50", 1,
    )
    assert (await travel.client.get(f"/claims/{claim['id']}")).json() == amended.json()
    kind, payload = (await travel.published())[-1]
    assert kind == "TravelClaimAmended"
    assert {k: payload[k] for k in ("claim_id", "coe_funded", "previous_coe_funded", "budget_line", "event_year", "amendment")} == {
        "claim_id": claim["id"], "coe_funded": "1002.50", "previous_coe_funded": "602.50", "budget_line": "delegate_travel",
        "event_year": claim["event_year"], "amendment": 1,
    }

    await travel.learn(ReimbursementApproved(claim_id=UUID(claim["id"]), amount="1002.50", budget_line="delegate_travel",
                                             year=claim["event_year"]))
    refused = await travel.client.post(f"/claims/{claim['id']}/amendment", json=body)
    assert refused.status_code == 409 and refused.json()["code"] == "claim_decided" and refused.json()["retryable"] is False
    assert "ask the finance unit to reject it" in refused.json()["detail"]
    assert [kind for kind, _ in await travel.published()] == ["TravelClaimed", "TravelClaimAmended"]


async def test_a_rejected_claim_is_resubmitted_as_a_new_version_and_the_old_one_is_kept(travel) -> None:
    registration_id = await travel.delegate()
    first = (await travel.client.post("/claims", json=claim_body(registration_id, receipt=None))).json()
    await travel.learn(ReimbursementRejected(claim_id=UUID(first["id"]), reason="no proof of payment"))
    again = await travel.client.post("/claims", json=claim_body(registration_id))
    assert again.status_code == 409 and again.json()["code"] == "claim_rejected"
    assert f"POST /claims/{first['id']}/resubmission" in again.json()["detail"]

    body = claim_body(registration_id)
    del body["registration_id"]
    answers = await asyncio.gather(*(travel.client.post(f"/claims/{first['id']}/resubmission", json=body) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409]
    [second] = [a.json() for a in answers if a.status_code == 201]
    assert (second["supersedes"], second["claim_version"], second["status"], second["coe_funded"]) == (first["id"], 2, "submitted", "1002.50")
    assert (await travel.client.get(f"/claims/{first['id']}")).json()["status"] == "rejected"  # kept, as it was
    mine = (await travel.client.get("/claims", params={"delegate_email": "ana@ghent.be"})).json()
    assert {(c["id"], c["claim_version"]) for c in mine} == {(first["id"], 1), (second["id"], 2)}
    kind, payload = (await travel.published())[-1]
    assert (kind, payload["claim_id"], payload["supersedes"], payload["claim_version"]) == ("TravelClaimed", second["id"], first["id"], 2)
    not_rejected = await travel.client.post(f"/claims/{second['id']}/resubmission", json=body)
    assert not_rejected.status_code == 409 and not_rejected.json()["code"] == "not_rejected"


# --- who sees which claims, who did what ----------------------------------------------------


async def test_a_delegate_sees_and_acts_on_their_own_claims_only_and_a_coordinator_on_their_city_s(travel) -> None:
    ghent, montreal = await travel.city(), await travel.city("Montréal", "CA", european=False)
    lisbon = await travel.workshop()
    ana_registration = await travel.registration(lisbon, ghent, email="ana@ghent.be")
    eva_registration = await travel.registration(lisbon, ghent, email="eva@ghent.be", funded=False)
    ben_registration = await travel.registration(lisbon, montreal, email="ben@montreal.ca")
    ana = STAND_IN.bearer("delegate", username="ana", email="Ana@Ghent.be", city_id=ghent)
    eva = STAND_IN.bearer("delegate", username="eva", email="eva@ghent.be", city_id=ghent)
    ghent_coordinator = STAND_IN.bearer("city_coordinator", username="gert", city_id=ghent)
    client = travel.client

    # a delegate claims for their own registration; another's is not theirs to claim (404)
    refused = await client.post("/claims", json=claim_body(eva_registration), headers=ana)
    assert refused.status_code == 404 and str(eva_registration) in refused.json()["detail"]
    ana_claim = await client.post("/claims", json=claim_body(ana_registration), headers=ana)
    assert ana_claim.status_code == 201, ana_claim.text
    ana_claim = ana_claim.json()["id"]
    # a coordinator claims for their city's delegate, not another city's
    eva_claim = (await client.post("/claims", json=claim_body(eva_registration), headers=ghent_coordinator)).json()["id"]
    assert (await client.post("/claims", json=claim_body(ben_registration), headers=ghent_coordinator)).status_code == 404
    ben_claim = (await client.post("/claims", json=claim_body(ben_registration))).json()["id"]  # staff

    # reading: another delegate's claim is 404, exactly like one that does not exist
    assert (await client.get(f"/claims/{ana_claim}", headers=ana)).status_code == 200
    other = await client.get(f"/claims/{eva_claim}", headers=ana)
    missing = await client.get(f"/claims/{uuid4()}", headers=ana)
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == f"no claim with id {eva_claim}"
    # lists filter, whatever is asked for
    ids = lambda response: {claim["id"] for claim in response.json()}  # noqa: E731
    assert ids(await client.get("/claims", headers=ana)) == {ana_claim}
    assert ids(await client.get("/claims", params={"workshop_id": str(lisbon)}, headers=eva)) == {eva_claim}
    assert ids(await client.get("/claims", params={"city_id": str(montreal)}, headers=ana)) == set()
    assert ids(await client.get("/claims", headers=ghent_coordinator)) == {ana_claim, eva_claim}
    assert ids(await client.get("/claims")) == {ana_claim, eva_claim, ben_claim}  # staff: all
    # amending another's claim is 404 too, and changes nothing
    amend = {key: value for key, value in claim_body(eva_registration, nights=1).items() if key != "registration_id"}
    assert (await client.post(f"/claims/{eva_claim}/amendment", json=amend, headers=ana)).status_code == 404
    assert (await client.get(f"/claims/{eva_claim}")).json()["amendments"] == 0


async def test_claims_carry_who_made_them_and_rate_changes_keep_their_history(travel) -> None:
    ghent = await travel.city()
    registration = await travel.registration(await travel.workshop(), ghent, email="ana@ghent.be")
    ana = STAND_IN.bearer("delegate", username="ana", email="ana@ghent.be", city_id=ghent)
    claim = (await travel.client.post("/claims", json=claim_body(registration), headers=ana)).json()["id"]

    [row] = await travel.outbox()
    headers = dict(row.headers)
    assert headers["ce_authtype"] == "app_user"
    assert headers["ce_authid"] == STAND_IN.claims("delegate", username="ana")["sub"]  # the subject id, never the token
    assert not any("Bearer" in value or value.count(".") == 2 and len(value) > 100 for value in headers.values())

    audit = (await travel.client.get("/audit", params={"subject": claim})).json()
    assert [(e["action"], e["actor_name"], e["actor_type"], e["event_id"]) for e in audit] == [
        ("TravelClaimed", "ana", "app_user", headers["ce_id"])]
    # rate tables: the value in force is overwritten, the trail keeps every value and who set it
    finance = STAND_IN.bearer("finance", username="fiona")
    for rate in ("190.00", "195.00"):
        assert (await travel.client.put("/allowance-rates/FR", json={"eur_per_night": rate, "valid_from": "2026-01-01"},
                                        headers=finance)).status_code == 200
    history = (await travel.client.get("/audit", params={"subject": "FR@2026-01-01"}, headers=finance)).json()
    assert [(e["actor_name"], e["details"]["before"], e["details"]["after"]) for e in history] == [
        ("fiona", "190.00", "195.00"), ("fiona", None, "190.00")]  # newest first
    # a delegate may not read the trail; the auditor may
    assert (await travel.client.get("/audit", headers=ana)).status_code == 403
    assert (await travel.client.get("/audit", headers=STAND_IN.bearer("auditor"))).status_code == 200
