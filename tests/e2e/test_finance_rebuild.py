"""Finance's figures rebuilt from the topics into a fresh database equal the live ones."""

import asyncio
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from contracts.events import CityJoined, ExpertVisitClaimed, JoinDateCorrected, TravelClaimAmended, TravelClaimed
from deploy.kafka.acls import grant
from deploy.kafka.principals import login
from services.common.api import today
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.e2e.test_finance_over_kafka import publish

from tests.support import consumed, eventually, running

ROOT = Path(__file__).parents[2]
YEAR = today().year


def travel_claim(amount: str, city_id, *, european: bool = True, city_borne: str = "0.00") -> TravelClaimed:
    return TravelClaimed(
        claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=city_id, delegate_email="d@city.org", european=european,
        budget_line="delegate_travel", coe_funded=amount, city_borne=city_borne, submitted_on=today(), event_year=YEAR,
    )


async def figures(client) -> dict:
    """Everything finance reports, as of a fixed day so that two databases can be compared."""
    on = (today() + timedelta(days=75)).isoformat()
    claims = (await client.get("/reimbursements", params={"limit": 1000})).json()
    return {
        "budgets": [(await client.get(f"/budgets/{year}")).json() for year in (YEAR, YEAR + 1)],
        "reconciliation": [(await client.get(f"/reconciliation/{year}", params={"on": on})).json() for year in (YEAR, YEAR + 1)],
        "credits": (await client.get("/credits")).json(),
        "invoices": sorted((await client.get("/invoices", params={"limit": 1000})).json(), key=lambda i: i["id"]),
        "claims": sorted(claims, key=lambda c: c["claim_id"]),
        "spending": (await client.get(f"/budgets/{YEAR}/spending")).json(),
        "traces": [
            (await client.get(f"/reconciliation/{YEAR}/trace", params={"account": account}))
            .json()["total"] for account in ("invoiced", "received", "credited", "credit", "allocation", "committed", "spent")
        ],
        "snapshot": {k: v for k, v in (await client.get("/dashboard/snapshot", params={"year": YEAR})).json().items()
                     if k not in ("as_of", "recent_events")},
    }


async def run_rebuild(platform, database: dict) -> tuple[int, str]:
    args = ["--into", database["DATABASE_URL"], *(["--schema", database["database_schema"]] if "database_schema" in database else [])]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.finance.rebuild", *args, cwd=ROOT,
        env={**os.environ, **login(platform.kafka, "finance").env(), "KAFKA_TOPIC_PREFIX": platform.prefix},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, output.decode()


