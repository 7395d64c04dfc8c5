"""Contributions, payments, credit notes, ageing and the reconciliation, on SQLite and PostgreSQL."""

import asyncio
import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from uuid import uuid4

from sqlalchemy import func, select

from contracts.events import CityJoined, CityLeft
from services.common.api import today
from services.finance.db import StoredInvoice
from tests.integration.test_finance_budget import YEAR, deliver, emitted, finance, record, set_budget  # noqa: F401 (fixture)



def joined(on: date, name: str = "Ghent", city_id=None) -> CityJoined:
    return CityJoined(city_id=city_id or uuid4(), name=name, country="BE", european=True, joined_on=on)


async def invoices_of(client, city_id) -> list[dict]:
    return (await client.get("/invoices", params={"city_id": str(city_id)})).json()


async def contribution(client, runtime, on: date = date(2026, 3, 1), name: str = "Ghent") -> dict:
    city = joined(on, name)
    await deliver(runtime, city)
    [invoice] = await invoices_of(client, city.city_id)
    return invoice


async def pay(client, invoice: dict, amount: str, reference: str, paid_on: date | None = None):
    # today() when called, not when imported: a run that crosses midnight must not pay "in the future"
    paid_on = paid_on or today()
    return await client.post(f"/invoices/{invoice['id']}/payments", json={"amount": amount, "paid_on": paid_on.isoformat(), "reference": reference})


async def test_a_member_is_invoiced_for_its_join_year_or_the_next_from_1_october(finance) -> None:
    client, runtime = finance
    september, october = joined(date(2026, 9, 30)), joined(date(2026, 10, 1))
    await deliver(runtime, september, october)
    [(sep_invoice,), (oct_invoice,)] = [await invoices_of(client, c.city_id) for c in (september, october)]
    assert (sep_invoice["year"], oct_invoice["year"]) == (2026, 2027)
    assert sep_invoice["amount"] == oct_invoice["amount"] == "5000.00"
    assert date.fromisoformat(sep_invoice["due_on"]) == date.fromisoformat(sep_invoice["issued_on"]) + timedelta(days=60)


async def test_the_annual_run_invoices_every_active_member_once(finance) -> None:
    client, runtime = finance
    staying, leaving, late = joined(date(2026, 2, 1), "Aarhus"), joined(date(2026, 3, 1), "Bergen"), joined(date(2026, 10, 15), "Cádiz")
    await deliver(runtime, staying, leaving, late)
    await deliver(runtime, CityLeft(city_id=leaving.city_id, effective_on=date(2026, 12, 31)))
    run = await client.post("/contribution-runs", json={"year": 2027})
    assert run.status_code == 200, run.text
    assert (run.json()["issued"], run.json()["already_invoiced"]) == (1, 1)  # Cádiz was invoiced for 2027 when it joined
    assert [i["year"] for i in await invoices_of(client, staying.city_id)] == [2026, 2027]
    assert [i["year"] for i in await invoices_of(client, leaving.city_id)] == [2026]
    again = (await client.post("/contribution-runs", json={"year": 2027})).json()
    assert (again["issued"], again["already_invoiced"]) == (0, 2)
    assert (await client.post("/contribution-runs", json={"year": "next"})).status_code == 422


async def test_the_annual_run_gives_one_invoice_per_city_and_year_under_concurrent_runs_and_replays(finance) -> None:
    client, runtime = finance
    history = [record(joined(date(2026, 1, 1 + i), f"City {i:02}"), service="membership") for i in range(12)]
    await runtime.consumer.apply(history)
    results = await asyncio.gather(
        *(client.post("/contribution-runs", json={"year": 2027}) for _ in range(4)),
        runtime.consumer.apply(history),  # the whole topic replayed meanwhile
        *(client.post("/contribution-runs", json={"year": 2026}) for _ in range(2)),
    )
    runs = [r.json() for r in results if hasattr(r, "json")]
    assert all(r.status_code == 200 for r in results if hasattr(r, "status_code"))
    assert sum(r["issued"] for r in runs if r["year"] == 2027) == 12
    assert sum(r["issued"] for r in runs if r["year"] == 2026) == 0
    async with runtime.sessions() as session:
        per_city_year = (await session.execute(
            select(StoredInvoice.city_id, StoredInvoice.year, func.count()).group_by(StoredInvoice.city_id, StoredInvoice.year)
        )).all()
    assert len(per_city_year) == 24 and {n for *_, n in per_city_year} == {1}
    assert len(await emitted(runtime, "InvoiceIssued")) == 24


