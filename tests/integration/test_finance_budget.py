"""Budget lines and the claims they fund, on SQLite and PostgreSQL: events delivered through the
real consumer machinery (records built by hand), commands through the HTTP API."""

import asyncio
import itertools
import json
from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import ExpertVisitClaimed, TravelClaimed
from services.common.db import OutboxMessage
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
YEAR = 2026
offsets = itertools.count()


def record(event, service: str = "travel") -> ConsumerRecord:
    envelope = wrap(event, service=service)
    return ConsumerRecord(event.topic.value, 0, next(offsets), 0, 0, envelope.key.encode(), to_value(envelope), None, 0, 0, to_headers(envelope))


def claimed(amount: str, *, european: bool = True, year: int = YEAR, city_borne: str = "0.00", city_id=None) -> TravelClaimed:
    return TravelClaimed(
        claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=city_id or uuid4(), delegate_email="d@city.eu",
        european=european, budget_line="delegate_travel", coe_funded=amount, city_borne=city_borne,
        submitted_on=date(year, 3, 1), event_year=year,
    )


def allocations(**lines: str) -> dict:
    return {"lines": {"administration": "0.00", "delegate_travel": "0.00", "expert_visits": "0.00", "index_analysis": "0.00",
                      "events": "0.00", **lines}}


@pytest.fixture
async def finance(databases):
    app = build_app(FinanceSettings(**NO_BROKER, **databases("finance")))
    async with running(app) as client:
        yield client, app.state.runtime


async def deliver(runtime, *events) -> None:
    outcome = await runtime.consumer.apply([record(event) for event in events])
    assert outcome.dead_lettered == [] and outcome.applied == len(events)


async def set_budget(client, year: int = YEAR, **lines: str) -> dict:
    response = await client.put(f"/budgets/{year}", json=allocations(**lines))
    assert response.status_code == 200, response.text
    return response.json()


async def status_of(client, claim) -> str:
    response = await client.get(f"/reimbursements/{claim.claim_id}")
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def line(client, name: str = "delegate_travel", year: int = YEAR) -> dict:
    return (await client.get(f"/budgets/{year}")).json()["lines"][name]


async def emitted(runtime, *types: str) -> list[tuple[str, dict]]:
    """The events finance queued for Kafka, in order: (type, payload)."""
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.position))).all()
    found = [(dict(row.headers)["ce_type"], json.loads(row.value)) for row in rows]
    return [(t, payload) for t, payload in found if not types or t in types]


