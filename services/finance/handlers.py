"""Finance handlers: plain functions for the events finance consumes and the commands its API takes.

Each decides with the domain's rules, then `record`s the resulting event: emitted through the
outbox and applied to the figures (projections.py) in the same transaction. Event handlers run
inside the consumer's batch transaction and never commit; commands own their transaction."""

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

from sqlalchemy.exc import IntegrityError

from contracts.envelope import Envelope
from contracts.events import (
    BudgetSet, CityJoined, CityLeft, CreditNoteIssued, Event, ExpertVisitClaimed, PaymentReceived, ReimbursementApproved,
    ReimbursementHeld, ReimbursementPaid, ReimbursementRejected, TravelClaimed,
)
from services.common.api import today
from services.common.db import utcnow
from services.common.refusals import Conflict, NotFound
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import ADMINISTRATION, COE_LINES, LINES, ZERO, BudgetLine, Invoice, Member, contribution_year
from contracts.events import SpendingRecorded
from services.finance.projections import Fact, project

RUN_ATTEMPTS = 3  # a concurrent run that invoiced the same cities first makes ours retry, then find them invoiced


async def record(uow: FinanceUnitOfWork, event: Event) -> Envelope:
    """Emit a fact finance decided and apply it to the figures, in the same transaction."""
    envelope = uow.emit(event)
    await project(uow, event, Fact(str(envelope.id), envelope.occurred_at, str(envelope.correlation_id)))
    return envelope


async def consumed(uow: FinanceUnitOfWork, event: Event) -> None:
    cause = uow.cause  # the envelope being applied: figures trace back to its id
    await project(uow, event, Fact(str(cause.id), cause.occurred_at, str(cause.correlation_id)) if cause
                  else Fact(None, utcnow(), None))


# --- contributions ------------------------------------------------------------------------


async def issue_contribution(uow: FinanceUnitOfWork, member: Member, year: int, issued_on: date) -> Invoice | None:
    """Invoice a member's contribution for `year` unless it already has one (replays change nothing)."""
    if await uow.invoices.contribution(member.city_id, year) is not None:
        return None
    invoice = Invoice.contribution(member.city_id, year, issued_on)
    uow.invoices.fresh(invoice.id)
    await record(uow, invoice.issued())
    return invoice


async def on_city_joined(event: CityJoined, uow: FinanceUnitOfWork) -> None:
    await consumed(uow, event)
    member = await uow.members.get(event.city_id)
    await issue_contribution(uow, member, contribution_year(event.joined_on), today())


async def on_city_left(event: CityLeft, uow: FinanceUnitOfWork) -> None:
    await consumed(uow, event)


async def run_contributions(uow: FinanceUnitOfWork, year: int, issued_on: date) -> tuple[list[Invoice], int]:
    """The annual run: invoice every member of `year` that has no contribution for it yet.
    Returns the invoices issued and how many members were already invoiced."""
    for attempt in range(RUN_ATTEMPTS):
        try:
            async with uow:
                issued, already = [], 0
                for member in await uow.members.all():
                    if not member.owes_contribution_for(year):
                        continue
                    if invoice := await issue_contribution(uow, member, year, issued_on):
                        issued.append(invoice)
                    else:
                        already += 1
                await uow.commit()
                return issued, already
        except IntegrityError:
            # The unique (city, year) index refused an invoice a concurrent run or join just issued.
            if attempt == RUN_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def pay_invoice(
    uow: FinanceUnitOfWork, invoice_id: UUID, amount: Decimal, paid_on: date, reference: str
) -> tuple[Invoice, Decimal, Decimal]:
    """Record a payment: (invoice, amount applied to it, excess kept as the city's credit)."""
    invoice = await uow.invoices.get(invoice_id, lock=True)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    if invoice.status(paid_on) == "cancelled":
        raise Conflict(f"invoice {invoice_id} is cancelled by credit notes: there is nothing to pay")
    if await uow.invoices.payment_reference_used(invoice_id, reference):
        raise Conflict(f"a payment with reference {reference!r} is already recorded on invoice {invoice_id}")
    before = invoice.paid
    await record(uow, PaymentReceived(invoice_id=invoice_id, city_id=invoice.city_id, amount=amount, paid_on=paid_on, reference=reference))
    if invoice.kind == "contribution":  # contributions received fund the administration line
        await release_held(uow, await uow.lines.get(invoice.year, ADMINISTRATION))
    await uow.commit()
    applied = invoice.paid - before
    return invoice, applied, amount - applied


