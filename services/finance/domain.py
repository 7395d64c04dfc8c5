"""Finance rules: contributions, invoices and payments, credits, budget lines and the claims they
fund, and the corrections of each. Pure: no I/O.

Each aggregate decides and applies (as eventsourcing's trigger_event/apply): a decision method
checks the rule, refuses with a shared refusal, and returns the fact it allows; an `apply_*`
method (or projections.py) changes the figures when that fact is recorded or replayed. Applying
never refuses: the rebuild replays facts across topics in any order."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import (
    BudgetSet, BudgetThresholdCrossed, CreditApplied, CreditNoteIssued, CreditRefunded, InvoiceIssued, PaymentReceived, PaymentReversed,
    ReimbursementApproved, ReimbursementHeld, ReimbursementPaid, ReimbursementRejected, ReimbursementReopened,
    SpendingRecorded, SpendingReversed, TravelClaimAmended,
)
from services.common.refusals import Conflict, Invalid

ZERO = Decimal("0.00")
CONTRIBUTION = Decimal("5000.00")  # [programme] per member city per calendar year, European or not
PAYMENT_TERM = timedelta(days=60)  # [rule] due 60 days after issue
LATE_JOIN_MONTH = 10  # [rule] joining on or after 1 October: the first invoice is for the next year
REASON_LENGTH = 500  # what a reason column keeps

ADMINISTRATION = "administration"  # funded by the contributions received for the year
COE_LINES = ("delegate_travel", "expert_visits", "index_analysis", "events")  # funded by the CoE allocation
LINES = (ADMINISTRATION, *COE_LINES)
WARNINGS = (90, 80)  # [rule] warn at 90% and 80% use, the higher first
THRESHOLDS = (80, 90)  # [rule] finance tells the platform when a line's use first reaches these (BudgetThresholdCrossed)
INVOICE_SERIES, CREDIT_NOTE_SERIES = "ICC", "ICC-CN"  # legal numbers: ICC-2027-0001, ICC-CN-2027-0001

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


def _reason(text: str) -> str:
    return text[:REASON_LENGTH]


# --- members and their contributions ----------------------------------------------------------


@dataclass(eq=False)
class Member:
    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None  # the withdrawal's effective date: its last day as a member

    def member_on(self, day: date) -> bool:
        """[rule] A member from its join date up to and including its withdrawal's effective date."""
        return self.joined_on <= day and (self.left_on is None or day <= self.left_on)

    def owes_contribution_for(self, year: int) -> bool:
        """[rule] A city pays for each year it is a member on 1 January, and for the year it joins
        when it joins before 1 October (joining later, its first year is the next one)."""
        joined_that_year = self.joined_on.year == year and self.joined_on.month < LATE_JOIN_MONTH
        return joined_that_year or self.member_on(date(year, 1, 1))

    def contributions_due(self, runs: Iterable[int]) -> list[int]:
        """The years to invoice it for now: its first contribution year, and each year an annual
        run was done for, that it owes (a run done before finance learnt of it does not skip it)."""
        return sorted({year for year in (contribution_year(self.joined_on), *runs) if self.owes_contribution_for(year)})

    def contributions_not_owed(self, invoices: Iterable["Invoice"]) -> list["Invoice"]:
        """Its live contribution invoices for years it does not owe (after its join date was
        corrected). Manual invoices are finance's own decision: the rules leave them alone."""
        return [i for i in invoices if not i.manual and not i.cancelled and not self.owes_contribution_for(i.year)]

    def contribution(self, year: int, invoices: Iterable["Invoice"], issued_on: date, reason: str | None = None) -> "Invoice | None":
        """Its contribution for `year`, unless one is live already (so replays change nothing).
        A year whose invoice credit notes cancelled gets a new one that names it (`replaces`)."""
        of_year = [i for i in invoices if i.kind == "contribution" and i.year == year]
        if any(not i.cancelled for i in of_year):
            return None
        replaced = {i.replaces for i in of_year}
        last = next((i.id for i in of_year if i.id not in replaced), None)
        return Invoice.new(self.city_id, "contribution", year, CONTRIBUTION, issued_on, reason=reason, replaces=last)

    def manual_contribution(self, year: int, reason: str, issued_on: date, invoices: Iterable["Invoice"]) -> "Invoice":
        """A contribution finance invoices by hand, for a year the rules did not bill."""
        if self.joined_on > date(year, 12, 31) or (self.left_on is not None and self.left_on < date(year, 1, 1)):
            raise Conflict(f"{self.name} was not a member at any time in {year} (joined {self.joined_on}"
                           + (f", left {self.left_on})" if self.left_on else ")"), code="not_a_member_that_year", field="year")
        if (invoice := self.contribution(year, invoices, issued_on, _reason(reason))) is None:
            raise Conflict(f"{self.name} already has a {year} contribution: at most one per city and year; "
                           "cancel it with a credit note first", code="already_invoiced")
        return invoice


