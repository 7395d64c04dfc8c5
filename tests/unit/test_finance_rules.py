from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from services.finance.domain import Invoice, contribution_year


@pytest.mark.parametrize(
    ("joined_on", "year"),
    [(date(2026, 1, 1), 2026), (date(2026, 9, 30), 2026), (date(2026, 10, 1), 2027), (date(2026, 12, 31), 2027)],
)
def test_a_member_joining_from_1_october_is_first_invoiced_for_the_next_year(joined_on: date, year: int) -> None:
    assert contribution_year(joined_on) == year


def test_a_contribution_is_5000_eur_due_60_days_after_issue() -> None:
    invoice = Invoice.contribution(uuid4(), 2026, date(2026, 3, 1))
    assert invoice.amount == Decimal("5000.00")
    assert invoice.due_on == date(2026, 4, 30)
    assert invoice.status(date(2026, 4, 30)) == "issued"
    assert invoice.status(date(2026, 5, 1)) == "overdue"
    invoice.paid = Decimal("5000.00")
    assert invoice.status(date(2026, 5, 1)) == "paid"