async def credit_invoice(uow: FinanceUnitOfWork, invoice_id: UUID, amount: Decimal, reason: str, issued_on: date) -> Invoice:
    """Cancel (part of) an invoice with a credit note; what was paid beyond the new net becomes credit."""
    invoice = await uow.invoices.get(invoice_id, lock=True)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    if amount > invoice.creditable():
        raise Conflict(f"invoice {invoice_id} has {invoice.creditable():.2f} EUR left to credit, not {amount:.2f}")
    taken_back = max(invoice.paid - (invoice.net - amount), ZERO)
    if invoice.kind == "contribution" and taken_back:
        line = await uow.lines.get(invoice.year, ADMINISTRATION)
        if taken_back > line.headroom:
            raise Conflict(
                f"the credit note would take back {taken_back:.2f} EUR of contributions received for {invoice.year}, "
                f"but the administration line has only {line.headroom:.2f} EUR headroom: release a commitment first"
            )
    await record(
        uow,
        CreditNoteIssued(
            credit_note_id=uuid4(), invoice_id=invoice_id, city_id=invoice.city_id, amount=amount, reason=reason, issued_on=issued_on
        ),
    )
    await uow.commit()
    return invoice


# --- budget and claims --------------------------------------------------------------------


async def decide(uow: FinanceUnitOfWork, claim_id: UUID, amount: Decimal, line_name: str, year: int) -> None:
    """Commit a CoE-funded amount in full when the line's headroom covers it, else hold it (never part-fund)."""
    if amount == 0:  # nothing for the CoE to fund: approved, nothing committed
        await record(uow, ReimbursementApproved(claim_id=claim_id, amount=amount, budget_line=line_name, year=year))
        return
    line = await uow.lines.get(year, line_name)
    if reason := line.hold_reason(amount):
        await record(uow, ReimbursementHeld(claim_id=claim_id, amount=amount, budget_line=line_name, year=year, reason=reason))
    else:
        await record(uow, ReimbursementApproved(claim_id=claim_id, amount=amount, budget_line=line_name, year=year))


async def on_travel_claimed(event: TravelClaimed, uow: FinanceUnitOfWork) -> None:
    if await uow.claims.get(event.claim_id) is not None:
        return  # a claim is decided once, whatever travel re-publishes
    await consumed(uow, event)
    await decide(uow, event.claim_id, event.coe_funded, event.budget_line, event.event_year)


async def on_expert_visit_claimed(event: ExpertVisitClaimed, uow: FinanceUnitOfWork) -> None:
    if await uow.claims.get(event.claim_id) is not None:
        return  # decided and invoiced once
    await consumed(uow, event)
    await decide(uow, event.claim_id, event.coe_funded, "expert_visits", event.visit_date.year)
    if event.recharged > 0:  # a non-European city bears its expert visit: finance invoices it
        invoice = Invoice.new(event.city_id, "expert_visit_recharge", event.visit_date.year, event.recharged, today())
        uow.invoices.fresh(invoice.id)
        await record(uow, invoice.issued())


async def release_held(uow: FinanceUnitOfWork, line: BudgetLine) -> int:
    """Headroom grew: approve the held claims in the order they were held, up to the first that does
    not fit (no overtaking, so a large claim is never starved by smaller ones behind it)."""
    released = 0
    if not line.held:
        return released
    for claim in await uow.claims.held_on(line.year, line.line):
        if not line.covers(claim.amount):
            break
        await record(uow, ReimbursementApproved(claim_id=claim.claim_id, amount=claim.amount, budget_line=line.line, year=line.year))
        released += 1
    return released


async def set_budget(uow: FinanceUnitOfWork, year: int, allocations: dict[str, Decimal]) -> list[BudgetLine]:
    lines = await uow.lines.year(year)
    for line in lines:
        if line.line in COE_LINES and allocations[line.line] < line.committed + line.spent:
            raise Conflict(
                f"{line.line} {year}: allocation {allocations[line.line]:.2f} EUR is below what is already committed "
                f"and spent ({line.committed + line.spent:.2f} EUR)"
            )
    await record(uow, BudgetSet(year=year, **{line: allocations[line] for line in LINES}))
    for line in lines:
        await release_held(uow, line)
    await uow.commit()
    return lines