# --- invoices, payments, credit ---------------------------------------------------------------


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
    reason: str | None = None  # set on manual invoices only
    replaces: UUID | None = None  # the cancelled contribution of the same city and year it replaces
    number: str | None = None  # the legal number, given when it is issued (None: issued before numbering)

    @classmethod
    def contribution(cls, city_id: UUID, year: int, issued_on: date) -> "Invoice":
        return cls.new(city_id, "contribution", year, CONTRIBUTION, issued_on)

    @classmethod
    def new(cls, city_id: UUID, kind: str, year: int, amount: Decimal, issued_on: date, reason: str | None = None,
            replaces: UUID | None = None) -> "Invoice":
        return cls(
            id=uuid4(), city_id=city_id, kind=kind, year=year, amount=amount, issued_on=issued_on,
            due_on=issued_on + PAYMENT_TERM, reason=reason, replaces=replaces,
        )

    @property
    def manual(self) -> bool:
        return self.reason is not None

    @property
    def funds_administration(self) -> bool:
        """Contributions received for a year are what its administration line may spend."""
        return self.kind == "contribution"

    @property
    def net(self) -> Decimal:
        return self.amount - self.credited

    @property
    def outstanding(self) -> Decimal:
        """What it still asks: never below zero (money beyond the net is the city's credit)."""
        return max(self.net - self.paid, ZERO)

    @property
    def cancelled(self) -> bool:
        return self.credited >= self.amount

    @property
    def creditable(self) -> Decimal:
        return self.amount - self.credited

    def status(self, today: date) -> str:
        if self.cancelled:
            return "cancelled"
        if self.paid >= self.net:
            return "paid"
        if today > self.due_on:
            return "overdue"
        return "partly_paid" if self.paid > 0 else "issued"

    def issued(self) -> InvoiceIssued:
        return InvoiceIssued(
            invoice_id=self.id, city_id=self.city_id, kind=self.kind, year=self.year, amount=self.amount,
            issued_on=self.issued_on, due_on=self.due_on, reason=self.reason, replaces=self.replaces, number=self.number,
        )

    # --- decisions

    def payment(self, amount: Decimal, paid_on: date, reference: str, payments: Iterable["Payment"]) -> PaymentReceived:
        """Money received: applied up to what it still asks, the excess kept as the city's credit."""
        if self.cancelled:
            raise Conflict(f"invoice {self.id} is cancelled by credit notes: there is nothing to pay", code="invoice_cancelled")
        if any(p.reference == reference for p in payments):  # a double posting, not a second payment
            raise Conflict(f"a payment with reference {reference!r} is already recorded on invoice {self.id}",
                           code="duplicate_reference", field="reference")
        return PaymentReceived(invoice_id=self.id, city_id=self.city_id, amount=amount, paid_on=paid_on, reference=reference)

    def credit_note(self, amount: Decimal, reason: str, issued_on: date, administration: "BudgetLine | None") -> CreditNoteIssued:
        """Cancel (part of) it; what was paid beyond the new net becomes the city's credit."""
        if amount > self.creditable:
            raise Conflict(f"invoice {self.id} has {self.creditable:.2f} EUR left to credit, not {amount:.2f}",
                           code="more_than_creditable", field="amount")
        if self.funds_administration:
            administration.may_give_back(self._taken_back_by(amount), f"the credit note on the {self.year} contribution")
        return self._credit_note(amount, reason, issued_on)

    def cancellation(self, reason: str, on: date, administration: "BudgetLine | None") -> CreditNoteIssued | None:
        """The rules cancel what is left of it (the city no longer owes the year), short of taking
        back contributions the administration line has already committed or spent."""
        amount = self.creditable
        if self.funds_administration:
            amount -= max(self._taken_back_by(amount) - max(administration.headroom, ZERO), ZERO)
        return self._credit_note(amount, reason, on) if amount > 0 else None

    def _credit_note(self, amount: Decimal, reason: str, issued_on: date) -> CreditNoteIssued:
        return CreditNoteIssued(credit_note_id=uuid4(), invoice_id=self.id, city_id=self.city_id, amount=amount,
                                reason=_reason(reason), issued_on=issued_on)

    def _taken_back_by(self, credited: Decimal) -> Decimal:
        """Money received on it that a credit note of `credited` moves out (to the city's credit)."""
        return max(self.paid - (self.net - credited), ZERO)

    # --- facts applied

    def apply_payment(self, amount: Decimal) -> tuple[Decimal, Decimal]:
        """(applied to the invoice, excess kept as a credit on the city)."""
        applied = min(amount, self.outstanding)
        self.paid += applied
        return applied, amount - applied

    def apply_credit_note(self, amount: Decimal) -> Decimal:
        """Returns the money already paid beyond the new net, now the city's credit."""
        self.credited += amount
        excess = max(self.paid - self.net, ZERO)
        self.paid -= excess
        return excess