async def test_partial_payments_then_paid_and_the_administration_line_is_funded(finance) -> None:
    client, runtime = finance
    invoice = await contribution(client, runtime)
    first = await pay(client, invoice, "2000.00", "BANK-1")
    assert first.status_code == 201, first.text
    assert (first.json()["invoice"]["status"], first.json()["invoice"]["outstanding"], first.json()["applied"]) == ("partly_paid", "3000.00", "2000.00")
    second = await pay(client, invoice, "3000.00", "BANK-2")
    assert second.json()["invoice"]["status"] == "paid" and second.json()["credit"] == "0.00"
    administration = (await client.get(f"/budgets/{YEAR}")).json()["lines"]["administration"]
    assert administration["available"] == "5000.00"
    assert [p["amount"] for _, p in await emitted(runtime, "PaymentReceived")] == ["2000.00", "3000.00"]


async def test_an_overpayment_is_kept_as_a_credit_on_the_city(finance) -> None:
    client, runtime = finance
    invoice = await contribution(client, runtime, name="Lisbon")
    paid = await pay(client, invoice, "6000.00", "BANK-9")
    assert (paid.json()["applied"], paid.json()["credit"], paid.json()["invoice"]["status"]) == ("5000.00", "1000.00", "paid")
    assert (await client.get("/credits")).json() == [{"city_id": invoice["city_id"], "name": "Lisbon", "credit": "1000.00"}]
    total = (await client.get(f"/reconciliation/{YEAR}")).json()["contributions"]["total"]
    assert (total["received"], total["outstanding"], total["credit"]) == ("5000.00", "0.00", "1000.00")


async def test_a_credit_note_cancels_an_invoice_which_is_never_deleted(finance) -> None:
    client, runtime = finance
    invoice = await contribution(client, runtime)
    await pay(client, invoice, "1000.00", "BANK-1")
    partial = await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "3000.00", "reason": "joined late, pro rata"})
    assert partial.status_code == 201 and (partial.json()["status"], partial.json()["outstanding"]) == ("partly_paid", "1000.00")
    too_much = await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "2000.01", "reason": "x"})
    assert too_much.status_code == 409
    rest = await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "2000.00", "reason": "membership withdrawn"})
    assert rest.json()["status"] == "cancelled" and rest.json()["paid"] == "0.00"  # the 1000 paid is now the city's credit
    [listed] = await invoices_of(client, invoice["city_id"])
    assert (listed["id"], listed["status"], listed["credited"]) == (invoice["id"], "cancelled", "5000.00")
    assert (await client.get("/credits")).json()[0]["credit"] == "1000.00"
    assert (await pay(client, invoice, "10.00", "BANK-2")).status_code == 409
    assert len(await emitted(runtime, "CreditNoteIssued")) == 2


async def test_a_credit_note_cannot_take_back_contributions_already_committed(finance) -> None:
    client, runtime = finance
    invoice = await contribution(client, runtime)
    await pay(client, invoice, "5000.00", "BANK-1")
    await set_budget(client, administration="5000.00")
    spent = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "administration", "kind": "spent", "amount": "4500.00", "reference": "secretariat"})
    assert spent.status_code == 201, spent.text
    refused = await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "600.00", "reason": "error"})
    assert refused.status_code == 409 and "administration" in refused.json()["detail"]
    allowed = await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "500.00", "reason": "error"})
    assert allowed.status_code == 201
    assert (await client.get(f"/budgets/{YEAR}")).json()["lines"]["administration"]["headroom"] == "0.00"


async def test_bad_payments_get_a_clear_4xx_and_write_nothing(finance) -> None:
    client, runtime = finance
    invoice = await contribution(client, runtime)
    url = f"/invoices/{invoice['id']}/payments"
    good = {"amount": "100.00", "paid_on": today().isoformat(), "reference": "BANK-1"}
    for field, value in [("amount", 100.5), ("amount", "-1.00"), ("amount", "0.00"), ("amount", "1.005"),
                         ("paid_on", (today() + timedelta(days=1)).isoformat()), ("reference", "")]:
        response = await client.post(url, json={**good, field: value})
        assert response.status_code == 422 and any(e["loc"][-1] == field for e in response.json()["detail"]), (field, response.text)
    assert (await client.post(f"/invoices/{uuid4()}/payments", json=good)).status_code == 404
    assert (await client.post(url, json=good)).status_code == 201
    duplicate = await client.post(url, json=good)
    assert duplicate.status_code == 409 and "BANK-1" in duplicate.json()["detail"]
    assert [p["amount"] for _, p in await emitted(runtime, "PaymentReceived")] == ["100.00"]
    assert (await invoices_of(client, invoice["city_id"]))[0]["paid"] == "100.00"


