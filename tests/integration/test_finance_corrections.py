"""Finance's money rules and corrections, on SQLite and PostgreSQL: every correction is a new fact,
published through the outbox and visible in the reconciliation trace; nothing is edited or deleted."""

from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from contracts.events import CityJoined, CityLeft, JoinDateCorrected, TravelClaimAmended, TravelClaimed
from services.common.api import today
from tests.integration.test_finance_budget import (  # noqa: F401 (fixture)
    YEAR, allocations, claimed, deliver, emitted, finance, line, set_budget, status_of,
)



def joined(on: date, name: str = "Ghent", city_id=None) -> CityJoined:
    return CityJoined(city_id=city_id or uuid4(), name=name, country="BE", european=True, joined_on=on)


async def invoices_of(client, city_id) -> list[dict]:
    return (await client.get("/invoices", params={"city_id": str(city_id), "limit": 100})).json()


async def years_invoiced(client, city_id) -> list[tuple[int, str]]:
    return sorted((i["year"], i["status"]) for i in await invoices_of(client, city_id))


async def pay(client, invoice_id, amount: str, reference: str) -> dict:
    response = await client.post(f"/invoices/{invoice_id}/payments",
                                 json={"amount": amount, "paid_on": today().isoformat(), "reference": reference})
    assert response.status_code == 201, response.text
    return response.json()


async def traced(client, account: str, year: int = YEAR, **filters) -> dict:
    response = await client.get(f"/reconciliation/{year}/trace", params={"account": account, **filters})
    assert response.status_code == 200, response.text
    return response.json()


async def credit_of(client, city_id) -> str:
    return next((c["credit"] for c in (await client.get("/credits")).json() if c["city_id"] == str(city_id)), "0.00")


# --- money that must not go wrong ----------------------------------------------------------------


async def test_a_city_whose_joining_arrives_after_a_run_for_a_later_year_is_invoiced_for_that_year_too(finance) -> None:
    client, runtime = finance
    early = joined(date(2026, 2, 1), "Early")
    await deliver(runtime, early)
    run = (await client.post("/contribution-runs", json={"year": 2027})).json()
    assert (run["issued"], run["already_invoiced"]) == (1, 0)
    [(_, recorded)] = await emitted(runtime, "ContributionRunCompleted")
    assert recorded == {"year": 2027, "run_on": today().isoformat()}

    late, october = joined(date(2026, 3, 1), "Late"), joined(date(2026, 10, 5), "October")
    await deliver(runtime, late, october)  # membership's events reach finance after the run
    assert await years_invoiced(client, late.city_id) == [(2026, "issued"), (2027, "issued")]
    assert await years_invoiced(client, october.city_id) == [(2027, "issued")]  # its first year; once
    again = (await client.post("/contribution-runs", json={"year": 2027})).json()
    assert (again["issued"], again["already_invoiced"]) == (0, 3)
    assert len(await emitted(runtime, "ContributionRunCompleted")) == 1  # a run is recorded once per year
    assert (await traced(client, "invoiced", 2027))["total"] == "15000.00"


@pytest.mark.parametrize(("effective_on", "owes_2027"), [(date(2026, 12, 31), False), (date(2027, 1, 1), True)])
async def test_a_city_owes_a_year_when_it_is_still_a_member_on_1_january(finance, effective_on, owes_2027) -> None:
    client, runtime = finance
    city = joined(date(2026, 3, 1))
    await deliver(runtime, city, CityLeft(city_id=city.city_id, effective_on=effective_on))
    await client.post("/contribution-runs", json={"year": 2027})
    assert (2027 in {year for year, _ in await years_invoiced(client, city.city_id)}) is owes_2027