@dataclass(eq=False)
class Payment:
    """Money received against an invoice (its id: the id of its `PaymentReceived`)."""

    id: UUID
    invoice_id: UUID
    city_id: UUID
    amount: Decimal
    applied: Decimal  # what went to the invoice when it was received; the rest went to the city's credit
    paid_on: date
    reference: str
    reversed_on: date | None = None
    reversal_reason: str | None = None

    def reversal(self, invoice: Invoice, credit: "Credit", reason: str, on: date,
                 administration: "BudgetLine | None") -> PaymentReversed:
        """[rule] Taken back first from what the invoice shows paid, the rest from the city's credit."""
        if self.reversed_on is not None:
            raise Conflict(f"payment {self.id} was reversed on {self.reversed_on}: {self.reversal_reason}", code="already_reversed")
        from_invoice = min(self.amount, invoice.paid)
        from_credit = self.amount - from_invoice
        if from_credit > credit.balance:
            raise Conflict(
                f"reversing payment {self.id} takes {from_credit:.2f} EUR back from the city's credit, which holds "
                f"{credit.balance:.2f} EUR (the rest was applied or refunded): reverse those first", code="credit_used",
            )
        if invoice.funds_administration:
            administration.may_give_back(from_invoice, f"reversing payment {self.id}")
        return PaymentReversed(payment_id=self.id, invoice_id=self.invoice_id, city_id=self.city_id, amount=self.amount,
                               from_invoice=from_invoice, from_credit=from_credit, reason=_reason(reason), reversed_on=on)

    def moved_to(self, invoice: Invoice, payments: Iterable["Payment"]) -> PaymentReceived:
        """The same money recorded on the right invoice (it is reversed where it was recorded)."""
        if invoice.id == self.invoice_id:
            raise Conflict(f"payment {self.id} is already recorded on invoice {invoice.id}", code="same_invoice", field="invoice_id")
        return invoice.payment(self.amount, self.paid_on, self.reference, payments)