async def test_outstanding_contributions_are_aged_and_overdue_after_60_days(finance) -> None:
    client, runtime = finance
    unpaid, half = await contribution(client, runtime, name="Alpha"), await contribution(client, runtime, name="Beta")
    await pay(client, half, "2500.00", "BANK-1")
    issued = date.fromisoformat(unpaid["issued_on"])
    expected = {30: ("0-30", "0.00"), 31: ("31-60", "0.00"), 60: ("31-60", "0.00"), 61: ("61-90", "7500.00"),
                120: ("91-120", "7500.00"), 121: ("121+", "7500.00")}
    for days, (bucket, overdue) in expected.items():
        report = (await client.get(f"/reconciliation/{YEAR}", params={"on": (issued + timedelta(days=days)).isoformat()})).json()
        total = report["contributions"]["total"]
        assert total["ageing"][bucket] == "7500.00" and total["outstanding"] == "7500.00", (days, total)
        assert sum(Decimal(v) for v in total["ageing"].values()) == Decimal("7500.00")
        assert total["overdue"] == overdue, days
        cities = {c["name"]: c for c in report["contributions"]["cities"]}
        assert (cities["Alpha"]["outstanding"], cities["Beta"]["outstanding"], cities["Beta"]["bucket"]) == ("5000.00", "2500.00", bucket)
    assert (await invoices_of(client, unpaid["city_id"]))[0]["status"] == "issued"


async def test_every_reconciliation_figure_is_the_sum_of_the_events_that_made_it(finance) -> None:
    client, runtime = finance
    one, two = await contribution(client, runtime, name="Oslo"), await contribution(client, runtime, name="Turku")
    await pay(client, one, "5200.00", "BANK-1")
    await pay(client, two, "1000.00", "BANK-2")
    await client.post(f"/invoices/{two['id']}/credit-notes", json={"amount": "500.00", "reason": "discount"})
    await set_budget(client, administration="8000.00", delegate_travel="1000.00")
    await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "administration", "kind": "commitment", "amount": "700.00", "reference": "rent"})
    report = (await client.get(f"/reconciliation/{YEAR}")).json()
    total = report["contributions"]["total"]
    assert (total["invoiced"], total["received"], total["credited"], total["credit"], total["outstanding"]) == (
        "10000.00", "6000.00", "500.00", "200.00", "3500.00")
    assert report["administration"] == {"planned": "8000.00", "received": "6000.00", "expected": "3500.00", "coverage_pct": "75.0",
                                        "committed": "700.00", "spent": "0.00", "headroom": "5300.00"}

    async def traced(account: str, **filters) -> dict:
        response = await client.get(f"/reconciliation/{YEAR}/trace", params={"account": account, **filters})
        assert response.status_code == 200, response.text
        return response.json()

    for account in ("invoiced", "received", "credited", "credit"):
        figure = await traced(account, invoice_kind="contribution")
        assert figure["total"] == total[account], account
        assert sum(Decimal(e["amount"]) for e in figure["entries"]) == Decimal(total[account])
    received_two = await traced("received", city_id=two["city_id"])
    assert [(e["event_type"], e["amount"]) for e in received_two["entries"]] == [("PaymentReceived", "1000.00")]
    issued_ids = {p["invoice_id"]: None for _, p in await emitted(runtime, "InvoiceIssued")}
    assert {e["ref"] for e in (await traced("invoiced"))["entries"]} == set(issued_ids)
    outbox_ids = await _outbox_event_ids(runtime)
    for account in ("invoiced", "received", "allocation", "committed"):
        assert {e["event_id"] for e in (await traced(account))["entries"]} <= outbox_ids  # each row names a published event
    for budget_line in report["lines"]:
        for account in ("committed", "spent"):
            assert (await traced(account, budget_line=budget_line["line"]))["total"] == budget_line[account]
        assert (await traced("allocation", budget_line=budget_line["line"]))["total"] == budget_line["allocation"]

    exported = (await client.get(f"/reconciliation/{YEAR}.csv"))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    by_section = {(r["section"], r["key"]): r for r in rows}
    assert by_section[("contributions_total", str(YEAR))]["outstanding"] == "3500.00"
    assert by_section[("contribution", two["city_id"])]["credited"] == "500.00"
    assert by_section[("contribution", two["city_id"])]["number"] == two["number"] and two["number"].startswith("ICC-")
    assert by_section[("budget_line", "administration")]["committed"] == "700.00"
    assert len([r for r in rows if r["section"] == "budget_line"]) == 5


async def _outbox_event_ids(runtime) -> set[str]:
    from services.common.db import OutboxMessage

    async with runtime.sessions() as session:
        return set(await session.scalars(select(OutboxMessage.message_id)))
