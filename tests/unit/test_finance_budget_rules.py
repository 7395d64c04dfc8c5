"""Finance's pure rules: payments and credit notes on an invoice, ageing, budget lines and claims."""

from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from services.finance.domain import BudgetLine, Invoice, Member, ageing_bucket

D = Decimal


def invoice() -> Invoice:
    return Invoice.contribution(uuid4(), 2026, date(2026, 3, 1))


def test_a_partial_payment_leaves_the_rest_outstanding_and_an_overpayment_becomes_credit() -> None:
    bill = invoice()
    assert bill.apply_payment(D("2000.00")) == (D("2000.00"), D("0.00"))
    assert (bill.status(date(2026, 3, 2)), bill.outstanding) == ("partly_paid", D("3000.00"))
    assert bill.apply_payment(D("3500.00")) == (D("3000.00"), D("500.00"))
    assert (bill.status(date(2026, 12, 31)), bill.outstanding) == ("paid", D("0.00"))
    assert bill.apply_payment(D("10.00")) == (D("0.00"), D("10.00"))  # nothing left to pay: all of it is credit


def test_a_credit_note_below_what_was_paid_turns_the_difference_into_credit() -> None:
    bill = invoice()
    bill.apply_payment(D("4000.00"))
    assert bill.apply_credit_note(D("1500.00")) == D("500.00")
    assert (bill.paid, bill.net, bill.status(date(2026, 3, 2))) == (D("3500.00"), D("3500.00"), "paid")
    assert bill.apply_credit_note(D("3500.00")) == D("3500.00")
    assert (bill.status(date(2026, 3, 2)), bill.creditable) == ("cancelled", D("0.00"))


def test_an_unpaid_invoice_is_overdue_the_day_after_it_falls_due() -> None:
    bill = invoice()
    assert bill.status(date(2026, 4, 30)) == "issued" and bill.status(date(2026, 5, 1)) == "overdue"
    bill.apply_payment(D("1.00"))
    assert bill.status(date(2026, 5, 1)) == "overdue"


@pytest.mark.parametrize(("days", "bucket"), [(0, "0-30"), (30, "0-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"),
                                               (90, "61-90"), (91, "91-120"), (120, "91-120"), (121, "121+"), (900, "121+")])
def test_unpaid_money_is_aged_by_days_since_issue(days: int, bucket: str) -> None:
    issued = date(2026, 1, 1)
    assert ageing_bucket(issued, date.fromordinal(issued.toordinal() + days)) == bucket


def test_a_line_commits_only_what_its_headroom_covers_in_full() -> None:
    line = BudgetLine(2026, "delegate_travel", allocation=D("1000.00"), committed=D("600.00"), spent=D("100.00"), is_set=True)
    assert line.headroom == D("300.00")
    assert line.hold_reason(D("300.00")) is None
    assert "does not cover 300.01" in line.hold_reason(D("300.01"))
    line.held = 1
    assert "first come, first served" in line.hold_reason(D("1.00"))  # no overtaking the queue
    assert "no budget set for 2027" in BudgetLine(2027, "events").hold_reason(D("1.00"))


def test_the_administration_line_is_funded_by_contributions_received_not_its_allocation() -> None:
    line = BudgetLine(2026, "administration", allocation=D("20000.00"), received=D("5000.00"), committed=D("1000.00"), is_set=True)
    assert (line.available, line.headroom) == (D("5000.00"), D("4000.00"))


@pytest.mark.parametrize(("used", "pct", "warning"), [("0.00", "0.0", None), ("799.99", "80.0", None), ("800.00", "80.0", "80"),
                                                      ("899.99", "90.0", "80"), ("900.00", "90.0", "90"), ("1000.00", "100.0", "90")])
def test_warnings_at_80_and_90_percent_of_what_is_available(used: str, pct: str, warning: str | None) -> None:
    line = BudgetLine(2026, "events", allocation=D("1000.00"), spent=D(used), is_set=True)
    assert (str(line.used_pct), line.warning) == (pct, warning)


@pytest.mark.parametrize(("joined_on", "left_on", "year", "owes"), [
    (date(2026, 3, 1), None, 2027, True),
    (date(2026, 10, 1), None, 2026, False),  # first invoiced for 2027
    (date(2026, 3, 1), date(2026, 12, 31), 2027, False),
    (date(2026, 3, 1), date(2027, 6, 30), 2027, True),  # a member for part of 2027: the year is due in full
    (date(2026, 3, 1), date(2027, 1, 1), 2027, True),  # still a member on 1 January: its last day
    (date(2026, 10, 1), date(2026, 12, 31), 2027, False),  # joined in October and gone before its first year
    (date(2026, 10, 1), None, 2027, True),
    (date(2027, 9, 30), None, 2027, True),  # the join year, before 1 October
    (date(2028, 1, 5), None, 2027, False),
])
def test_who_owes_a_contribution_for_a_year(joined_on: date, left_on: date | None, year: int, owes: bool) -> None:
    assert Member(uuid4(), "X", True, joined_on, left_on).owes_contribution_for(year) is owes