@dataclass(eq=False)
class Credit:
    """What a city paid beyond its invoices and has not had applied or refunded yet."""

    city_id: UUID
    balance: Decimal = ZERO

    def application(self, invoice: Invoice, amount: Decimal | None, on: date) -> CreditApplied:
        """Pay (part of) an invoice of the city out of its credit: by default, as much as both allow."""
        if invoice.cancelled:
            raise Conflict(f"invoice {invoice.id} is cancelled by credit notes: there is nothing to pay", code="invoice_cancelled")
        if amount is None:
            amount = min(self.balance, invoice.outstanding)
            if amount <= 0:
                raise Conflict(f"nothing to apply: the city's credit is {self.balance:.2f} EUR and the invoice asks "
                               f"{invoice.outstanding:.2f} EUR", code="nothing_to_apply")
        if amount > self.balance:
            raise Conflict(f"the city's credit is {self.balance:.2f} EUR, not {amount:.2f}", code="more_than_credit", field="amount")
        if amount > invoice.outstanding:
            raise Conflict(f"invoice {invoice.id} asks {invoice.outstanding:.2f} EUR, not {amount:.2f}",
                           code="more_than_outstanding", field="amount")
        return CreditApplied(invoice_id=invoice.id, city_id=self.city_id, amount=amount, applied_on=on)

    def refund(self, amount: Decimal | None, reference: str, on: date) -> CreditRefunded:
        """Pay (part of) the credit back to the city: by default all of it."""
        amount = self.balance if amount is None else amount
        if amount <= 0:
            raise Conflict("the city has no credit to refund", code="no_credit")
        if amount > self.balance:
            raise Conflict(f"the city's credit is {self.balance:.2f} EUR, not {amount:.2f}", code="more_than_credit", field="amount")
        return CreditRefunded(refund_id=uuid4(), city_id=self.city_id, amount=amount, reference=reference, refunded_on=on)


# --- budget lines, claims and other spending ---------------------------------------------------


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
    threshold_reached: int = 0  # the highest threshold published for it (0, 80, 90): each is told once

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

    def thresholds_crossed(self, on: date) -> list[BudgetThresholdCrossed]:
        """[rule] Its use (committed + spent) has reached 80% or 90% of what it may use, the first time
        in the year: by commitments and spending, or by a lowered allocation (fewer contributions
        received, for the administration line). Once per threshold: falling back and rising again is not news."""
        used = self.committed + self.spent
        return [
            BudgetThresholdCrossed(year=self.year, budget_line=self.line, threshold=threshold, allocation=self.available,
                                   used=used, crossed_on=on)
            for threshold in THRESHOLDS
            if threshold > self.threshold_reached and self.available > 0 and used * 100 >= self.available * threshold
        ]

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

    def decision(self, claim_id: UUID, amount: Decimal) -> ReimbursementApproved | ReimbursementHeld:
        """[rule] Commit a CoE-funded amount in full when the headroom covers it and nothing waits
        before it; else hold it (never part-fund). Nothing to fund (0.00) is approved at once."""
        reason = self.hold_reason(amount) if amount else None
        if reason:
            return ReimbursementHeld(claim_id=claim_id, amount=amount, budget_line=self.line, year=self.year, reason=reason)
        return ReimbursementApproved(claim_id=claim_id, amount=amount, budget_line=self.line, year=self.year)

    def release(self, claim: "Claim") -> ReimbursementApproved | None:
        """The next held claim, approved if it now fits; None stops the release (no overtaking)."""
        if not self.covers(claim.amount):
            return None
        return ReimbursementApproved(claim_id=claim.claim_id, amount=claim.amount, budget_line=self.line, year=self.year)

    def spending(self, kind: str, amount: Decimal, reference: str, on: date) -> SpendingRecorded:
        """Other spending, as a commitment or as spent: only within the line's headroom (it does not
        wait behind held claims: finance staff decide it deliberately)."""
        if not self.is_set:
            raise Conflict(f"no budget set for {self.year} yet: set it with PUT /budgets/{self.year} first", code="no_budget")
        if amount > self.headroom:  # headroom never goes below zero
            raise Conflict(f"{self.line} {self.year} headroom {self.headroom:.2f} EUR does not cover {amount:.2f} EUR",
                           code="no_headroom", field="amount")
        committed, spent = (amount, ZERO) if kind == "commitment" else (ZERO, amount)
        return SpendingRecorded(spending_id=uuid4(), year=self.year, budget_line=self.line, kind=kind, committed=committed,
                                spent=spent, reference=reference, recorded_on=on)

    def may_allocate(self, allocation: Decimal) -> None:
        if self.line in COE_LINES and allocation < self.committed + self.spent:
            raise Conflict(
                f"{self.line} {self.year}: allocation {allocation:.2f} EUR is below what is already committed "
                f"and spent ({self.committed + self.spent:.2f} EUR)", code="below_committed", field=self.line,
            )

    def may_give_back(self, received: Decimal, what: str) -> None:
        """Contributions received that a correction takes back must not be committed or spent already."""
        if received > self.headroom:
            raise Conflict(
                f"{what} would take back {received:.2f} EUR of contributions received for {self.year}, "
                f"but the administration line has only {self.headroom:.2f} EUR headroom: release a commitment first",
                code="received_money_in_use",
            )