async def test_a_claim_exactly_equal_to_the_headroom_is_approved(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    first, exact = claimed("600.00"), claimed("400.00")
    await deliver(runtime, first, exact)
    assert [await status_of(client, c) for c in (first, exact)] == ["approved", "approved"]
    assert await line(client) == {
        "line": "delegate_travel", "allocation": "1000.00", "available": "1000.00", "committed": "1000.00", "spent": "0.00",
        "headroom": "0.00", "used_pct": "100.0", "warning": "90", "held_claims": 0,
    }
    approved = await emitted(runtime, "ReimbursementApproved")
    assert [(p["claim_id"], p["amount"], p["budget_line"], p["year"]) for _, p in approved] == [
        (str(first.claim_id), "600.00", "delegate_travel", YEAR), (str(exact.claim_id), "400.00", "delegate_travel", YEAR)
    ]


async def test_a_claim_one_cent_over_the_headroom_is_held_never_part_funded(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    over = claimed("1000.01")
    await deliver(runtime, over)
    assert await status_of(client, over) == "held"
    assert (await line(client))["committed"] == "0.00" and (await line(client))["headroom"] == "1000.00"
    [(_, held)] = await emitted(runtime, "ReimbursementHeld", "ReimbursementApproved")
    assert held["amount"] == "1000.01" and "does not cover 1000.01" in held["reason"]


async def test_held_claims_are_released_first_come_first_served_without_overtaking(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="100.00")
    fits, big, small, last = claimed("100.00"), claimed("300.00"), claimed("50.00"), claimed("200.00")
    for claim in (fits, big, small, last):  # one by one: the order they arrive in is the queue's
        await deliver(runtime, claim)
    assert [await status_of(client, c) for c in (fits, big, small, last)] == ["approved", "held", "held", "held"]
    assert "earlier claim(s) wait" in (await client.get(f"/reimbursements/{small.claim_id}")).json()["reason"]

    await set_budget(client, delegate_travel="350.00")  # 250 free: the 300 first in line does not fit, the 50 waits behind it
    assert [await status_of(client, c) for c in (big, small, last)] == ["held", "held", "held"]

    await set_budget(client, delegate_travel="450.00")  # 350 free: the 300, then the 50; the 200 no longer fits
    assert [await status_of(client, c) for c in (big, small, last)] == ["approved", "approved", "held"]
    released = [p["claim_id"] for _, p in await emitted(runtime, "ReimbursementApproved")]
    assert released[-2:] == [str(big.claim_id), str(small.claim_id)]
    held = (await client.get("/reimbursements", params={"status": "held"})).json()
    assert [c["claim_id"] for c in held] == [str(last.claim_id)]

    await set_budget(client, delegate_travel="650.00")
    assert await status_of(client, last) == "approved"
    assert (await line(client))["headroom"] == "0.00"


async def test_a_claim_for_a_year_without_budget_is_held_until_the_budget_is_set(finance) -> None:
    client, runtime = finance
    early = claimed("250.00", year=2027)
    await deliver(runtime, early)
    claim = (await client.get(f"/reimbursements/{early.claim_id}")).json()
    assert claim["status"] == "held" and "no budget set for 2027" in claim["reason"]
    await set_budget(client, 2027, delegate_travel="250.00")
    assert await status_of(client, early) == "approved"
    assert (await line(client, year=2027))["headroom"] == "0.00"


async def test_a_non_european_delegate_is_approved_with_nothing_committed(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="100.00")
    montreal = claimed("0.00", european=False, city_borne="840.00")
    await deliver(runtime, montreal)
    assert await status_of(client, montreal) == "approved"
    assert (await line(client))["committed"] == "0.00"
    [(_, approved)] = await emitted(runtime, "ReimbursementApproved")
    assert approved["amount"] == "0.00"
    snapshot = (await client.get("/dashboard/snapshot", params={"year": YEAR})).json()
    assert snapshot["spending"] == {"european": "0.00", "non_european": "840.00"}


async def test_paying_an_approved_claim_moves_its_commitment_to_spent_and_a_smaller_payment_releases_the_rest(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="500.00")
    approved, waiting = claimed("400.00"), claimed("150.00")
    await deliver(runtime, approved, waiting)
    assert await status_of(client, waiting) == "held"
    paid = await client.post(f"/reimbursements/{approved.claim_id}/payment", json={"paid_on": "2026-04-01", "amount": "320.00"})
    assert paid.status_code == 200 and paid.json()["status"] == "paid" and paid.json()["paid_amount"] == "320.00"
    # 80.00 released: 180 free now covers the 150 waiting
    assert await status_of(client, waiting) == "approved"
    assert {k: (await line(client))[k] for k in ("committed", "spent", "headroom")} == {"committed": "150.00", "spent": "320.00", "headroom": "30.00"}
    [(_, event)] = await emitted(runtime, "ReimbursementPaid")
    assert event == {"claim_id": str(approved.claim_id), "amount": "320.00", "paid_on": "2026-04-01"}
    again = await client.post(f"/reimbursements/{approved.claim_id}/payment", json={"paid_on": "2026-04-02"})
    assert again.status_code == 409


async def test_rejecting_releases_a_commitment_and_the_queue_moves_up(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="300.00")
    approved, first_held, second_held = claimed("300.00"), claimed("200.00"), claimed("100.00")
    await deliver(runtime, approved, first_held, second_held)
    rejected = await client.post(f"/reimbursements/{first_held.claim_id}/rejection", json={"reason": "no receipt for the flight"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert await status_of(client, second_held) == "held"  # still no headroom
    await client.post(f"/reimbursements/{approved.claim_id}/rejection", json={"reason": "event cancelled"})
    assert await status_of(client, second_held) == "approved"
    assert (await line(client))["committed"] == "100.00"
    assert [p["reason"] for _, p in await emitted(runtime, "ReimbursementRejected")] == ["no receipt for the flight", "event cancelled"]
    paid_claim = await client.post(f"/reimbursements/{second_held.claim_id}/payment", json={"paid_on": "2026-05-01"})
    assert paid_claim.status_code == 200
    assert (await client.post(f"/reimbursements/{second_held.claim_id}/rejection", json={"reason": "late"})).status_code == 409


async def test_concurrent_claims_never_overspend_the_line(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    claims = [claimed("70.00") for _ in range(30)]
    # Each claim in its own transaction, all at once: as many consumers racing for the same line.
    await asyncio.gather(*(deliver(runtime, claim) for claim in claims))
    statuses = [await status_of(client, claim) for claim in claims]
    assert statuses.count("approved") == 14 and statuses.count("held") == 16  # 14 x 70 = 980: the 15th never fits
    assert {k: (await line(client))[k] for k in ("committed", "headroom", "held_claims")} == {
        "committed": "980.00", "headroom": "20.00", "held_claims": 16
    }


async def test_concurrent_claims_and_spending_never_take_the_headroom_below_zero(finance) -> None:
    client, runtime = finance
    await set_budget(client, expert_visits="1000.00")
    visits = [
        ExpertVisitClaimed(claim_id=uuid4(), city_id=uuid4(), european=True, visit_date=date(YEAR, 5, 1), coe_funded="50.00", recharged="0.00")
        for _ in range(20)
    ]
    spend = {"budget_line": "expert_visits", "kind": "spent", "amount": "50.00", "reference": "expert fee"}
    results = await asyncio.gather(
        *(deliver(runtime, visit) for visit in visits),
        *(client.post(f"/budgets/{YEAR}/spending", json={**spend, "reference": f"fee {i}"}) for i in range(20)),
    )
    spent_ok = sum(1 for r in results[20:] if r.status_code == 201)
    assert all(r.status_code in (201, 409) for r in results[20:])
    approved = [await status_of(client, visit) for visit in visits].count("approved")
    figures = await line(client, "expert_visits")
    assert (approved + spent_ok) * Decimal("50.00") == Decimal(figures["committed"]) + Decimal(figures["spent"]) == Decimal("1000.00")
    assert figures["headroom"] == "0.00"


async def test_an_expert_visit_to_a_non_european_city_is_invoiced_once(finance) -> None:
    client, runtime = finance
    city = uuid4()
    visit = ExpertVisitClaimed(claim_id=uuid4(), city_id=city, european=False, visit_date=date(YEAR, 6, 10), coe_funded="0.00", recharged="1840.50")
    await deliver(runtime, visit)
    republished = record(visit)  # travel publishing the same visit again, as a new event
    assert (await runtime.consumer.apply([republished])).applied == 1
    [invoice] = (await client.get("/invoices", params={"city_id": str(city)})).json()
    assert (invoice["kind"], invoice["year"], invoice["amount"], invoice["status"]) == ("expert_visit_recharge", YEAR, "1840.50", "issued")
    assert date.fromisoformat(invoice["due_on"]) - date.fromisoformat(invoice["issued_on"]) == date(2026, 3, 2) - date(2026, 1, 1)
    assert [p["kind"] for _, p in await emitted(runtime, "InvoiceIssued")] == ["expert_visit_recharge"]
    recharges = (await client.get(f"/reconciliation/{YEAR}")).json()["recharges"]["total"]
    assert recharges["invoiced"] == "1840.50" and recharges["outstanding"] == "1840.50"


async def test_a_european_expert_visit_is_committed_on_the_expert_visits_line(finance) -> None:
    client, runtime = finance
    await set_budget(client, expert_visits="2000.00")
    visit = ExpertVisitClaimed(claim_id=uuid4(), city_id=uuid4(), european=True, visit_date=date(YEAR, 6, 10), coe_funded="1500.00", recharged="0.00")
    await deliver(runtime, visit)
    assert await status_of(client, visit) == "approved"
    assert (await line(client, "expert_visits"))["committed"] == "1500.00"
    assert await emitted(runtime, "InvoiceIssued") == []


async def test_warnings_at_80_and_90_percent_use(finance) -> None:
    client, runtime = finance
    await set_budget(client, index_analysis="1000.00")
    warnings = []
    for amount in ("799.99", "0.01", "100.00"):
        response = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "index_analysis", "kind": "commitment", "amount": amount, "reference": "INDEX batch"})
        assert response.status_code == 201, response.text
        figures = await line(client, "index_analysis")
        warnings.append((figures["used_pct"], figures["warning"]))
    assert warnings == [("80.0", None), ("80.0", "80"), ("90.0", "90")]


async def test_other_spending_is_committed_settled_and_its_release_frees_held_claims(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    order = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "delegate_travel", "kind": "commitment", "amount": "900.00", "reference": "PO-17 group tickets"})
    assert order.status_code == 201
    waiting = claimed("300.00")
    await deliver(runtime, waiting)
    assert await status_of(client, waiting) == "held"
    settled = await client.post(f"/spending/{order.json()['id']}/settlement", json={"spent": "650.00"})
    assert settled.status_code == 200 and settled.json()["open"] == "0.00" and settled.json()["spent"] == "650.00"
    assert await status_of(client, waiting) == "approved"  # 250 released + 100 free covers 300
    assert {k: (await line(client))[k] for k in ("committed", "spent", "headroom")} == {"committed": "300.00", "spent": "650.00", "headroom": "50.00"}
    too_much = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "delegate_travel", "kind": "spent", "amount": "50.01", "reference": "taxi"})
    assert too_much.status_code == 409 and "does not cover 50.01" in too_much.json()["detail"]
    assert (await client.post(f"/spending/{order.json()['id']}/settlement", json={"spent": "1.00"})).status_code == 409
    [(_, commitment), (_, settlement)] = await emitted(runtime, "SpendingRecorded")
    assert (commitment["committed"], settlement["committed"], settlement["spent"]) == ("900.00", "-900.00", "650.00")


