"""The finance unit's pages over the real finance, travel and membership services (in this process,
SQLite and PostgreSQL): each write through a form, a refusal shown next to its field, the PDF and
CSV handed on as downloads, the auditor reading without forms."""

from contextlib import AsyncExitStack
from datetime import date, timedelta
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from contracts.events import CityJoined
from services.common.api import today
from services.finance.app import build_app as build_finance
from services.finance.settings import FinanceSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from services.travel.app import build_app as build_travel
from services.travel.settings import TravelSettings
from tests.integration.test_finance_budget import allocations, claimed, deliver
from tests.portal import portal_over, text_of
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
YEAR = today().year


class Stack:
    def __init__(self, portal, finance, finance_runtime, membership, travel):
        self.portal, self.finance, self.runtime, self.membership, self.travel = portal, finance, finance_runtime, membership, travel

    async def member(self, name: str = "Ghent", joined_on: date | None = None) -> str:
        """A city known to membership (its name) and to finance (it joined: an invoice for its year)."""
        created = await self.membership.post("/cities", json={"name": name, "country": "BE", "population": 260_000})
        assert created.status_code == 201, created.text
        city_id = created.json()["id"]
        await deliver(self.runtime, CityJoined(city_id=city_id, name=name, country="BE", european=True,
                                               joined_on=joined_on or date(YEAR, 1, 15)))
        return city_id

    async def invoice_of(self, city_id: str) -> dict:
        [invoice] = (await self.finance.get("/invoices", params={"city_id": city_id})).json()
        return invoice


@pytest.fixture
async def stack(databases):
    finance_app = build_finance(FinanceSettings(**NO_BROKER, **databases("finance")))
    apps = {"finance": finance_app, "membership": build_membership(MembershipSettings(**NO_BROKER, **databases("membership"))),
            "travel": build_travel(TravelSettings(**NO_BROKER, **databases("travel")))}
    async with AsyncExitStack() as exits:
        clients = {name: await exits.enter_async_context(running(app)) for name, app in apps.items()}
        portal = await exits.enter_async_context(portal_over(apps))
        portal.sign_in("finance", username="fiona")
        yield Stack(portal, clients["finance"], finance_app.state.runtime, clients["membership"], clients["travel"])


def error_of(html: str, name: str) -> str:
    """The message shown next to field `name` (empty if none)."""
    marker = f'data-testid="error-{name}">'
    return html.split(marker, 1)[1].split("<", 1)[0] if marker in html else ""


# --- invoices -------------------------------------------------------------------------------------


async def test_a_payment_recorded_on_the_invoice_page_and_one_of_zero_refused_next_to_the_amount(stack) -> None:
    portal = stack.portal
    city_id = await stack.member("Ghent")
    invoice = await stack.invoice_of(city_id)

    listed = await portal.get("/finance/invoices", params={"year": YEAR, "status": "issued"})
    assert listed.status_code == 200
    assert "Ghent" in text_of(listed.text) and f"/finance/invoices/{invoice['id']}" in listed.text
    nothing = await portal.get("/finance/invoices", params={"year": YEAR, "status": "paid"})
    assert f"/finance/invoices/{invoice['id']}" not in nothing.text

    zero = await portal.form(f"/finance/invoices/{invoice['id']}/payments",
                             {"payment.amount": "0.00", "payment.paid_on": today().isoformat(), "payment.reference": "BANK-1"})
    assert zero.status_code == 422
    assert error_of(zero.text, "payment.amount") and 'value="BANK-1"' in zero.text  # as filled, the refusal by the amount
    assert (await stack.invoice_of(city_id))["paid"] == "0.00"

    portal.cookies.set("icc_lang", "fr")  # the note after the write is in the person's language too
    paid = await portal.form(f"/finance/invoices/{invoice['id']}/payments",
                             {"payment.amount": "5000.00", "payment.paid_on": today().isoformat(), "payment.reference": "BANK-1"})
    assert paid.status_code == 303 and paid.headers["location"] == f"/finance/invoices/{invoice['id']}"
    assert (await stack.invoice_of(city_id))["status"] == "paid"
    page = await portal.get(paid.headers["location"])
    words = text_of(page.text)
    assert "Paiement enregistré." in words and "Payée" in words and "5\xa0000,00\xa0€" in page.text and "BANK-1" in words

    twice = await portal.form(f"/finance/invoices/{invoice['id']}/payments",
                              {"payment.amount": "10.00", "payment.paid_on": today().isoformat(), "payment.reference": "BANK-1"})
    assert twice.status_code == 409 and error_of(twice.text, "payment.reference")  # the same bank reference twice