def budget(year: int, lines: list[BudgetLine], allocations: dict[str, Decimal]) -> BudgetSet:
    for line in lines:
        line.may_allocate(allocations[line.line])
    return BudgetSet(year=year, **{line: allocations[line] for line in LINES})


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
    supersedes: UUID | None = None  # the rejected claim this resubmission replaces
    claim_version: int = 1

    @property
    def final(self) -> bool:
        return self.status in ("paid", "rejected")

    def payment(self, paid_on: date, amount: Decimal | None) -> ReimbursementPaid:
        """An approved claim is paid: its commitment becomes spent (a smaller payment releases the rest)."""
        if self.status != "approved":
            raise Conflict(f"claim {self.claim_id} is {self.status}: only an approved claim can be paid", code="not_approved")
        if self.amount == 0:
            raise Conflict(f"claim {self.claim_id} has nothing CoE-funded: there is nothing to pay", code="nothing_to_pay")
        amount = self.amount if amount is None else amount
        if amount <= 0:
            raise Invalid("a payment is more than 0.00 EUR", code="nothing_paid", field="amount")
        if amount > self.amount:
            raise Conflict(f"claim {self.claim_id}: {amount:.2f} EUR is more than the {self.amount:.2f} EUR approved",
                           code="more_than_approved", field="amount")
        return ReimbursementPaid(claim_id=self.claim_id, amount=amount, paid_on=paid_on)

    def rejection(self, reason: str) -> ReimbursementRejected:
        """A held (or approved, unpaid) claim is rejected: it leaves the queue or releases its commitment."""
        if self.status not in ("held", "approved"):
            raise Conflict(f"claim {self.claim_id} is {self.status}: only a held or approved claim can be rejected",
                           code="not_rejectable")
        return ReimbursementRejected(claim_id=self.claim_id, reason=_reason(reason))

    def reopening(self, amended: TravelClaimAmended) -> ReimbursementReopened | None:
        """An amendment reopens a claim finance has not finally decided; one that crossed a payment
        or a rejection changes nothing (travel follows finance's decision)."""
        if self.final:
            return None
        return ReimbursementReopened(
            claim_id=self.claim_id, amount=self.amount, budget_line=self.budget_line or amended.budget_line,
            year=self.year if self.year is not None else amended.event_year, coe_funded=amended.coe_funded,
            city_borne=amended.city_borne, reason=f"amended on {amended.amended_on} (amendment {amended.amendment})",
        )


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
    reversed_on: date | None = None
    reversal_reason: str | None = None

    def settlement(self, spent: Decimal, on: date) -> SpendingRecorded:
        """A commitment is settled once: `spent` moves from committed to spent, the rest is released."""
        if self.kind != "commitment" or self.open == 0:
            raise Conflict(f"spending {self.id} has no open commitment to settle", code="nothing_to_settle")
        if spent > self.open:
            raise Conflict(f"spending {self.id}: {spent:.2f} EUR is more than the {self.open:.2f} EUR committed",
                           code="more_than_committed", field="spent")
        return SpendingRecorded(spending_id=self.id, year=self.year, budget_line=self.budget_line, kind="settled",
                                committed=-self.open, spent=spent, reference=self.reference, recorded_on=on)

    def reversal(self, reason: str, on: date) -> SpendingReversed:
        """A mistaken entry gives back to the line what it still holds (committed and spent)."""
        if self.reversed_on is not None:
            raise Conflict(f"spending {self.id} was reversed on {self.reversed_on}: {self.reversal_reason}", code="already_reversed")
        return SpendingReversed(spending_id=self.id, year=self.year, budget_line=self.budget_line, committed=self.open,
                                spent=self.spent, reason=_reason(reason), reversed_on=on)