async def test_the_figures_rebuilt_from_the_topics_equal_the_live_ones(platform) -> None:
    app = platform.finance()
    async with running(app) as finance:
        await consumed(app)
        cities = [CityJoined(city_id=uuid4(), name=name, country=country, european=european, joined_on=joined_on)
                  for name, country, european, joined_on in [
                      ("Oslo", "NO", True, date(YEAR, 2, 1)), ("Lublin", "PL", True, date(YEAR, 3, 1)),
                      ("Montréal", "CA", False, date(YEAR, 4, 1)), ("Tampere", "FI", True, date(YEAR, 10, 2))]]
        await publish(platform, *cities, service="membership")
        await eventually(lambda: _count(finance, "/invoices", 4), what="four contribution invoices")
        budget = {"administration": "12000.00", "delegate_travel": "1000.00", "expert_visits": "2000.00", "index_analysis": "500.00", "events": "0.00"}
        assert (await finance.put(f"/budgets/{YEAR}", json={"lines": budget})).status_code == 200

        oslo, lublin, montreal = (c.city_id for c in cities[:3])
        claims = [travel_claim("400.00", oslo), travel_claim("500.00", lublin), travel_claim("300.00", oslo),
                  travel_claim("90.00", lublin), travel_claim("0.00", montreal, european=False, city_borne="720.00")]
        # One at a time: claims are keyed by claim id, so across partitions their order is not kept,
        # and first come, first served depends on it.
        for decided, claim in enumerate(claims, start=1):
            await publish(platform, claim, service="travel")
            await eventually(lambda decided=decided: _count(finance, "/reimbursements", decided), what=f"decision {decided}")
        visits = [ExpertVisitClaimed(claim_id=uuid4(), city_id=lublin, european=True, visit_date=date(YEAR, 5, 5), coe_funded="1200.00", recharged="0.00"),
                  ExpertVisitClaimed(claim_id=uuid4(), city_id=montreal, european=False, visit_date=date(YEAR, 6, 6), coe_funded="0.00", recharged="2100.00")]
        await publish(platform, *visits, service="travel")
        await eventually(lambda: _count(finance, "/reimbursements", 7), what="seven decisions")

        invoices = {(i["city_id"], i["kind"]): i for i in (await finance.get("/invoices", params={"limit": 100})).json()}
        on = today().isoformat()
        for (city, kind), amount, reference in [((oslo, "contribution"), "5000.00", "B-1"), ((lublin, "contribution"), "2000.00", "B-2"),
                                               ((str(montreal), "contribution"), "5600.00", "B-3"), ((str(montreal), "expert_visit_recharge"), "1000.00", "B-4")]:
            invoice = invoices[(str(city), kind)]
            paid = await finance.post(f"/invoices/{invoice['id']}/payments", json={"amount": amount, "paid_on": on, "reference": reference})
            assert paid.status_code == 201, paid.text
        credit = await finance.post(f"/invoices/{invoices[(str(lublin), 'contribution')]['id']}/credit-notes", json={"amount": "500.00", "reason": "pro rata"})
        assert credit.status_code == 201, credit.text
        order = await finance.post(f"/budgets/{YEAR}/spending", json={"budget_line": "index_analysis", "kind": "commitment", "amount": "450.00", "reference": "PO-3"})
        await finance.post(f"/spending/{order.json()['id']}/settlement", json={"spent": "420.00"})
        await finance.post(f"/budgets/{YEAR}/spending", json={"budget_line": "administration", "kind": "spent", "amount": "1500.00", "reference": "rent"})
        held = [c["claim_id"] for c in (await finance.get("/reimbursements", params={"status": "held"})).json()]
        assert len(held) == 2  # the 300 does not fit after 400 + 500; the 90 waits behind it
        assert (await finance.post(f"/reimbursements/{claims[0].claim_id}/payment", json={"paid_on": on, "amount": "380.00"})).status_code == 200
        assert (await finance.post(f"/reimbursements/{held[0]}/rejection", json={"reason": "no receipt"})).status_code == 200
        assert (await finance.put(f"/budgets/{YEAR}", json={"lines": {**budget, "delegate_travel": "1100.00"}})).status_code == 200
        await finance.post("/contribution-runs", json={"year": YEAR + 1})

        # Corrections: each is a new fact on a topic, so the rebuild must reproduce it too.
        amended = TravelClaimAmended(
            claim_id=claims[3].claim_id, registration_id=claims[3].registration_id, workshop_id=claims[3].workshop_id,
            city_id=lublin, european=True, budget_line="delegate_travel", coe_funded="120.00", city_borne="0.00",
            previous_coe_funded="90.00", event_year=YEAR, amended_on=today(), amendment=1,
        )
        await publish(platform, amended, service="travel")
        await eventually(lambda: _claim_amount(finance, claims[3].claim_id, "120.00"), what="the amended claim decided again")
        resubmitted = travel_claim("100.00", oslo).model_copy(update={"supersedes": UUID(held[0]), "claim_version": 2})
        await publish(platform, resubmitted, service="travel")
        await eventually(lambda: _count(finance, "/reimbursements", 8), what="the resubmission decided")
        await publish(platform, JoinDateCorrected(city_id=oslo, joined_on=date(YEAR, 10, 3), previous_joined_on=date(YEAR, 2, 1),
                                                  european=True, reason="signed in October"), service="membership")
        await eventually(lambda: _status(finance, invoices[(str(oslo), "contribution")]["id"], "cancelled"),
                         what="Oslo's contribution cancelled by the corrected join date")
        recharge = invoices[(str(montreal), "expert_visit_recharge")]["id"]
        [bank_4] = (await finance.get(f"/invoices/{recharge}/payments")).json()
        assert (await finance.post(f"/payments/{bank_4['id']}/reversal", json={"reason": "bounced"})).status_code == 200
        assert (await finance.post(f"/invoices/{recharge}/credit-applications", json={"amount": "300.00"})).status_code == 201
        assert (await finance.post(f"/credits/{montreal}/refunds", json={"amount": "100.00", "reference": "R-1"})).status_code == 201
        tampere = str(cities[3].city_id)
        manual = await finance.post("/invoices", json={"city_id": tampere, "year": YEAR, "reason": "agreed from October"})
        assert manual.status_code == 201, manual.text
        rent = next(e for e in (await finance.get(f"/budgets/{YEAR}/spending")).json() if e["reference"] == "rent")
        assert (await finance.post(f"/spending/{rent['id']}/reversal", json={"reason": "paid by the host"})).status_code == 200

        await eventually(lambda: _drained(app), what="every decision published")
        live = await figures(finance)
    assert live["budgets"][0]["lines"]["delegate_travel"]["spent"] == "380.00"  # the scenario did happen
    assert live["reconciliation"][0]["contributions"]["total"]["credit"] == "5600.00"  # Montréal's 600, Oslo's 5000
    assert live["budgets"][0]["lines"]["administration"]["spent"] == "0.00"
    assert {c["claim_id"]: c["supersedes"] for c in live["claims"]}[str(resubmitted.claim_id)] == held[0]
    assert next(c for c in live["credits"] if c["city_id"] == str(montreal))["credit"] == "200.00"

    database = platform.databases("finance_rebuilt")
    if platform.kafka.secured:  # the rebuild reads as finance, with no more than finance's ACLs
        await asyncio.to_thread(grant, platform.kafka, platform.prefix, ["finance"])
    code, output = await run_rebuild(platform, database)
    assert code == 0, output
    assert "events applied" in output and "0 unreadable" in output, output
    rebuilt_app = build_app(FinanceSettings(**{**platform.settings("finance"), **database, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}))
    async with running(rebuilt_app) as rebuilt:
        assert await figures(rebuilt) == live
        # The legal numbers came back with the events, and the series go on after them, gap-free.
        numbers = sorted(i["number"] for i in live["invoices"])
        assert numbers == [f"ICC-{numbers[0][4:8]}-{n:04d}" for n in range(1, len(numbers) + 1)], numbers
        notes = [n for i in live["invoices"] for n in (await rebuilt.get(f"/invoices/{i['id']}/credit-notes")).json()]
        assert notes and all(n["number"] and n["number"].startswith("ICC-CN-") for n in notes)
        tampere = next(i for i in live["invoices"] if i["city_id"] == str(cities[3].city_id) and i["status"] != "cancelled")
        credited = await rebuilt.post(f"/invoices/{tampere['id']}/credit-notes", json={"amount": "1.00", "reason": "rounding"})
        assert credited.status_code == 201, credited.text
        newest = (await rebuilt.get(f"/invoices/{tampere['id']}/credit-notes")).json()[-1]["number"]
        assert int(newest.rsplit("-", 1)[1]) == max(int(n["number"].rsplit("-", 1)[1]) for n in notes) + 1

    again, output = await run_rebuild(platform, database)
    assert again == 2 and "refused" in output  # never on top of existing figures


async def _claim_amount(client, claim_id, amount: str) -> bool:
    claim = (await client.get(f"/reimbursements/{claim_id}")).json()
    return claim["amount"] == amount and claim["status"] in ("approved", "held")


async def _status(client, invoice_id: str, status: str) -> bool:
    return (await client.get(f"/invoices/{invoice_id}")).json()["status"] == status


async def _count(client, path: str, n: int) -> bool:
    return len((await client.get(path, params={"limit": 1000})).json()) >= n


async def _drained(app) -> bool:
    return await app.state.runtime.relay.pending() == 0