async def test_credit_note_credit_applied_and_refunded_and_a_payment_reversed_through_the_invoice_page(stack) -> None:
    portal = stack.portal
    city_id = await stack.member("Aarhus")
    invoice = await stack.invoice_of(city_id)
    at = f"/finance/invoices/{invoice['id']}"

    over = await portal.form(f"{at}/payments", {"payment.amount": "5200.00", "payment.paid_on": today().isoformat(),
                                                "payment.reference": "B-7"})
    assert over.status_code == 303
    [payment] = (await stack.finance.get(f"/invoices/{invoice['id']}/payments")).json()
    reversed_ = await portal.form(f"{at}/payments/{payment['id']}/reversal", {f"reversal-{payment['id']}.reason": "bounced"})
    assert reversed_.status_code == 303
    assert (await stack.invoice_of(city_id))["outstanding"] == "5000.00"
    assert "bounced" in text_of((await portal.get(at)).text)

    again = await portal.form(f"{at}/payments/{payment['id']}/reversal", {f"reversal-{payment['id']}.reason": "again"})
    assert again.status_code == 409 and "was reversed on" in again.text.split('data-testid="refused">', 1)[1]  # once only

    too_much = await portal.form(f"{at}/credit-notes", {"credit_note.amount": "6000.00", "credit_note.reason": "too much"})
    assert too_much.status_code == 409 and error_of(too_much.text, "credit_note.amount")
    noted = await portal.form(f"{at}/credit-notes", {"credit_note.amount": "1000.00", "credit_note.reason": "left early"})
    assert noted.status_code == 303
    page = await portal.get(at)
    [note] = (await stack.finance.get(f"/invoices/{invoice['id']}/credit-notes")).json()
    assert f"/finance/credit-notes/{note['id']}.pdf" in page.text and "left early" in text_of(page.text)

    # 4500.00 paid on the 4000.00 left: 500.00 credit, applied to the next year's invoice
    assert (await portal.form(f"{at}/payments", {"payment.amount": "4500.00", "payment.paid_on": today().isoformat(),
                                                 "payment.reference": "B-8"})).status_code == 303
    run = await portal.form("/finance/contribution-runs", {"run.year": str(YEAR + 1)})
    assert run.status_code == 303 and run.headers["location"] == f"/finance/invoices?year={YEAR + 1}"
    [next_year] = [i for i in (await stack.finance.get("/invoices", params={"city_id": city_id})).json() if i["year"] == YEAR + 1]
    more = await portal.form(f"/finance/invoices/{next_year['id']}/credit-applications", {"credit.amount": "600.00"})
    assert more.status_code == 409 and error_of(more.text, "credit.amount")
    applied = await portal.form(f"/finance/invoices/{next_year['id']}/credit-applications", {"credit.amount": ""})
    assert applied.status_code == 303
    assert (await stack.finance.get(f"/invoices/{next_year['id']}")).json()["outstanding"] == "4500.00"

    # 1000.00 more than the next year asks: 500.00 credit, refunded (not more than there is)
    assert (await portal.form(f"/finance/invoices/{next_year['id']}/payments", {
        "payment.amount": "5000.00", "payment.paid_on": today().isoformat(), "payment.reference": "B-9"})).status_code == 303
    beyond = await portal.form(f"/finance/invoices/{next_year['id']}/credit-refunds", {"refund.amount": "500.01",
                                                                                       "refund.reference": "BACK-1"})
    assert beyond.status_code == 409 and error_of(beyond.text, "refund.amount")
    refunded = await portal.form(f"/finance/invoices/{next_year['id']}/credit-refunds", {"refund.reference": "BACK-1"})
    assert refunded.status_code == 303
    credits = {c["city_id"]: c["credit"] for c in (await stack.finance.get("/credits")).json()}
    assert credits.get(city_id, "0.00") == "0.00"