async def test_a_claim_with_nothing_coe_funded_cannot_be_paid_nor_a_claim_at_zero(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    montreal, oslo = claimed("0.00", european=False, city_borne="840.00"), claimed("400.00")
    await deliver(runtime, montreal, oslo)
    assert await status_of(client, montreal) == "approved"
    nothing = await client.post(f"/reimbursements/{montreal.claim_id}/payment", json={"paid_on": today().isoformat()})
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_to_pay", nothing.text
    zero = await client.post(f"/reimbursements/{oslo.claim_id}/payment", json={"paid_on": today().isoformat(), "amount": "0.00"})
    assert zero.status_code == 422 and zero.json()["detail"][0]["loc"][-1] == "amount"
    assert await status_of(client, montreal) == "approved" and await status_of(client, oslo) == "approved"
    assert await emitted(runtime, "ReimbursementPaid") == []


@pytest.mark.parametrize(("path", "params"), [
    ("/invoices", {"year": -2524446875214974729516471459120152576}),
    ("/invoices", {"year": 99999}),
    ("/reimbursements", {"year": 10**30}),
    ("/invoices", {"limit": 10**12}),
    ("/invoices", {"offset": -1}),
])
async def test_numbers_out_of_bounds_in_a_query_are_a_422_naming_the_parameter(finance, path, params) -> None:
    client, _ = finance
    response = await client.get(path, params={**params, "unknown": "harmless"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] in params


@pytest.mark.parametrize("amount", ["1E+30", "NaN", "Infinity", "1.001", "-5.00", "0.00", "1000000000.00", 1e3, 10**40])
async def test_amounts_that_are_not_money_are_a_422_naming_the_field(finance, amount) -> None:
    client, runtime = finance
    await deliver(runtime, joined(date(YEAR, 2, 1)))
    [invoice] = (await client.get("/invoices")).json()
    response = await client.post(f"/invoices/{invoice['id']}/payments",
                                 json={"amount": amount, "paid_on": today().isoformat(), "reference": "B-1"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "amount", response.text
    run = await client.post("/contribution-runs", json={"year": 10**20})
    assert run.status_code == 422 and run.json()["detail"][0]["loc"][-1] == "year"
    assert await emitted(runtime, "PaymentReceived") == []


# --- payments: reversed, reallocated; credit applied, refunded --------------------------------


async def test_a_bounced_payment_is_reversed_with_a_reason_and_shows_in_the_trace(finance) -> None:
    client, runtime = finance
    city = joined(date(YEAR, 2, 1))
    await deliver(runtime, city)
    [invoice] = await invoices_of(client, city.city_id)
    paid = await pay(client, invoice["id"], "5000.00", "BANK-1")
    assert (await line(client, "administration"))["available"] == "5000.00"

    reversed_ = await client.post(f"/payments/{paid['payment_id']}/reversal", json={"reason": "transfer bounced"})
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["status"], reversed_.json()["outstanding"], reversed_.json()["paid"]) == ("issued", "5000.00", "0.00")
    assert (await line(client, "administration"))["available"] == "0.00"
    [payment] = (await client.get(f"/invoices/{invoice['id']}/payments")).json()
    assert (payment["reversed_on"], payment["reversal_reason"]) == (today().isoformat(), "transfer bounced")
    [(_, event)] = await emitted(runtime, "PaymentReversed")
    assert (event["payment_id"], event["from_invoice"], event["from_credit"]) == (paid["payment_id"], "5000.00", "0.00")
    received = await traced(client, "received", city_id=str(city.city_id))
    assert [(e["event_type"], e["amount"]) for e in received["entries"]] == [("PaymentReceived", "5000.00"), ("PaymentReversed", "-5000.00")]
    assert received["total"] == "0.00"
    again = await client.post(f"/payments/{paid['payment_id']}/reversal", json={"reason": "twice"})
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"
    assert (await client.post(f"/payments/{uuid4()}/reversal", json={"reason": "x"})).status_code == 404


async def test_a_reversal_cannot_take_back_contributions_the_administration_line_has_spent(finance) -> None:
    client, runtime = finance
    city = joined(date(YEAR, 2, 1))
    await deliver(runtime, city)
    [invoice] = await invoices_of(client, city.city_id)
    paid = await pay(client, invoice["id"], "5000.00", "BANK-1")
    await set_budget(client, administration="5000.00")
    spent = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "administration", "kind": "spent",
                                                                  "amount": "4000.00", "reference": "staff"})
    assert spent.status_code == 201
    refused = await client.post(f"/payments/{paid['payment_id']}/reversal", json={"reason": "bounced"})
    assert refused.status_code == 409 and refused.json()["code"] == "received_money_in_use", refused.text
    assert await emitted(runtime, "PaymentReversed") == []


async def test_a_payment_on_the_wrong_invoice_is_reallocated_to_the_right_one(finance) -> None:
    client, runtime = finance
    aarhus, bergen = joined(date(YEAR, 2, 1), "Aarhus"), joined(date(YEAR, 2, 1), "Bergen")
    await deliver(runtime, aarhus, bergen)
    [wrong], [right] = await invoices_of(client, aarhus.city_id), await invoices_of(client, bergen.city_id)
    paid = await pay(client, wrong["id"], "5000.00", "BANK-BERGEN")

    moved = await client.post(f"/payments/{paid['payment_id']}/reallocation",
                              json={"invoice_id": right["id"], "reason": "Bergen's transfer, booked on Aarhus"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["invoice"]["id"], moved.json()["invoice"]["status"], moved.json()["applied"]) == (right["id"], "paid", "5000.00")
    assert [i["status"] for i in await invoices_of(client, aarhus.city_id)] == ["issued"]
    assert [e["event_type"] for e in (await traced(client, "received", city_id=str(aarhus.city_id)))["entries"]] == [
        "PaymentReceived", "PaymentReversed"]
    assert (await traced(client, "received", city_id=str(bergen.city_id)))["total"] == "5000.00"
    assert (await traced(client, "received", invoice_kind="contribution"))["total"] == "5000.00"
    same = await client.post(f"/payments/{moved.json()['payment_id']}/reallocation", json={"invoice_id": right["id"], "reason": "x"})
    assert same.status_code == 409 and same.json()["code"] == "same_invoice"


async def test_a_citys_credit_is_applied_to_its_next_invoice_and_the_rest_refunded(finance) -> None:
    client, runtime = finance
    city = joined(date(YEAR, 2, 1))
    await deliver(runtime, city)
    [first] = await invoices_of(client, city.city_id)
    await pay(client, first["id"], "6500.00", "BANK-1")  # 1500.00 too much: the city's credit
    assert await credit_of(client, city.city_id) == "1500.00"
    await client.post("/contribution-runs", json={"year": YEAR + 1})
    [_, second] = await invoices_of(client, city.city_id)

    applied = await client.post(f"/invoices/{second['id']}/credit-applications", json={"amount": "1000.00"})
    assert applied.status_code == 201, applied.text
    assert (applied.json()["paid"], applied.json()["outstanding"]) == ("1000.00", "4000.00")
    assert await credit_of(client, city.city_id) == "500.00"
    too_much = await client.post(f"/invoices/{second['id']}/credit-applications", json={"amount": "500.01"})
    assert too_much.status_code == 409 and too_much.json()["code"] == "more_than_credit"

    refunded = await client.post(f"/credits/{city.city_id}/refunds", json={"reference": "REFUND-7"})
    assert refunded.status_code == 201 and refunded.json()["credit"] == "0.00", refunded.text
    assert await credit_of(client, city.city_id) == "0.00"
    nothing = await client.post(f"/credits/{city.city_id}/refunds", json={"reference": "REFUND-8"})
    assert nothing.status_code == 409 and nothing.json()["code"] == "no_credit"
    assert [p["amount"] for _, p in await emitted(runtime, "CreditApplied", "CreditRefunded")] == ["1000.00", "500.00"]
    credit = [(e["event_type"], e["amount"]) for year in (YEAR, YEAR + 1)
              for e in (await traced(client, "credit", year, city_id=str(city.city_id)))["entries"]]
    assert sorted(credit) == sorted([("PaymentReceived", "1500.00"), ("CreditApplied", "-1000.00"), ("CreditRefunded", "-500.00")])
    assert (await traced(client, "received", YEAR + 1, city_id=str(city.city_id)))["total"] == "1000.00"
    assert (await line(client, "administration", YEAR + 1))["available"] == "1000.00"


async def test_reversing_an_overpayment_takes_back_the_credit_it_left_unless_it_was_used(finance) -> None:
    client, runtime = finance
    city = joined(date(YEAR, 2, 1))
    await deliver(runtime, city)
    await client.post("/contribution-runs", json={"year": YEAR + 1})
    [first, second] = await invoices_of(client, city.city_id)
    overpaid = await pay(client, first["id"], "6000.00", "BANK-1")  # 1000.00 credit
    await client.post(f"/credits/{city.city_id}/refunds", json={"amount": "600.00", "reference": "R-1"})
    refused = await client.post(f"/payments/{overpaid['payment_id']}/reversal", json={"reason": "bounced"})
    assert refused.status_code == 409 and refused.json()["code"] == "credit_used"  # only 400.00 of its 1000.00 is left
    assert (await invoices_of(client, city.city_id))[0]["paid"] == "5000.00"

    again = await pay(client, second["id"], "5300.00", "BANK-2")
    assert again["credit"] == "300.00" and await credit_of(client, city.city_id) == "700.00"
    reversed_ = await client.post(f"/payments/{again['payment_id']}/reversal", json={"reason": "wrong amount booked"})
    assert reversed_.status_code == 200 and reversed_.json()["outstanding"] == "5000.00"
    assert await credit_of(client, city.city_id) == "400.00"  # the first payment's credit left over stays
    [(_, event)] = await emitted(runtime, "PaymentReversed")
    assert (event["from_invoice"], event["from_credit"]) == ("5000.00", "300.00")


# --- invoices by hand, corrected join dates ------------------------------------------------------


async def test_a_manual_invoice_covers_a_year_the_rules_did_not_bill_once(finance) -> None:
    client, runtime = finance
    october = joined(date(YEAR, 10, 5), "October")
    await deliver(runtime, october)
    assert await years_invoiced(client, october.city_id) == [(YEAR + 1, "issued")]
    body = {"city_id": str(october.city_id), "year": YEAR, "reason": "its agreement covers the year it joined"}
    manual = await client.post("/invoices", json=body)
    assert manual.status_code == 201, manual.text
    assert (manual.json()["year"], manual.json()["amount"], manual.json()["reason"]) == (YEAR, "5000.00", body["reason"])
    twice = await client.post("/invoices", json=body)
    assert twice.status_code == 409 and twice.json()["code"] == "already_invoiced"
    before = await client.post("/invoices", json={**body, "year": YEAR - 1})
    assert before.status_code == 409 and before.json()["code"] == "not_a_member_that_year"
    unknown = await client.post("/invoices", json={**body, "city_id": str(uuid4())})
    assert unknown.status_code == 409 and unknown.json()["retryable"] is True
    assert [p["reason"] for _, p in await emitted(runtime, "InvoiceIssued")] == [None, body["reason"]]
    assert (await traced(client, "invoiced", city_id=str(october.city_id)))["total"] == "5000.00"


async def test_a_corrected_join_date_moves_the_contribution_year_by_credit_note_and_back(finance) -> None:
    client, runtime = finance
    city = joined(date(2026, 3, 1))
    await deliver(runtime, city)
    [first] = await invoices_of(client, city.city_id)
    await pay(client, first["id"], "1000.00", "BANK-1")

    later = JoinDateCorrected(city_id=city.city_id, joined_on=date(2026, 10, 5), previous_joined_on=date(2026, 3, 1),
                              european=True, reason="the agreement was signed on 5 October, not 5 March")
    await deliver(runtime, later)
    assert await years_invoiced(client, city.city_id) == [(2026, "cancelled"), (2027, "issued")]
    [(_, note)] = await emitted(runtime, "CreditNoteIssued")
    assert note["amount"] == "5000.00" and "corrected from 2026-03-01 to 2026-10-05" in note["reason"]
    assert "signed on 5 October" in note["reason"]
    assert await credit_of(client, city.city_id) == "1000.00"  # what it paid for 2026 is its credit now
    assert (await traced(client, "credited", 2026, city_id=str(city.city_id)))["entries"][0]["event_type"] == "CreditNoteIssued"

    back = JoinDateCorrected(city_id=city.city_id, joined_on=date(2026, 3, 1), previous_joined_on=date(2026, 10, 5),
                             european=True, reason="the October date was the countersignature")
    await deliver(runtime, back)  # 2026 is owed again (a new invoice); 2027 too: a member on 1 January
    assert await years_invoiced(client, city.city_id) == [(2026, "cancelled"), (2026, "issued"), (2027, "issued")]
    await deliver(runtime, back.model_copy(update={"reason": "replayed"}))
    assert len(await invoices_of(client, city.city_id)) == 3


# --- budget corrections and amended claims ------------------------------------------------------


async def test_a_mistaken_spending_entry_is_reversed_giving_the_headroom_back_and_releasing_held_claims(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    mistake = await client.post(f"/budgets/{YEAR}/spending", json={"budget_line": "delegate_travel", "kind": "spent",
                                                                    "amount": "900.00", "reference": "typed on the wrong line"})
    waiting = claimed("300.00")
    await deliver(runtime, waiting)
    assert await status_of(client, waiting) == "held"

    reversed_ = await client.post(f"/spending/{mistake.json()['id']}/reversal", json={"reason": "belongs to the events line"})
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["spent"], reversed_.json()["reversal_reason"]) == ("0.00", "belongs to the events line")
    assert await status_of(client, waiting) == "approved"
    figures = await line(client)
    assert (figures["spent"], figures["committed"], figures["headroom"]) == ("0.00", "300.00", "700.00")
    spent = await traced(client, "spent", budget_line="delegate_travel")
    assert [(e["event_type"], e["amount"]) for e in spent["entries"]] == [("SpendingRecorded", "900.00"), ("SpendingReversed", "-900.00")]
    again = await client.post(f"/spending/{mistake.json()['id']}/reversal", json={"reason": "twice"})
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"


def amended(claim: TravelClaimed, amount: str, number: int = 1) -> TravelClaimAmended:
    return TravelClaimAmended(
        claim_id=claim.claim_id, registration_id=claim.registration_id, workshop_id=claim.workshop_id, city_id=claim.city_id,
        european=True, budget_line="delegate_travel", coe_funded=amount, city_borne="0.00", previous_coe_funded=claim.coe_funded,
        event_year=claim.event_year, amended_on=today(), amendment=number,
    )


async def test_an_amended_claim_is_decided_again_as_if_it_arrived_now(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    first, second = claimed("400.00"), claimed("500.00")
    await deliver(runtime, first, second)
    await deliver(runtime, amended(first, "700.00"))  # 400 released, 700 does not fit beside the 500
    assert await status_of(client, first) == "held"
    assert (await line(client))["committed"] == "500.00"
    await deliver(runtime, amended(first, "450.00", 2))  # leaves the queue, and now fits
    assert await status_of(client, first) == "approved"
    assert (await line(client))["committed"] == "950.00"
    decisions = [(t, p["amount"]) for t, p in await emitted(runtime, "ReimbursementReopened", "ReimbursementApproved", "ReimbursementHeld")
                 if p["claim_id"] == str(first.claim_id)]
    assert decisions == [("ReimbursementApproved", "400.00"), ("ReimbursementReopened", "400.00"), ("ReimbursementHeld", "700.00"),
                         ("ReimbursementReopened", "700.00"), ("ReimbursementApproved", "450.00")]
    committed = await traced(client, "committed", budget_line="delegate_travel")
    assert committed["total"] == "950.00" and "ReimbursementReopened" in {e["event_type"] for e in committed["entries"]}


async def test_an_amendment_that_crossed_a_payment_changes_nothing(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    claim = claimed("400.00")
    await deliver(runtime, claim)
    assert (await client.post(f"/reimbursements/{claim.claim_id}/payment", json={"paid_on": today().isoformat()})).status_code == 200
    await deliver(runtime, amended(claim, "600.00"))
    assert await status_of(client, claim) == "paid"
    assert await emitted(runtime, "ReimbursementReopened") == []
    assert (await line(client))["spent"] == "400.00"


async def test_a_resubmitted_claim_is_a_new_claim_that_names_the_one_it_replaces(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00")
    rejected = claimed("400.00")
    await deliver(runtime, rejected)
    await client.post(f"/reimbursements/{rejected.claim_id}/rejection", json={"reason": "no receipt"})
    again = claimed("380.00").model_copy(update={"supersedes": rejected.claim_id, "claim_version": 2})
    await deliver(runtime, again)
    view = (await client.get(f"/reimbursements/{again.claim_id}")).json()
    assert (view["status"], view["supersedes"], view["claim_version"]) == ("approved", str(rejected.claim_id), 2)
    assert (await client.get(f"/reimbursements/{rejected.claim_id}")).json()["status"] == "rejected"
    assert (await line(client))["committed"] == "380.00"


async def test_refused_corrections_write_nothing(finance) -> None:
    client, runtime = finance
    await set_budget(client, **{k: "10.00" for k in allocations()["lines"]})
    before = await emitted(runtime)
    for path, body in [
        (f"/payments/{uuid4()}/reallocation", {"invoice_id": str(uuid4()), "reason": "x"}),
        (f"/invoices/{uuid4()}/credit-applications", {}),
        (f"/spending/{uuid4()}/reversal", {"reason": "x"}),
        ("/invoices", {"city_id": str(uuid4()), "year": YEAR, "reason": "   "}),
        (f"/credits/{uuid4()}/refunds", {"reference": "R", "amount": "1E+3"}),
        (f"/invoices/{uuid4()}/payments", {"amount": "1.00", "paid_on": today().isoformat(), "reference": "B\x00-1"}),
    ]:
        response = await client.post(path, json=body)
        assert 400 <= response.status_code < 500, (path, response.text)
    assert await emitted(runtime) == before
    assert Decimal((await line(client))["headroom"]) == Decimal("10.00")
