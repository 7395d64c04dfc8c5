"""What each fact does to finance's figures: one function per event type.

The live service decides (handlers.py), emits the decision and applies it here in the same
transaction; the rebuild (rebuild.py) applies the same events read back from the topics. One code
path for both is what makes a rebuilt database reach the live figures. Every function must be
safe in any order across aggregates: only one aggregate's facts arrive in order."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from contracts.events import (
    BudgetSet, BudgetThresholdCrossed, CityJoined, CityLeft, ContributionRunCompleted, CreditApplied, CreditNoteIssued, CreditRefunded, Event,
    ExpertVisitClaimed, InvoiceIssued, JoinDateCorrected, PaymentReceived, PaymentReversed, ReimbursementApproved,
    ReimbursementHeld, ReimbursementPaid, ReimbursementRejected, ReimbursementReopened, SpendingRecorded, SpendingReversed,
    TravelClaimAmended, TravelClaimed,
)
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import ADMINISTRATION, LINES, Claim, Invoice, Member, Payment, Spending


@dataclass(frozen=True)
class Fact:
    """Where a fact comes from: its event's id (None for a consumed event in the live path:
    handlers do not see the envelope), when it happened, and its correlation id."""

    event_id: str | None
    occurred_at: datetime
    correlation_id: str | None = None


def _money(amount: Decimal) -> str:
    return f"{amount:.2f} EUR"


def _ledger(
    uow: FinanceUnitOfWork, fact: Fact, event: Event, account: str, amount: Decimal, *, year: int, on: date | None = None,
    invoice_kind: str | None = None, budget_line: str | None = None, city_id: UUID | None = None, ref: UUID | None = None,
) -> None:
    if amount == 0:
        return
    uow.record_ledger(
        event_id=fact.event_id or "", event_type=event.type, correlation_id=fact.correlation_id,
        occurred_on=on or fact.occurred_at.date(), year=year, account=account, invoice_kind=invoice_kind,
        budget_line=budget_line, city_id=city_id, ref=ref, amount=amount,
    )


async def _claim(uow: FinanceUnitOfWork, claim_id: UUID) -> Claim:
    claim = await uow.claims.get(claim_id)
    if claim is None:
        claim = Claim(claim_id=claim_id)
        uow.claims.add(claim)
    return claim


async def city_joined(uow: FinanceUnitOfWork, e: CityJoined, fact: Fact) -> str:
    member = await uow.members.get(e.city_id)
    if member is None:
        uow.members.add(Member(city_id=e.city_id, name=e.name, european=e.european, joined_on=e.joined_on))
    else:  # rejoined after leaving
        member.left_on, member.joined_on, member.european, member.name = None, e.joined_on, e.european, e.name
    return f"{e.name} ({e.country}) joined on {e.joined_on}"


async def join_date_corrected(uow: FinanceUnitOfWork, e: JoinDateCorrected, fact: Fact) -> str:
    if member := await uow.members.get(e.city_id):
        member.joined_on, member.european = e.joined_on, e.european
    return f"{uow.members.name(e.city_id)}'s join date corrected from {e.previous_joined_on} to {e.joined_on}: {e.reason}"


async def city_left(uow: FinanceUnitOfWork, e: CityLeft, fact: Fact) -> str:
    # Invoices already issued stay due; the member just drops out of future annual runs.
    if member := await uow.members.get(e.city_id):
        member.left_on = e.effective_on
    return f"{uow.members.name(e.city_id)} withdraws effective {e.effective_on} (a member up to and including that day)"


async def contribution_run_completed(uow: FinanceUnitOfWork, e: ContributionRunCompleted, fact: Fact) -> str:
    await uow.runs.add(e.year, e.run_on)
    return f"Contribution run for {e.year} done on {e.run_on}"


async def invoice_issued(uow: FinanceUnitOfWork, e: InvoiceIssued, fact: Fact) -> str:
    summary = f"Invoice of {_money(e.amount)} ({e.kind.replace('_', ' ')} {e.year}) to {uow.members.name(e.city_id)}"
    if await uow.invoices.get(e.invoice_id) is not None:
        return summary
    uow.invoices.add(
        uow.invoices.made(e.invoice_id)  # the rules' own object, when finance issues it in this transaction
        or Invoice(id=e.invoice_id, city_id=e.city_id, kind=e.kind, year=e.year, amount=e.amount, issued_on=e.issued_on,
                   due_on=e.due_on, reason=e.reason, replaces=e.replaces, number=e.number)
    )
    _ledger(uow, fact, e, "invoiced", e.amount, year=e.year, on=e.issued_on, invoice_kind=e.kind, city_id=e.city_id, ref=e.invoice_id)
    return summary + (f", by hand: {e.reason}" if e.reason else "")


async def _invoice(uow: FinanceUnitOfWork, invoice_id: UUID) -> Invoice:
    if (invoice := await uow.invoices.get(invoice_id)) is None:
        raise LookupError(f"a fact about unknown invoice {invoice_id}")
    return invoice


async def _received(uow: FinanceUnitOfWork, fact: Fact, e: Event, invoice: Invoice, on: date, received: Decimal, credit: Decimal) -> None:
    """Money received on an invoice and a city's credit moving: the invoice, the credit, the
    administration line a contribution funds, and the ledger."""
    where = {"year": invoice.year, "on": on, "invoice_kind": invoice.kind, "city_id": invoice.city_id, "ref": invoice.id}
    _ledger(uow, fact, e, "received", received, **where)
    _ledger(uow, fact, e, "credit", credit, **where)
    if credit:
        (await uow.credits.of(invoice.city_id)).balance += credit
    if invoice.funds_administration and received:
        (await uow.lines.get(invoice.year, ADMINISTRATION)).received += received


async def payment_received(uow: FinanceUnitOfWork, e: PaymentReceived, fact: Fact) -> str:
    invoice = await _invoice(uow, e.invoice_id)
    applied, excess = invoice.apply_payment(e.amount)
    uow.payments.add(Payment(id=UUID(fact.event_id), invoice_id=e.invoice_id, city_id=e.city_id, amount=e.amount,
                             applied=applied, paid_on=e.paid_on, reference=e.reference))
    await _received(uow, fact, e, invoice, e.paid_on, applied, excess)
    kept = f", {_money(excess)} kept as credit" if excess else ""
    return f"Payment of {_money(e.amount)} on invoice {str(e.invoice_id)[:8]} ({e.reference}){kept}"


async def credit_note_issued(uow: FinanceUnitOfWork, e: CreditNoteIssued, fact: Fact) -> str:
    invoice = await _invoice(uow, e.invoice_id)
    excess = invoice.apply_credit_note(e.amount)
    await uow.invoices.add_credit_note(
        id=e.credit_note_id, invoice_id=e.invoice_id, city_id=e.city_id, amount=e.amount, reason=e.reason, issued_on=e.issued_on,
        number=e.number,
    )
    _ledger(uow, fact, e, "credited", e.amount, year=invoice.year, on=e.issued_on, invoice_kind=invoice.kind,
            city_id=e.city_id, ref=e.invoice_id)
    await _received(uow, fact, e, invoice, e.issued_on, -excess, excess)
    return f"Credit note of {_money(e.amount)} on invoice {str(e.invoice_id)[:8]}: {e.reason}"


async def payment_reversed(uow: FinanceUnitOfWork, e: PaymentReversed, fact: Fact) -> str:
    invoice = await _invoice(uow, e.invoice_id)
    invoice.paid -= e.from_invoice
    if payment := await uow.payments.get(e.payment_id):
        payment.reversed_on, payment.reversal_reason = e.reversed_on, e.reason
    await _received(uow, fact, e, invoice, e.reversed_on, -e.from_invoice, -e.from_credit)
    return f"Payment of {_money(e.amount)} on invoice {str(e.invoice_id)[:8]} reversed: {e.reason}"


async def credit_applied(uow: FinanceUnitOfWork, e: CreditApplied, fact: Fact) -> str:
    invoice = await _invoice(uow, e.invoice_id)
    invoice.paid += e.amount
    await _received(uow, fact, e, invoice, e.applied_on, e.amount, -e.amount)
    return f"{_money(e.amount)} of {uow.members.name(e.city_id)}'s credit applied to invoice {str(e.invoice_id)[:8]}"


async def credit_refunded(uow: FinanceUnitOfWork, e: CreditRefunded, fact: Fact) -> str:
    (await uow.credits.of(e.city_id)).balance -= e.amount
    _ledger(uow, fact, e, "credit", -e.amount, year=e.refunded_on.year, on=e.refunded_on, city_id=e.city_id, ref=e.refund_id)
    return f"{_money(e.amount)} of {uow.members.name(e.city_id)}'s credit refunded ({e.reference})"


async def budget_set(uow: FinanceUnitOfWork, e: BudgetSet, fact: Fact) -> str:
    for line in await uow.lines.year(e.year):
        allocation = getattr(e, line.line)
        _ledger(uow, fact, e, "allocation", allocation - line.allocation, year=e.year, budget_line=line.line)
        line.allocation, line.is_set = allocation, True
    return f"Budget {e.year} set: " + ", ".join(f"{line.replace('_', ' ')} {getattr(e, line):.2f}" for line in LINES)


async def budget_threshold_crossed(uow: FinanceUnitOfWork, e: BudgetThresholdCrossed, fact: Fact) -> str:
    line = await uow.lines.get(e.year, e.budget_line)
    line.threshold_reached = max(line.threshold_reached, e.threshold)  # told once: a replay or a rebuild tells no more
    return f"{e.budget_line.replace('_', ' ')} {e.year} reached {e.threshold}% of {_money(e.allocation)}: {_money(e.used)} used"


async def spending_recorded(uow: FinanceUnitOfWork, e: SpendingRecorded, fact: Fact) -> str:
    line = await uow.lines.get(e.year, e.budget_line)
    line.committed += e.committed
    line.spent += e.spent
    entry = await uow.spendings.get(e.spending_id)
    if entry is None:
        entry = Spending(
            id=e.spending_id, year=e.year, budget_line=e.budget_line, kind=e.kind, amount=e.committed + e.spent,
            reference=e.reference, recorded_on=e.recorded_on,
        )
        uow.spendings.add(entry)
    entry.open += e.committed
    entry.spent += e.spent
    where = {"year": e.year, "on": e.recorded_on, "budget_line": e.budget_line, "ref": e.spending_id}
    _ledger(uow, fact, e, "committed", e.committed, **where)
    _ledger(uow, fact, e, "spent", e.spent, **where)
    what = {"commitment": f"Commitment of {_money(e.committed)}", "spent": f"Spending of {_money(e.spent)}",
            "settled": f"Commitment settled: {_money(e.spent)} spent, {_money(-e.committed - e.spent)} released"}[e.kind]
    return f"{what} on {e.budget_line} {e.year} ({e.reference})"


async def spending_reversed(uow: FinanceUnitOfWork, e: SpendingReversed, fact: Fact) -> str:
    line = await uow.lines.get(e.year, e.budget_line)
    line.committed -= e.committed
    line.spent -= e.spent
    if entry := await uow.spendings.get(e.spending_id):
        entry.open -= e.committed
        entry.spent -= e.spent
        entry.reversed_on, entry.reversal_reason = e.reversed_on, e.reason
    where = {"year": e.year, "on": e.reversed_on, "budget_line": e.budget_line, "ref": e.spending_id}
    _ledger(uow, fact, e, "committed", -e.committed, **where)
    _ledger(uow, fact, e, "spent", -e.spent, **where)
    return f"Spending {str(e.spending_id)[:8]} on {e.budget_line} {e.year} reversed: {e.reason}"


async def travel_claimed(uow: FinanceUnitOfWork, e: TravelClaimed, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    claim.kind, claim.city_id, claim.european, claim.city_borne = "travel", e.city_id, e.european, e.city_borne
    claim.supersedes, claim.claim_version = e.supersedes, e.claim_version
    if claim.status == "submitted":  # a decision read earlier (rebuild order) already says these
        claim.budget_line, claim.year, claim.amount = e.budget_line, e.event_year, e.coe_funded
    who = "a European" if e.european else "a non-European"
    again = f" (version {e.claim_version}, replacing rejected claim {str(e.supersedes)[:8]})" if e.supersedes else ""
    return (f"Travel claim {str(e.claim_id)[:8]}{again} from {who} delegate of {uow.members.name(e.city_id)}: "
            f"{_money(e.coe_funded)} CoE-funded, {_money(e.city_borne)} city-borne")


async def travel_claim_amended(uow: FinanceUnitOfWork, e: TravelClaimAmended, fact: Fact) -> str:
    # What it holds on the budget moves with finance's own facts (ReimbursementReopened, then the
    # decision), which follow one another on the claim's key in every replay.
    claim = await _claim(uow, e.claim_id)
    claim.city_borne = e.city_borne
    return (f"Travel claim {str(e.claim_id)[:8]} amended (amendment {e.amendment}): {_money(e.coe_funded)} CoE-funded "
            f"instead of {_money(e.previous_coe_funded)}, {_money(e.city_borne)} city-borne")


async def expert_visit_claimed(uow: FinanceUnitOfWork, e: ExpertVisitClaimed, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    claim.kind, claim.city_id, claim.european, claim.recharged = "expert_visit", e.city_id, e.european, e.recharged
    if claim.status == "submitted":
        claim.budget_line, claim.year, claim.amount = "expert_visits", e.visit_date.year, e.coe_funded
    return f"Expert visit to {uow.members.name(e.city_id)} on {e.visit_date}: {_money(e.coe_funded)} CoE-funded, {_money(e.recharged)} recharged"


async def reimbursement_approved(uow: FinanceUnitOfWork, e: ReimbursementApproved, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    if e.amount or claim.status == "held":
        line = await uow.lines.get(e.year, e.budget_line)
        if claim.status == "held":
            line.held -= 1
        line.committed += e.amount
    claim.status, claim.amount, claim.budget_line, claim.year, claim.reason = "approved", e.amount, e.budget_line, e.year, None
    _ledger(uow, fact, e, "committed", e.amount, year=e.year, budget_line=e.budget_line, ref=e.claim_id)
    return f"Claim {str(e.claim_id)[:8]} approved: {_money(e.amount)} committed on {e.budget_line} {e.year}"


async def reimbursement_held(uow: FinanceUnitOfWork, e: ReimbursementHeld, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    if claim.status != "held":
        (await uow.lines.get(e.year, e.budget_line)).held += 1
    claim.status, claim.amount, claim.budget_line, claim.year = "held", e.amount, e.budget_line, e.year
    claim.reason, claim.held_since = e.reason, fact.occurred_at  # the queue's order: when it was held
    return f"Claim {str(e.claim_id)[:8]} of {_money(e.amount)} held: {e.reason}"


async def reimbursement_reopened(uow: FinanceUnitOfWork, e: ReimbursementReopened, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    if claim.status == "held":
        (await uow.lines.get(e.year, e.budget_line)).held -= 1
    elif claim.status == "approved" and e.amount:
        (await uow.lines.get(e.year, e.budget_line)).committed -= e.amount
        _ledger(uow, fact, e, "committed", -e.amount, year=e.year, budget_line=e.budget_line, ref=e.claim_id)
    claim.status, claim.amount, claim.city_borne, claim.held_since, claim.reason = "submitted", e.coe_funded, e.city_borne, None, e.reason
    return f"Claim {str(e.claim_id)[:8]} reopened, {e.reason}: {_money(e.amount)} released on {e.budget_line} {e.year}"


async def reimbursement_paid(uow: FinanceUnitOfWork, e: ReimbursementPaid, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    if claim.year is not None and claim.budget_line and (claim.amount or e.amount):
        line = await uow.lines.get(claim.year, claim.budget_line)
        line.committed -= claim.amount  # a payment below the commitment releases the rest
        line.spent += e.amount
        where = {"year": claim.year, "on": e.paid_on, "budget_line": claim.budget_line, "ref": e.claim_id}
        _ledger(uow, fact, e, "committed", -claim.amount, **where)
        _ledger(uow, fact, e, "spent", e.amount, **where)
    claim.status, claim.paid_amount, claim.paid_on = "paid", e.amount, e.paid_on
    return f"Claim {str(e.claim_id)[:8]} paid: {_money(e.amount)} on {e.paid_on}"


async def reimbursement_rejected(uow: FinanceUnitOfWork, e: ReimbursementRejected, fact: Fact) -> str:
    claim = await _claim(uow, e.claim_id)
    if claim.year is not None and claim.budget_line and claim.status in ("held", "approved"):
        line = await uow.lines.get(claim.year, claim.budget_line)
        if claim.status == "held":
            line.held -= 1
        else:
            line.committed -= claim.amount
            _ledger(uow, fact, e, "committed", -claim.amount, year=claim.year, budget_line=claim.budget_line, ref=e.claim_id)
    claim.status, claim.reason = "rejected", e.reason
    return f"Claim {str(e.claim_id)[:8]} rejected: {e.reason}"


PROJECTIONS: dict[type[Event], Callable[[FinanceUnitOfWork, Any, Fact], Awaitable[str]]] = {
    CityJoined: city_joined,
    JoinDateCorrected: join_date_corrected,
    CityLeft: city_left,
    ContributionRunCompleted: contribution_run_completed,
    InvoiceIssued: invoice_issued,
    PaymentReceived: payment_received,
    CreditNoteIssued: credit_note_issued,
    PaymentReversed: payment_reversed,
    CreditApplied: credit_applied,
    CreditRefunded: credit_refunded,
    BudgetSet: budget_set,
    BudgetThresholdCrossed: budget_threshold_crossed,
    SpendingRecorded: spending_recorded,
    SpendingReversed: spending_reversed,
    TravelClaimed: travel_claimed,
    TravelClaimAmended: travel_claim_amended,
    ExpertVisitClaimed: expert_visit_claimed,
    ReimbursementApproved: reimbursement_approved,
    ReimbursementHeld: reimbursement_held,
    ReimbursementReopened: reimbursement_reopened,
    ReimbursementPaid: reimbursement_paid,
    ReimbursementRejected: reimbursement_rejected,
}


async def project(uow: FinanceUnitOfWork, event: Event, fact: Fact) -> None:
    """Apply one fact to the figures, the ledger and the dashboard's feed."""
    summary = await PROJECTIONS[type(event)](uow, event, fact)
    uow.record_activity(fact.event_id, event.type, fact.occurred_at, summary)