async def test_a_payment_booked_on_the_wrong_invoice_is_moved_to_the_right_one(stack) -> None:
    portal = stack.portal
    aarhus, bergen = await stack.invoice_of(await stack.member("Aarhus")), await stack.invoice_of(await stack.member("Bergen"))
    assert (await portal.form(f"/finance/invoices/{aarhus['id']}/payments", {
        "payment.amount": "5000.00", "payment.paid_on": today().isoformat(), "payment.reference": "BERGEN-1"})).status_code == 303
    [payment] = (await stack.finance.get(f"/invoices/{aarhus['id']}/payments")).json()
    at = f"/finance/invoices/{aarhus['id']}/payments/{payment['id']}/reallocation"
    assert f'href="{at}"' in (await portal.get(f"/finance/invoices/{aarhus['id']}")).text

    page = await portal.get(at)
    assert page.status_code == 200 and f'<option value="{bergen["id"]}">' in page.text and "Bergen" in page.text
    assert f'<option value="{aarhus["id"]}">' not in page.text  # not where it already is
    no_reason = await portal.form(at, {"reallocation.invoice_id": bergen["id"], "reallocation.reason": ""})
    assert no_reason.status_code == 422 and error_of(no_reason.text, "reallocation.reason")
    assert f'<option value="{bergen["id"]}" selected>' in no_reason.text  # the choice kept
    moved = await portal.form(at, {"reallocation.invoice_id": bergen["id"], "reallocation.reason": "Bergen's transfer"})
    assert moved.status_code == 303 and moved.headers["location"] == f"/finance/invoices/{bergen['id']}"
    assert (await stack.finance.get(f"/invoices/{bergen['id']}")).json()["status"] == "paid"
    assert (await stack.finance.get(f"/invoices/{aarhus['id']}")).json()["outstanding"] == "5000.00"
    assert f'href="{at}"' not in (await portal.get(f"/finance/invoices/{aarhus['id']}")).text  # reversed: moved once


async def test_contribution_run_and_a_manual_invoice_refused_for_a_year_the_city_was_no_member(stack) -> None:
    portal = stack.portal
    city_id = await stack.member("Bergen")
    run = await portal.form("/finance/contribution-runs", {"run.year": str(YEAR + 1)})
    assert run.status_code == 303
    listed = await portal.get(run.headers["location"])
    assert "1 invoices issued, 0 already invoiced" in text_of(listed.text) and "Bergen" in text_of(listed.text)
    bad_year = await portal.form("/finance/contribution-runs", {"run.year": "1999"})
    assert bad_year.status_code == 422 and error_of(bad_year.text, "run.year")

    before = await portal.form("/finance/invoices", {"manual.city_id": city_id, "manual.year": str(YEAR - 1),
                                                     "manual.reason": "agreement covers it"})
    assert before.status_code == 409 and error_of(before.text, "manual.year")
    assert 'value="agreement covers it"' in before.text or "agreement covers it</textarea>" in before.text
    twice = await portal.form("/finance/invoices", {"manual.city_id": city_id, "manual.year": str(YEAR), "manual.reason": "again"})
    assert twice.status_code == 409 and "already" in text_of(twice.text)


