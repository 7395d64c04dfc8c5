"""Finance rules: contributions and invoices. Pure: no I/O."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import InvoiceIssued

CONTRIBUTION = Decimal("5000.00")  # [programme] per member city per calendar year, European or not
PAYMENT_TERM = timedelta(days=60)  # [rule] due 60 days after issue
LATE_JOIN_MONTH = 10  # [rule] joining on or after 1 October: the first invoice is for the next year


def contribution_year(joined_on: date) -> int:
    """The year a new member's first contribution is for."""
    return joined_on.year + 1 if joined_on.month >= LATE_JOIN_MONTH else joined_on.year


@dataclass(eq=False)
class Member:
    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None


@dataclass(eq=False)
class Invoice:
    id: UUID
    city_id: UUID
    kind: str
    year: int
    amount: Decimal
    issued_on: date
    due_on: date
    paid: Decimal = field(default=Decimal("0.00"))

    @classmethod
    def contribution(cls, city_id: UUID, year: int, issued_on: date) -> "Invoice":
        return cls(
            id=uuid4(),
            city_id=city_id,
            kind="contribution",
            year=year,
            amount=CONTRIBUTION,
            issued_on=issued_on,
            due_on=issued_on + PAYMENT_TERM,
        )

    def status(self, today: date) -> str:
        if self.paid >= self.amount:
            return "paid"
        if today > self.due_on:
            return "overdue"
        return "partly_paid" if self.paid > 0 else "issued"

    def issued(self) -> InvoiceIssued:
        return InvoiceIssued(
            invoice_id=self.id,
            city_id=self.city_id,
            kind=self.kind,
            year=self.year,
            amount=self.amount,
            issued_on=self.issued_on,
            due_on=self.due_on,
        )
