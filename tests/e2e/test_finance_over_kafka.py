"""Finance over the real broker: a city joins and is invoiced; claims are approved, held when the
line is exhausted, and released when the budget is raised; travel follows the decisions."""

import json
from datetime import timedelta
from uuid import uuid4

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import DelegateRegistered, Event, TravelClaimed, WorkshopScheduled
from services.common.api import today
from tests.e2e.test_join_to_invoice import join

from tests.support import consumed, eventually, header, produce, read_topic, running

REIMBURSEMENTS = "icc.finance.reimbursements"


def budget(delegate_travel: str) -> dict:
    return {"lines": {"administration": "5000.00", "delegate_travel": delegate_travel, "expert_visits": "0.00",
                      "index_analysis": "0.00", "events": "0.00"}}


async def publish(platform, *events: Event, service: str) -> None:
    envelopes = [wrap(event, service=service) for event in events]
    await produce(
        platform.kafka, platform.topic(events[0].topic.value),
        [(envelope.key.encode(), to_value(envelope), to_headers(envelope)) for envelope in envelopes],
    )


async def decisions(platform, at_least: int) -> list[tuple[str, dict]]:
    records = await read_topic(platform.kafka, platform.topic(REIMBURSEMENTS), at_least=at_least)
    return [(header(r, "ce_type"), json.loads(r.value)) for r in records]


async def of_claim(platform, claim: TravelClaimed, at_least: int) -> list[tuple[str, dict]]:
    return [(kind, payload) for kind, payload in await decisions(platform, at_least) if payload["claim_id"] == str(claim.claim_id)]


async def test_a_joining_city_is_invoiced_and_claims_are_approved_held_and_released_over_kafka(platform) -> None:
    membership_app, finance_app = platform.membership(), platform.finance()
    async with running(membership_app) as membership, running(finance_app) as finance:
        await consumed(finance_app)
        city = await join(membership)

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        [invoice] = await eventually(invoiced, what="the contribution invoice")
        assert (invoice["kind"], invoice["year"], invoice["amount"]) == ("contribution", 2026, "5000.00")

        year = today().year
        assert (await finance.put(f"/budgets/{year}", json=budget("600.00"))).status_code == 200

        def claim(amount: str) -> TravelClaimed:
            return TravelClaimed(
                claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=city["id"], delegate_email="ingrid@oslo.no",
                european=True, budget_line="delegate_travel", coe_funded=amount, city_borne="0.00", submitted_on=today(), event_year=year,
            )

        first, second = claim("555.00"), claim("555.00")
        await publish(platform, first, service="travel")
        [(kind, approved)] = await decisions(platform, at_least=1)
        assert (kind, approved["claim_id"], approved["amount"]) == ("ReimbursementApproved", str(first.claim_id), "555.00")

        await publish(platform, second, service="travel")  # 45.00 left: held
        [(kind, held)] = await of_claim(platform, second, at_least=2)
        assert (kind, held["amount"]) == ("ReimbursementHeld", "555.00") and "does not cover 555.00" in held["reason"]

        raised = await finance.put(f"/budgets/{year}", json=budget("1200.00"))
        assert raised.json()["lines"]["delegate_travel"]["committed"] == "1110.00"
        # one claim's decisions share its partition, so they come back in order
        assert [kind for kind, _ in await of_claim(platform, second, at_least=3)] == ["ReimbursementHeld", "ReimbursementApproved"]
        budgets = await read_topic(platform.kafka, platform.topic("icc.finance.budgets"), at_least=4)
        told = [(header(r, "ce_type"), json.loads(r.value).get("budget_line"), json.loads(r.value).get("threshold")) for r in budgets]
        # 555.00 of 600.00 committed is 92.5%: 80 and 90 are told, once (1110.00 of 1200.00 is no news)
        assert told == [("BudgetSet", None, None), ("BudgetThresholdCrossed", "delegate_travel", 80),
                        ("BudgetThresholdCrossed", "delegate_travel", 90), ("BudgetSet", None, None)], told


async def test_a_european_delegates_claim_is_approved_and_travel_follows_finance(platform_sqlite) -> None:
    """Through travel's own API (API.md): the claim's status in travel follows finance's decisions."""
    platform = platform_sqlite
    apps = platform.membership(), platform.travel(), platform.finance()
    async with running(apps[0]) as membership, running(apps[1]) as travel, running(apps[2]) as finance:
        await consumed(apps[1])
        city = await join(membership)
        starts_on = today() - timedelta(days=2)
        workshop = WorkshopScheduled(
            workshop_id=uuid4(), title="Study visit", kind="study_visit", host_city="Lisbon", host_country="PT",
            starts_on=starts_on, ends_on=today() - timedelta(days=1), capacity=20, funded_quota_per_city=2,
        )
        delegates = [
            DelegateRegistered(registration_id=uuid4(), workshop_id=workshop.workshop_id, city_id=city["id"], delegate_name=name,
                               delegate_email=f"{name.lower()}@oslo.no", status="registered", funded=True)
            for name in ("Ingrid", "Olav")
        ]
        await publish(platform, workshop, *delegates, service="events")
        rate = await travel.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2025-01-01"})
        assert rate.status_code == 200, rate.text
        assert (await finance.put(f"/budgets/{starts_on.year}", json=budget("600.00"))).status_code == 200

        async def submit(registration: DelegateRegistered) -> dict:
            body = {"registration_id": str(registration.registration_id), "nights": 1, "lines": [
                {"kind": "transport", "amount": "400.00", "currency": "EUR", "spent_on": starts_on.isoformat(), "receipt": "TAP-1"}]}

            async def accepted():
                response = await travel.post("/claims", json=body)
                if response.status_code == 409 and response.json().get("retryable"):
                    return None  # travel has not consumed the registration yet
                assert response.status_code == 201, response.text
                return response.json()

            return await eventually(accepted, what="travel accepting the claim")

        async def status_in_travel(claim: dict, status: str) -> dict:
            async def reached():
                found = (await travel.get(f"/claims/{claim['id']}")).json()
                return found if found["status"] == status else None

            return await eventually(reached, what=f"the claim becoming {status} in travel")

        first = await submit(delegates[0])
        assert first["coe_funded"] == "555.00"  # 400.00 transport + 1 night x 155.00
        await status_in_travel(first, "approved")
        second = await submit(delegates[1])
        await status_in_travel(second, "held")
        assert (await finance.get(f"/reimbursements/{second['id']}")).json()["status"] == "held"

        await finance.put(f"/budgets/{starts_on.year}", json=budget("1110.00"))
        await status_in_travel(second, "approved")
        paid = await finance.post(f"/reimbursements/{first['id']}/payment", json={"paid_on": today().isoformat()})
        assert paid.status_code == 200, paid.text
        await status_in_travel(first, "paid")
        figures = (await finance.get(f"/budgets/{starts_on.year}")).json()["lines"]["delegate_travel"]
        assert (figures["committed"], figures["spent"], figures["headroom"]) == ("555.00", "555.00", "0.00")
