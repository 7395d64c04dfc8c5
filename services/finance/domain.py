"""Finance rules: contributions, invoices and payments, budget lines and the claims they fund. Pure: no I/O."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import InvoiceIssued

ZERO = Decimal("0.00")
CONTRIBUTION = Decimal("5000.00")  # [programme] per member city per calendar year, European or not
PAYMENT_TERM = timedelta(days=60)  # [rule] due 60 days after issue
LATE_JOIN_MONTH = 10  # [rule] joining on or after 1 October: the first invoice is for the next year

ADMINISTRATION = "administration"  # funded by the contributions received for the year
COE_LINES = ("delegate_travel", "expert_visits", "index_analysis", "events")  # funded by the CoE allocation
LINES = (ADMINISTRATION, *COE_LINES)
WARNINGS = (90, 80)  # [rule] warn at 90% and 80% use, the higher first

AGEING_BUCKETS = (("0-30", 30), ("31-60", 60), ("61-90", 90), ("91-120", 120), ("121+", None))


def contribution_year(joined_on: date) -> int:
    """The year a new member's first contribution is for."""
    return joined_on.year + 1 if joined_on.month >= LATE_JOIN_MONTH else joined_on.year


def ageing_bucket(issued_on: date, on: date) -> str:
    """Unpaid money is aged by the days since its invoice was issued (so the buckets cover it all)."""
    days = max((on - issued_on).days, 0)
    return next(name for name, upto in AGEING_BUCKETS if upto is None or days <= upto)


def used_pct(available: Decimal, used: Decimal) -> Decimal:
    """Share of what is available that is committed or spent, in percent with one decimal."""
    if available <= 0:
        return Decimal("100.0") if used > 0 else Decimal("0.0")
    return (used * 100 / available).quantize(Decimal("0.1"), rounding="ROUND_HALF_UP")


def warning(available: Decimal, used: Decimal) -> str | None:
    """"90" or "80" once that share of what is available is used (exactly, not the rounded percentage)."""
    return next((str(level) for level in WARNINGS if used > 0 and used * 100 >= available * level), None)


@dataclass(eq=False)
class Member:
    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None

    def owes_contribution_for(self, year: int) -> bool:
        """A member of `year`: its first contribution year has come and it had not left by 1 January."""
        return contribution_year(self.joined_on) <= year and (self.left_on is None or self.left_on > date(year, 1, 1))


@dataclass(eq=False)
class Invoice:
    id: UUID
    city_id: UUID
    kind: str
    year: int
    amount: Decimal
    issued_on: date
    due_on: date
    paid: Decimal = field(default=ZERO)  # money applied to this invoice; any excess went to the city's credit
    credited: Decimal = field(default=ZERO)  # cancelled by credit notes

    @classmethod
    def contribution(cls, city_id: UUID, year: int, issued_on: date) -> "Invoice":
        return cls.new(city_id, "contribution", year, CONTRIBUTION, issued_on)

    @classmethod
    def new(cls, city_id: UUID, kind: str, year: int, amount: Decimal, issued_on: date) -> "Invoice":
        return cls(
            id=uuid4(), city_id=city_id, kind=kind, year=year, amount=amount, issued_on=issued_on, due_on=issued_on + PAYMENT_TERM
        )

    @property
    def net(self) -> Decimal:
        return self.amount - self.credited

    @property
    def outstanding(self) -> Decimal:
        return self.net - self.paid

    def status(self, today: date) -> str:
        if self.credited >= self.amount:
            return "cancelled"
        if self.paid >= self.net:
            return "paid"
        if today > self.due_on:
            return "overdue"
        return "partly_paid" if self.paid > 0 else "issued"

    def pay(self, amount: Decimal) -> tuple[Decimal, Decimal]:
        """Apply a payment: (applied to the invoice, excess kept as a credit on the city)."""
        applied = min(amount, max(self.outstanding, ZERO))
        self.paid += applied
        return applied, amount - applied

    def credit(self, amount: Decimal) -> Decimal:
        """Apply a credit note; returns the money already paid beyond the new net, now the city's credit."""
        self.credited += amount
        excess = max(self.paid - self.net, ZERO)
        self.paid -= excess
        return excess

    def creditable(self) -> Decimal:
        return self.amount - self.credited

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


@dataclass(eq=False)
class BudgetLine:
    """One line of one year's budget. `held` counts the claims waiting on it, first come first served."""

    year: int
    line: str
    allocation: Decimal = ZERO
    received: Decimal = ZERO  # contributions received for the year: what funds the administration line
    committed: Decimal = ZERO
    spent: Decimal = ZERO
    held: int = 0
    is_set: bool = False  # a BudgetSet has given this year its allocations

    @property
    def available(self) -> Decimal:
        return self.received if self.line == ADMINISTRATION else self.allocation

    @property
    def headroom(self) -> Decimal:
        return self.available - self.committed - self.spent

    @property
    def used_pct(self) -> Decimal:
        return used_pct(self.available, self.committed + self.spent)

    @property
    def warning(self) -> str | None:
        return warning(self.available, self.committed + self.spent)

    def hold_reason(self, amount: Decimal) -> str | None:
        """Why a CoE-funded amount cannot be committed now, or None: it is committed in full or not at all."""
        if not self.is_set:
            return f"no budget set for {self.year} yet: the {self.line} line has no headroom"
        if self.held:
            return f"{self.held} earlier claim(s) wait on {self.line} {self.year}: first come, first served"
        if amount > self.headroom:
            return f"{self.line} {self.year} headroom {self.headroom:.2f} EUR does not cover {amount:.2f} EUR"
        return None

    def covers(self, amount: Decimal) -> bool:
        return self.is_set and amount <= self.headroom


@dataclass(eq=False)
class Claim:
    """A delegate's travel claim or an expert visit, as finance decided it."""

    claim_id: UUID
    kind: str | None = None  # "travel" | "expert_visit"; unknown until travel's event is seen (rebuild order)
    city_id: UUID | None = None
    european: bool | None = None
    budget_line: str | None = None
    year: int | None = None
    amount: Decimal = ZERO  # the CoE-funded amount
    city_borne: Decimal = ZERO  # borne by the city (non-European delegates)
    recharged: Decimal = ZERO  # expert visit costs invoiced to a non-European city
    status: str = "submitted"  # submitted | approved | held | paid | rejected
    reason: str | None = None
    held_since: datetime | None = None
    paid_amount: Decimal = ZERO
    paid_on: date | None = None


@dataclass(eq=False)
class Spending:
    """Other spending finance records against a line: a commitment (later settled) or money spent."""

    id: UUID
    year: int
    budget_line: str
    kind: str  # "commitment" | "spent"
    amount: Decimal
    reference: str
    recorded_on: date
    open: Decimal = ZERO  # what is still committed
    spent: Decimal = ZERO