async def test_the_invoice_pdf_and_the_reconciliation_csv_are_downloads_with_the_persons_token(stack) -> None:
    portal = stack.portal
    city_id = await stack.member("Ghent")
    invoice = await stack.invoice_of(city_id)
    pdf = await portal.get(f"/finance/invoices/{invoice['id']}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;") and pdf.content.startswith(b"%PDF")
    unknown = uuid4()
    missing = await portal.get(f"/finance/invoices/{unknown}.pdf")
    assert missing.status_code == 404 and f"no invoice {unknown}" in text_of(missing.text)  # a page saying so, not a PDF

    page = await portal.get("/finance/reconciliation", params={"year": YEAR})
    assert page.status_code == 200 and "Ghent" in text_of(page.text) and f"/finance/reconciliation/{YEAR}.csv" in page.text
    csv = await portal.get(f"/finance/reconciliation/{YEAR}.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="reconciliation-{YEAR}.csv"'
    assert csv.text.splitlines()[0].startswith("section,key,name") and "Ghent" in csv.text

    portal.cookies.clear()
    portal.sign_in("delegate", username="dora")  # not finance's reader: the portal refuses before asking finance
    assert (await portal.get(f"/finance/invoices/{invoice['id']}.pdf")).status_code == 403


# --- budget ---------------------------------------------------------------------------------------


async def test_the_budget_set_spending_recorded_settled_and_reversed_with_refusals_next_to_their_fields(stack) -> None:
    portal = stack.portal
    lines = {f"lines.{name}": value for name, value in allocations(delegate_travel="1000.00")["lines"].items()}
    bad = await portal.form("/finance/budget", {"year": str(YEAR), **lines, "lines.events": "12.345"})
    assert bad.status_code == 422 and error_of(bad.text, "lines.events") and not error_of(bad.text, "lines.delegate_travel")
    done = await portal.form("/finance/budget", {"year": str(YEAR), **lines})
    assert done.status_code == 303 and done.headers["location"] == f"/finance/budget?year={YEAR}"

    spent = await portal.form("/finance/budget/spending", {"year": str(YEAR), "spending.budget_line": "delegate_travel",
                                                           "spending.kind": "commitment", "spending.amount": "300.00",
                                                           "spending.reference": "PO-1"})
    assert spent.status_code == 303
    page = await portal.get(spent.headers["location"], headers={"accept-language": "fr"})
    assert "700,00\xa0€" in page.text.split('data-testid="headroom-delegate_travel">', 1)[1][:40] and "PO-1" in page.text
    no_room = await portal.form("/finance/budget/spending", {"year": str(YEAR), "spending.budget_line": "delegate_travel",
                                                             "spending.kind": "spent", "spending.amount": "700.01",
                                                             "spending.reference": "PO-2"})
    assert no_room.status_code == 409 and error_of(no_room.text, "spending.amount")
    below = await portal.form("/finance/budget", {"year": str(YEAR), **lines, "lines.delegate_travel": "200.00"})
    assert below.status_code == 409 and error_of(below.text, "lines.delegate_travel")  # below what is committed
    assert 'value="200.00"' in below.text

    [entry] = (await stack.finance.get(f"/budgets/{YEAR}/spending")).json()
    settle, reverse = f"settlement-{entry['id']}", f"reversal-{entry['id']}"
    over = await portal.form(f"/finance/spending/{entry['id']}/settlement", {"year": str(YEAR), f"{settle}.spent": "300.01"})
    assert over.status_code == 409 and error_of(over.text, f"{settle}.spent")
    settled = await portal.form(f"/finance/spending/{entry['id']}/settlement", {"year": str(YEAR), f"{settle}.spent": "250.00"})
    assert settled.status_code == 303 and settled.headers["location"] == f"/finance/budget?year={YEAR}"
    assert (await stack.finance.get(f"/budgets/{YEAR}")).json()["lines"]["delegate_travel"]["headroom"] == "750.00"
    no_reason = await portal.form(f"/finance/spending/{entry['id']}/reversal", {"year": str(YEAR), f"{reverse}.reason": ""})
    assert no_reason.status_code == 422 and error_of(no_reason.text, f"{reverse}.reason")
    reversed_ = await portal.form(f"/finance/spending/{entry['id']}/reversal", {"year": str(YEAR), f"{reverse}.reason": "wrong line"})
    assert reversed_.status_code == 303
    page = await portal.get(reversed_.headers["location"])
    assert "wrong line" in text_of(page.text) and f'action="/finance/spending/{entry["id"]}' not in page.text  # nothing more to correct
    assert (await stack.finance.get(f"/budgets/{YEAR}")).json()["lines"]["delegate_travel"]["headroom"] == "1000.00"


# --- claims ---------------------------------------------------------------------------------------


async def test_a_held_claim_is_listed_in_order_paid_or_rejected_with_refusals_next_to_the_fields(stack) -> None:
    portal = stack.portal
    assert (await stack.finance.put(f"/budgets/{YEAR}", json=allocations(delegate_travel="500.00"))).status_code == 200
    first, second, third = claimed("400.00"), claimed("300.00"), claimed("100.00")  # the third waits behind the second
    await deliver(stack.runtime, first, second, third)

    held = await portal.get("/finance/claims", params={"status": "held"})
    assert held.status_code == 200
    assert held.text.index(str(second.claim_id)) < held.text.index(str(third.claim_id))  # first come, first served
    assert str(first.claim_id) not in held.text

    at = f"/finance/claims/{first.claim_id}"
    page = await portal.get(at)
    assert "Approved" in text_of(page.text) and "Mark paid" in text_of(page.text)
    zero = await portal.form(f"{at}/payment", {"payment.paid_on": today().isoformat(), "payment.amount": "0.00"})
    assert zero.status_code == 422 and error_of(zero.text, "payment.amount")
    future = await portal.form(f"{at}/payment", {"payment.paid_on": (today() + timedelta(days=2)).isoformat()})
    assert future.status_code == 422 and error_of(future.text, "payment.paid_on")
    paid = await portal.form(f"{at}/payment", {"payment.paid_on": today().isoformat(), "payment.amount": ""})
    assert paid.status_code == 303
    assert (await stack.finance.get(f"/reimbursements/{first.claim_id}")).json()["paid_amount"] == "400.00"

    no_reason = await portal.form(f"/finance/claims/{second.claim_id}/rejection", {"rejection.reason": ""})
    assert no_reason.status_code == 422 and error_of(no_reason.text, "rejection.reason")
    rejected = await portal.form(f"/finance/claims/{second.claim_id}/rejection", {"rejection.reason": "no proof of payment"})
    assert rejected.status_code == 303
    page = await portal.get(rejected.headers["location"], headers={"accept-language": "fr"})
    assert "Rejetée" in text_of(page.text) and "no proof of payment" in text_of(page.text)
    # the rejected claim's place let the next one through
    assert (await stack.finance.get(f"/reimbursements/{third.claim_id}")).json()["status"] == "approved"


async def test_a_lines_receipt_is_linked_from_the_claim_and_handed_on_as_a_download_from_travel() -> None:
    """Travel keeps the receipts (its own tests say who may read one); the claim's page links each
    line's receipt to the portal's own route, which passes travel's file on. Services stood in for:
    only their answers' shape matters here."""
    claim_id, receipt_id = uuid4(), uuid4()
    finance, travel = FastAPI(), FastAPI()

    @finance.get("/reimbursements/{claim}")
    async def decided(claim: str) -> dict:
        return {"claim_id": claim, "kind": "travel", "city_id": None, "european": True, "budget_line": "delegate_travel",
                "year": YEAR, "amount": "400.00", "city_borne": "0.00", "recharged": "0.00", "status": "approved",
                "reason": None, "held_since": None, "paid_amount": "0.00", "paid_on": None, "supersedes": None,
                "claim_version": 1}

    @travel.get("/claims/{claim}")
    async def explained(claim: str) -> dict:
        line = {"kind": "transport", "amount": "4580.00", "currency": "NOK", "spent_on": today().isoformat(), "eur_amount": "400.00",
                "coe_funded": "400.00", "explanation": "actual cost", "receipt": None, "receipt_id": str(receipt_id)}
        return {"delegate_name": "Ingrid Berg", "delegate_email": "ingrid@oslo.example", "lines": [line, {**line, "receipt_id": None}]}

    @travel.get("/receipts/{receipt}")
    async def receipt(receipt: str) -> Response:
        return Response(b"%PDF-1.4 receipt", media_type="application/pdf",
                        headers={"content-disposition": f'attachment; filename="receipt-{receipt}.pdf"'})

    async with portal_over({"finance": finance, "travel": travel, "membership": FastAPI()}) as portal:
        portal.sign_in("finance", username="fiona")
        page = await portal.get(f"/finance/claims/{claim_id}")
        assert page.status_code == 200
        link = f'href="/finance/claims/{claim_id}/receipts/{receipt_id}"'
        assert page.text.count(link) == 1 and page.text.count("/receipts/") == 1  # only the line that has one
        answer = await portal.get(f"/finance/claims/{claim_id}/receipts/{receipt_id}")
        assert answer.status_code == 200 and answer.content == b"%PDF-1.4 receipt"
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.headers["content-disposition"] == f'attachment; filename="receipt-{receipt_id}.pdf"'


# --- rates ----------------------------------------------------------------------------------------


async def test_rates_set_and_listed_a_bad_one_refused_next_to_its_field(stack) -> None:
    portal = stack.portal
    valid_from = date(YEAR, 1, 1).isoformat()
    set_ = await portal.form("/finance/rates/allowance", {"allowance.country": "pt", "allowance.eur_per_night": "120.00",
                                                          "allowance.valid_from": valid_from})
    assert set_.status_code == 303
    bad = await portal.form("/finance/rates/allowance", {"allowance.country": "PT", "allowance.eur_per_night": "-1",
                                                         "allowance.valid_from": valid_from})
    assert bad.status_code == 422 and error_of(bad.text, "allowance.eur_per_night")
    nowhere = await portal.form("/finance/rates/allowance", {"allowance.country": "ZZZ", "allowance.eur_per_night": "10.00",
                                                             "allowance.valid_from": valid_from})
    assert nowhere.status_code == 422 and error_of(nowhere.text, "allowance.country")
    euro = await portal.form("/finance/rates/exchange", {"exchange.currency": "EUR", "exchange.units_per_eur": "1.0000",
                                                         "exchange.on": valid_from})
    assert euro.status_code == 422 and error_of(euro.text, "exchange.currency")
    nok = await portal.form("/finance/rates/exchange", {"exchange.currency": "NOK", "exchange.units_per_eur": "11.4500",
                                                        "exchange.on": valid_from})
    assert nok.status_code == 303
    page = await portal.get("/finance/rates", headers={"accept-language": "fr"})
    words = text_of(page.text)
    assert "Portugal (PT)" in words and "120,00\xa0€" in page.text and "11,45" in words
    assert (await stack.travel.get("/allowance-rates/PT")).json()["eur_per_night"] == "120.00"


# --- the auditor ----------------------------------------------------------------------------------


async def test_the_auditor_reads_every_page_without_its_forms_and_cannot_write(stack) -> None:
    city_id = await stack.member("Ghent")
    invoice = await stack.invoice_of(city_id)
    portal = stack.portal
    portal.cookies.clear()
    portal.sign_in("auditor", username="audrey")
    for path in ("/finance/claims", "/finance/invoices", f"/finance/invoices/{invoice['id']}", "/finance/budget",
                 "/finance/reconciliation", "/finance/rates"):
        page = await portal.get(path)
        assert page.status_code == 200, path
        assert 'method="post" action="/finance' not in page.text, path
    home = (await portal.get("/")).text
    assert all(f'href="/finance/{path}"' in home for path in ("claims", "invoices", "budget", "reconciliation", "rates"))
    refused = await portal.form(f"/finance/invoices/{invoice['id']}/payments",
                                {"payment.amount": "10.00", "payment.paid_on": today().isoformat(), "payment.reference": "X"})
    assert refused.status_code == 403
    assert (await stack.invoice_of(city_id))["paid"] == "0.00"