async def test_a_budget_below_what_is_committed_and_bad_input_are_refused_and_write_nothing(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="500.00")
    await deliver(runtime, claimed("400.00"))
    before = await emitted(runtime)
    below = await client.put(f"/budgets/{YEAR}", json=allocations(delegate_travel="399.99"))
    assert below.status_code == 409 and "delegate_travel" in below.json()["detail"]
    cases = [
        (allocations(delegate_travel="-1.00"), "delegate_travel"),
        (allocations(delegate_travel=0.5), "delegate_travel"),
        ({"lines": {"administration": "1.00"}}, "events"),
    ]
    for body, field in cases:
        response = await client.put(f"/budgets/{YEAR}", json=body)
        assert response.status_code == 422 and any(e["loc"][-1] == field for e in response.json()["detail"]), response.text
    assert (await client.put("/budgets/1850", json=allocations())).status_code == 422
    bad_spending = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "travel", "kind": "spent", "amount": "1.00", "reference": "x"})
    assert bad_spending.status_code == 422
    assert (await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "events", "kind": "spent", "amount": "0.00", "reference": "x"})).status_code == 422
    assert (await client.post(f"/reimbursements/{uuid4()}/payment", json={"paid_on": "2026-01-01"})).status_code == 404
    assert await emitted(runtime) == before
    assert (await line(client))["allocation"] == "500.00"


async def test_a_claim_republished_by_travel_is_decided_once(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    claim = claimed("100.00")
    await deliver(runtime, claim)
    await runtime.consumer.apply([record(claim)])  # same claim, new event id
    assert (await line(client))["committed"] == "100.00"
    assert len(await emitted(runtime, "ReimbursementApproved")) == 1