async def record_spending(
    uow: FinanceUnitOfWork, year: int, line_name: str, kind: str, amount: Decimal, reference: str, on: date
) -> UUID:
    """Other spending against a line, as a commitment or as spent: only within the line's headroom."""
    line = await uow.lines.get(year, line_name)
    if not line.is_set:
        raise Conflict(f"no budget set for {year} yet: set it with PUT /budgets/{year} first")
    if amount > line.headroom:  # headroom never goes below zero
        raise Conflict(f"{line_name} {year} headroom {line.headroom:.2f} EUR does not cover {amount:.2f} EUR")
    spending_id = uuid4()
    committed, spent = (amount, ZERO) if kind == "commitment" else (ZERO, amount)
    await record(
        uow,
        SpendingRecorded(
            spending_id=spending_id, year=year, budget_line=line_name, kind=kind, committed=committed, spent=spent,
            reference=reference, recorded_on=on,
        ),
    )
    await uow.commit()
    return spending_id


async def settle_spending(uow: FinanceUnitOfWork, spending_id: UUID, spent: Decimal, on: date) -> None:
    """A commitment is settled: `spent` moves from committed to spent, the rest is released."""
    entry = await uow.spendings.get(spending_id)
    if entry is None:
        raise NotFound(f"no spending {spending_id}")
    line = await uow.lines.get(entry.year, entry.budget_line)  # lock first, then read the entry as it is now
    await uow.session.refresh(entry)
    if entry.kind != "commitment" or entry.open == 0:
        raise Conflict(f"spending {spending_id} has no open commitment to settle")
    if spent > entry.open:
        raise Conflict(f"spending {spending_id}: {spent:.2f} EUR is more than the {entry.open:.2f} EUR committed")
    await record(
        uow,
        SpendingRecorded(
            spending_id=spending_id, year=entry.year, budget_line=entry.budget_line, kind="settled", committed=-entry.open,
            spent=spent, reference=entry.reference, recorded_on=on,
        ),
    )
    await release_held(uow, line)
    await uow.commit()


async def _claim_on_locked_line(uow: FinanceUnitOfWork, claim_id: UUID):
    claim = await uow.claims.get(claim_id)
    if claim is None:
        raise NotFound(f"no claim {claim_id}")
    line = None
    if claim.year is not None and claim.budget_line:
        line = await uow.lines.get(claim.year, claim.budget_line)  # claims change only under their line's lock
        await uow.session.refresh(claim)
    return claim, line


async def pay_claim(uow: FinanceUnitOfWork, claim_id: UUID, paid_on: date, amount: Decimal | None) -> None:
    """An approved claim is paid: its commitment becomes spent (a smaller payment releases the rest)."""
    claim, line = await _claim_on_locked_line(uow, claim_id)
    if claim.status != "approved":
        raise Conflict(f"claim {claim_id} is {claim.status}: only an approved claim can be paid")
    amount = claim.amount if amount is None else amount
    if amount > claim.amount:
        raise Conflict(f"claim {claim_id}: {amount:.2f} EUR is more than the {claim.amount:.2f} EUR approved")
    await record(uow, ReimbursementPaid(claim_id=claim_id, amount=amount, paid_on=paid_on))
    if line is not None:
        await release_held(uow, line)
    await uow.commit()


async def reject_claim(uow: FinanceUnitOfWork, claim_id: UUID, reason: str) -> None:
    """A held (or approved, unpaid) claim is rejected: it leaves the queue or releases its commitment."""
    claim, line = await _claim_on_locked_line(uow, claim_id)
    if claim.status not in ("held", "approved"):
        raise Conflict(f"claim {claim_id} is {claim.status}: only a held or approved claim can be rejected")
    await record(uow, ReimbursementRejected(claim_id=claim_id, reason=reason))
    if line is not None:
        await release_held(uow, line)
    await uow.commit()


HANDLERS = {
    CityJoined: on_city_joined,
    CityLeft: on_city_left,
    TravelClaimed: on_travel_claimed,
    ExpertVisitClaimed: on_expert_visit_claimed,
}
