"""A delegate's travel claim over the real broker: travel learns the registration from events,
publishes TravelClaimed, and follows finance's decision back from Kafka."""

import json
from datetime import date, timedelta
from uuid import UUID, uuid4

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import (
    CityJoined,
    DelegateRegistered,
    Event,
    ReimbursementApproved,
    ReimbursementHeld,
    ReimbursementPaid,
    WorkshopScheduled,
)
from services.common.api import today
from tests.e2e.test_join_to_invoice import join
from tests.support import consumed, eventually, header, produce, read_topic, running

CLAIMS = "icc.travel.claims"


async def set_rates(travel) -> None:
    """Rates for today's expenses and a Lisbon event, whatever today is (the seed covers 2025-2027)."""
    month_start = today().replace(day=1).isoformat()
    assert (await travel.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2025-01-01"})).status_code == 200
    assert (await travel.put("/exchange-rates/NOK", json={"units_per_eur": "11.4500", "on": month_start})).status_code == 200


def claim_body(registration_id: str) -> dict:
    return {
        "registration_id": registration_id,
        "nights": 2,
        "travel_days_without_night": 1,
        "lines": [{"kind": "transport", "amount": "4580.00", "currency": "NOK", "spent_on": today().isoformat(), "receipt": "SAS-7781"}],
    }


async def submit_when_known(travel, body: dict) -> dict:
    """Submit the claim, retrying while travel has not consumed the registration yet (409, retryable)."""

    async def accepted():
        response = await travel.post("/claims", json=body)
        if response.status_code == 409 and response.json().get("retryable"):
            return None
        assert response.status_code == 201, response.text
        return response.json()

    return await eventually(accepted, what="the claim accepted once travel learnt the registration")


async def status_becomes(travel, claim_id: str, status: str) -> dict:
    async def reached():
        claim = (await travel.get(f"/claims/{claim_id}")).json()
        return claim if claim["status"] == status else None

    return await eventually(reached, what=f"claim {claim_id} becoming {status}")


async def test_a_delegates_claim_from_registration_to_finance_decision(platform) -> None:
    """The whole platform: a city joins, an event is scheduled, a delegate registers and claims, finance decides."""
    apps = platform.membership(), platform.events(), platform.travel(), platform.finance()
    async with (
        running(apps[0]) as membership,
        running(apps[1]) as events,
        running(apps[2]) as travel,
        running(apps[3]) as finance,
    ):
        city = await join(membership)  # Oslo: European
        await set_rates(travel)
        workshop = await events.post(
            "/workshops",
            json={
                "title": "Intercultural public services", "kind": "thematic_workshop", "host_city": "Lisbon",
                "host_country": "PT", "starts_on": today().isoformat(), "ends_on": (today() + timedelta(days=1)).isoformat(),
                "capacity": 10,
            },
        )
        assert workshop.status_code == 201, workshop.text
        year = today().year
        budget = {"administration": "10000.00", "delegate_travel": "20000.00", "expert_visits": "5000.00", "index_analysis": "0.00", "events": "0.00"}
        assert (await finance.put(f"/budgets/{year}", json={"lines": budget})).status_code in (200, 201)

        async def registered():
            response = await events.post(
                f"/workshops/{workshop.json()['id']}/registrations",
                json={"city_id": city["id"], "delegate_name": "Ingrid Berg", "delegate_email": "ingrid@oslo.kommune.no"},
            )
            # until events has consumed CityJoined, Oslo is not a member there
            return response.json() if response.status_code == 201 else None

        registration = await eventually(registered, what="the delegate's registration")
        assert (registration["status"], registration["funded"]) == ("registered", True)

        claim = await submit_when_known(travel, claim_body(registration["id"]))
        # 4580.00 NOK / 11.45 = 400.00; 2 nights x 155.00 + 1 travel day x 77.50 = 387.50
        assert (claim["status"], claim["coe_funded"], claim["city_borne"]) == ("submitted", "787.50", "0.00")
        assert (claim["city_id"], claim["workshop_id"]) == (city["id"], workshop.json()["id"])

        decided = await status_becomes(travel, claim["id"], "approved")
        assert [(d["status"], d["amount"]) for d in decided["decisions"]] == [("approved", "787.50")]
        mine = (await travel.get("/claims", params={"delegate_email": "ingrid@oslo.kommune.no"})).json()
        assert [(c["id"], c["status"]) for c in mine] == [(claim["id"], "approved")]

        # finance pays it (its own endpoint, beyond API.md's minimum): travel follows again
        paid = await finance.post(f"/reimbursements/{claim['id']}/payment", json={"paid_on": today().isoformat()})
        assert paid.status_code == 200, paid.text
        settled = await status_becomes(travel, claim["id"], "paid")
        assert [(d["status"], d["amount"], d["paid_on"]) for d in settled["decisions"]][-1] == ("paid", "787.50", today().isoformat())


async def publish(platform, *events: Event, service: str) -> None:
    envelopes = [wrap(event, service=service) for event in events]
    await produce(
        platform.kafka,
        platform.topic(events[0].topic.value),
        [(envelope.key.encode(), to_value(envelope), to_headers(envelope)) for envelope in envelopes],
    )


async def test_travel_consumes_the_contract_events_and_follows_finance_over_kafka(platform) -> None:
    """Travel alone, with the other services' facts produced to Kafka as the contracts define them."""
    app = platform.travel()
    async with running(app) as travel:
        await consumed(app)
        await set_rates(travel)
        city_id, workshop_id, registration_id = uuid4(), uuid4(), uuid4()
        await publish(platform, CityJoined(city_id=city_id, name="Ghent", country="BE", european=True, joined_on=date(2024, 5, 1)), service="membership")
        await publish(
            platform,
            WorkshopScheduled(
                workshop_id=workshop_id, title="Study visit", kind="study_visit", host_city="Lisbon", host_country="PT",
                starts_on=today() - timedelta(days=2), ends_on=today() - timedelta(days=1), capacity=20, funded_quota_per_city=1,
            ),
            DelegateRegistered(
                registration_id=registration_id, workshop_id=workshop_id, city_id=city_id, delegate_name="Ana Lopes",
                delegate_email="ana@ghent.be", status="registered", funded=True,
            ),
            service="events",
        )

        claim = await submit_when_known(travel, claim_body(str(registration_id)))
        assert (claim["coe_funded"], claim["city_borne"]) == ("787.50", "0.00")

        [published] = await read_topic(platform.kafka, platform.topic(CLAIMS), at_least=1)
        assert (header(published, "ce_type"), header(published, "ce_source"), published.key.decode()) == ("TravelClaimed", "/icc/travel", claim["id"])
        payload = json.loads(published.value)
        assert (payload["workshop_id"], payload["city_id"], payload["delegate_email"]) == (str(workshop_id), str(city_id), "ana@ghent.be")
        assert (payload["european"], payload["coe_funded"], payload["budget_line"], payload["event_year"]) == (
            True, "787.50", "delegate_travel", (today() - timedelta(days=2)).year,
        )

        claim_id, year = UUID(claim["id"]), payload["event_year"]
        await publish(
            platform,
            ReimbursementHeld(claim_id=claim_id, amount="787.50", budget_line="delegate_travel", year=year, reason="headroom 100.00"),
            service="finance",
        )
        held = await status_becomes(travel, claim["id"], "held")
        assert held["decisions"][0]["reason"] == "headroom 100.00"
        await publish(
            platform,
            ReimbursementApproved(claim_id=claim_id, amount="787.50", budget_line="delegate_travel", year=year),
            ReimbursementPaid(claim_id=claim_id, amount="787.50", paid_on=today()),
            service="finance",
        )
        paid = await status_becomes(travel, claim["id"], "paid")
        assert [d["status"] for d in paid["decisions"]] == ["held", "approved", "paid"]
