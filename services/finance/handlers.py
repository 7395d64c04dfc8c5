"""Finance handlers: plain functions for the events finance consumes and the commands its API takes.

Each loads what it needs (locking the rows a rule counts on), asks the domain, which refuses or
returns the fact it allows, and `record`s that fact: emitted through the outbox and applied to
the figures (projections.py) in the same transaction. Event handlers run inside the consumer's
batch transaction and never commit; commands own their transaction.

Rows are locked in one order everywhere: invoices (by id), then credits, then budget lines."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from contracts.envelope import Envelope
from contracts.events import (
    BudgetThresholdCrossed, CityJoined, CityLeft, ContributionRunCompleted, CreditNoteIssued, Event, ExpertVisitClaimed,
    JoinDateCorrected, TravelClaimAmended, TravelClaimed,
)
from services.common.db import utcnow
from services.common.fields import today
from services.common.refusals import Conflict, NotFound, NotYetKnown
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import (
    ADMINISTRATION, CREDIT_NOTE_SERIES, INVOICE_SERIES, BudgetLine, Claim, Invoice, Member, Payment, Spending, budget,
)
from services.finance.projections import Fact, project

RUN_ATTEMPTS = 3  # a concurrent run that invoiced the same cities first makes ours retry, then find them invoiced


async def record(uow: FinanceUnitOfWork, event: Event) -> Envelope:
    """Emit a fact finance decided and apply it to the figures, in the same transaction; then tell
    the budget thresholds it made a line reach."""
    if isinstance(event, CreditNoteIssued) and event.number is None:
        event = event.model_copy(update={"number": await uow.numbers.take(CREDIT_NOTE_SERIES, event.issued_on.year)})
    envelope = uow.emit(event)
    await project(uow, event, Fact(envelope.ce_id, envelope.occurred_at, envelope.ce_correlationid))
    if not isinstance(event, BudgetThresholdCrossed):  # those are told here, in order: never again from within
        for line in uow.lines.loaded():  # the lines a fact changes are locked (and so loaded) by then
            for crossed in line.thresholds_crossed(today()):
                await record(uow, crossed)
    return envelope


async def issue(uow: FinanceUnitOfWork, invoice: Invoice) -> None:
    """Give a new invoice its legal number, in the transaction that issues it (a rollback gives it back)."""
    invoice.number = await uow.numbers.take(INVOICE_SERIES, invoice.issued_on.year)
    uow.invoices.issuing(invoice)
    await record(uow, invoice.issued())


async def consumed(uow: FinanceUnitOfWork, event: Event) -> None:
    cause = uow.cause  # the envelope being applied: figures trace back to its id
    await project(uow, event, Fact(cause.ce_id, cause.occurred_at, cause.ce_correlationid) if cause
                  else Fact(None, utcnow(), None))


async def _invoice(uow: FinanceUnitOfWork, invoice_id: UUID) -> Invoice:
    """The invoice, locked: payments, credit notes and corrections on one invoice take turns."""
    if (invoice := await uow.invoices.get(invoice_id, lock=True)) is None:
        raise NotFound(f"no invoice {invoice_id}", code="no_invoice")
    return invoice


async def _administration(uow: FinanceUnitOfWork, invoice: Invoice) -> BudgetLine | None:
    """The administration line an invoice's money funds (contributions only), locked."""
    return await uow.lines.get(invoice.year, ADMINISTRATION) if invoice.funds_administration else None


async def _release_administration(uow: FinanceUnitOfWork, *invoices: Invoice) -> None:
    for line in {(i.year, ADMINISTRATION) for i in invoices if i.funds_administration}:
        await release_held(uow, await uow.lines.get(*line))


async def _commit_invoices(uow: FinanceUnitOfWork) -> None:
    try:
        await uow.commit()
    except IntegrityError:  # one contribution per city and year: a run or a join got there first
        raise Conflict("the city has just been invoiced for that year by another request; look again",
                       code="already_invoiced") from None


# --- contributions ------------------------------------------------------------------------


async def invoice_contributions(uow: FinanceUnitOfWork, member: Member, years: list[int], issued_on: date) -> list[Invoice]:
    """Invoice the member for each of `years` it has no live contribution for yet (replays change nothing)."""
    issued = []
    for year in years:
        if invoice := member.contribution(year, await uow.invoices.contributions_of(member.city_id), issued_on):
            await issue(uow, invoice)
            issued.append(invoice)
    return issued


async def cancel_contributions_not_owed(uow: FinanceUnitOfWork, member: Member, on: date, reason: str) -> None:
    """Credit notes for the contributions the member no longer owes (its join date was corrected)."""
    for invoice in member.contributions_not_owed(await uow.invoices.contributions_of(member.city_id)):
        invoice = await _invoice(uow, invoice.id)
        await uow.credits.of(invoice.city_id)
        if note := invoice.cancellation(reason, on, await _administration(uow, invoice)):
            await record(uow, note)


async def on_city_joined(event: CityJoined, uow: FinanceUnitOfWork) -> None:
    await consumed(uow, event)
    member = await uow.members.get(event.city_id)
    await invoice_contributions(uow, member, member.contributions_due(await uow.runs.years()), today())


async def on_join_date_corrected(event: JoinDateCorrected, uow: FinanceUnitOfWork) -> None:
    await consumed(uow, event)
    if (member := await uow.members.get(event.city_id)) is None:
        return  # finance never learnt that it joined: there is nothing to re-derive
    why = f"join date corrected from {event.previous_joined_on} to {event.joined_on}: {event.reason}"
    await cancel_contributions_not_owed(uow, member, today(), why)
    await invoice_contributions(uow, member, member.contributions_due(await uow.runs.years()), today())


async def on_city_left(event: CityLeft, uow: FinanceUnitOfWork) -> None:
    # Invoices already issued stay due; the rules stop invoicing years it is not a member on 1 January.
    await consumed(uow, event)


async def run_contributions(uow: FinanceUnitOfWork, year: int, issued_on: date) -> tuple[list[Invoice], int]:
    """The annual run: record it, and invoice every member that owes `year` and has no contribution
    for it yet. Returns the invoices issued and how many members were already invoiced."""
    for attempt in range(RUN_ATTEMPTS):
        try:
            async with uow:
                await uow.runs.start()
                if year not in await uow.runs.years():
                    await record(uow, ContributionRunCompleted(year=year, run_on=issued_on))
                members = [m for m in await uow.members.all() if m.owes_contribution_for(year)]
                await uow.invoices.preload_contributions({m.city_id for m in members})
                issued = [invoice for m in members for invoice in await invoice_contributions(uow, m, [year], issued_on)]
                await uow.commit()
                return issued, len(members) - len(issued)
        except IntegrityError:
            # A concurrent run or join invoiced some of the same cities (or recorded the run) first.
            if attempt == RUN_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def invoice_by_hand(uow: FinanceUnitOfWork, city_id: UUID, year: int, reason: str, issued_on: date) -> Invoice:
    """A manual contribution invoice, for a year the rules did not bill."""
    if (member := await uow.members.get(city_id)) is None:
        raise NotYetKnown(f"finance has not learnt that city {city_id} joined (yet): it invoices members only",
                          code="unknown_member", field="city_id")
    invoice = member.manual_contribution(year, reason, issued_on, await uow.invoices.contributions_of(city_id))
    await issue(uow, invoice)
    await _commit_invoices(uow)
    return invoice


# --- payments and credit ------------------------------------------------------------------


async def pay_invoice(uow: FinanceUnitOfWork, invoice_id: UUID, amount: Decimal, paid_on: date, reference: str) -> tuple[Invoice, Payment]:
    invoice = await _invoice(uow, invoice_id)
    envelope = await record(uow, invoice.payment(amount, paid_on, reference, await uow.payments.of_invoice(invoice_id)))
    await _release_administration(uow, invoice)
    await uow.commit()
    return invoice, await uow.payments.get(envelope.id)


async def credit_invoice(uow: FinanceUnitOfWork, invoice_id: UUID, amount: Decimal, reason: str, issued_on: date) -> Invoice:
    """Cancel (part of) an invoice with a credit note; what was paid beyond the new net becomes credit."""
    invoice = await _invoice(uow, invoice_id)
    await uow.credits.of(invoice.city_id)
    await record(uow, invoice.credit_note(amount, reason, issued_on, await _administration(uow, invoice)))
    await uow.commit()
    return invoice


async def _payment(uow: FinanceUnitOfWork, payment_id: UUID) -> Payment:
    if (payment := await uow.payments.get(payment_id)) is None:
        raise NotFound(f"no payment {payment_id}", code="no_payment")
    return payment


async def reverse_payment(uow: FinanceUnitOfWork, payment_id: UUID, reason: str, on: date) -> Invoice:
    """Take back a payment recorded by mistake (a bounced transfer), with a reason."""
    payment = await _payment(uow, payment_id)
    invoice = await _invoice(uow, payment.invoice_id)
    await uow.session.refresh(payment)  # as it is now that its invoice is locked
    credit = await uow.credits.of(payment.city_id)
    await record(uow, payment.reversal(invoice, credit, reason, on, await _administration(uow, invoice)))
    await uow.commit()
    return invoice


async def reallocate_payment(uow: FinanceUnitOfWork, payment_id: UUID, invoice_id: UUID, reason: str, on: date) -> tuple[Invoice, Payment]:
    """A payment recorded on the wrong invoice: reversed there and recorded on the right one, at once."""
    payment = await _payment(uow, payment_id)
    locked = {i: await _invoice(uow, i) for i in sorted({payment.invoice_id, invoice_id})}
    source, target = locked[payment.invoice_id], locked[invoice_id]
    await uow.session.refresh(payment)
    moved = payment.moved_to(target, await uow.payments.of_invoice(target.id))
    await uow.credits.lock({source.city_id, target.city_id})
    await uow.lines.lock({(i.year, ADMINISTRATION) for i in (source, target) if i.funds_administration})
    credit = await uow.credits.of(payment.city_id)
    await record(uow, payment.reversal(source, credit, reason, on, await _administration(uow, source)))
    envelope = await record(uow, moved)
    await _release_administration(uow, source, target)
    await uow.commit()
    return target, await uow.payments.get(envelope.id)


async def apply_credit(uow: FinanceUnitOfWork, invoice_id: UUID, amount: Decimal | None, on: date) -> Invoice:
    """Pay (part of) an invoice out of its city's credit."""
    invoice = await _invoice(uow, invoice_id)
    credit = await uow.credits.of(invoice.city_id)
    await record(uow, credit.application(invoice, amount, on))
    await _release_administration(uow, invoice)
    await uow.commit()
    return invoice


async def refund_credit(uow: FinanceUnitOfWork, city_id: UUID, amount: Decimal | None, reference: str, on: date) -> Decimal:
    """Pay (part of) a city's credit back to it; returns the credit left."""
    credit = await uow.credits.of(city_id)
    await record(uow, credit.refund(amount, reference, on))
    await uow.commit()
    return credit.balance


# --- budget and claims --------------------------------------------------------------------


async def decide(uow: FinanceUnitOfWork, claim_id: UUID, amount: Decimal, line_name: str, year: int) -> None:
    await record(uow, (await uow.lines.get(year, line_name)).decision(claim_id, amount))


async def on_travel_claimed(event: TravelClaimed, uow: FinanceUnitOfWork) -> None:
    if await uow.claims.get(event.claim_id) is not None:
        return  # a claim is decided once, whatever travel re-publishes
    await consumed(uow, event)
    await decide(uow, event.claim_id, event.coe_funded, event.budget_line, event.event_year)


async def on_travel_claim_amended(event: TravelClaimAmended, uow: FinanceUnitOfWork) -> None:
    """Re-decide the claim as if it arrived now: release what it holds, then commit or hold the new amount."""
    if (claim := await uow.claims.get(event.claim_id)) is None:
        raise NotFound(f"claim {event.claim_id} is amended, but finance never received it", code="no_claim")
    await consumed(uow, event)
    if (reopened := claim.reopening(event)) is None:
        return  # it crossed a payment or a rejection: finance's decision stands
    await record(uow, reopened)
    await decide(uow, event.claim_id, event.coe_funded, event.budget_line, event.event_year)
    for year, line in {(reopened.year, reopened.budget_line), (event.event_year, event.budget_line)}:
        await release_held(uow, await uow.lines.get(year, line))


async def on_expert_visit_claimed(event: ExpertVisitClaimed, uow: FinanceUnitOfWork) -> None:
    if await uow.claims.get(event.claim_id) is not None:
        return  # decided and invoiced once
    await consumed(uow, event)
    await decide(uow, event.claim_id, event.coe_funded, "expert_visits", event.visit_date.year)
    if event.recharged > 0:  # a non-European city bears its expert visit: finance invoices it
        invoice = Invoice.new(event.city_id, "expert_visit_recharge", event.visit_date.year, event.recharged, today())
        await issue(uow, invoice)


async def release_held(uow: FinanceUnitOfWork, line: BudgetLine) -> None:
    """Headroom grew: approve the held claims in the order they were held, up to the first that does
    not fit (no overtaking, so a large claim is never starved by smaller ones behind it)."""
    if not line.held:
        return
    for claim in await uow.claims.held_on(line.year, line.line):
        if (approved := line.release(claim)) is None:
            break
        await record(uow, approved)


async def set_budget(uow: FinanceUnitOfWork, year: int, allocations: dict[str, Decimal]) -> list[BudgetLine]:
    lines = await uow.lines.year(year)
    await record(uow, budget(year, lines, allocations))
    for line in lines:
        await release_held(uow, line)
    await uow.commit()
    return lines


async def record_spending(
    uow: FinanceUnitOfWork, year: int, line_name: str, kind: str, amount: Decimal, reference: str, on: date
) -> UUID:
    """Other spending against a line, as a commitment or as spent."""
    event = (await uow.lines.get(year, line_name)).spending(kind, amount, reference, on)
    await record(uow, event)
    await uow.commit()
    return event.spending_id


async def _spending_on_locked_line(uow: FinanceUnitOfWork, spending_id: UUID) -> tuple[Spending, BudgetLine]:
    if (entry := await uow.spendings.get(spending_id)) is None:
        raise NotFound(f"no spending {spending_id}", code="no_spending")
    line = await uow.lines.get(entry.year, entry.budget_line)  # lock first, then read the entry as it is now
    await uow.session.refresh(entry)
    return entry, line


async def settle_spending(uow: FinanceUnitOfWork, spending_id: UUID, spent: Decimal, on: date) -> Spending:
    entry, line = await _spending_on_locked_line(uow, spending_id)
    await record(uow, entry.settlement(spent, on))
    await release_held(uow, line)
    await uow.commit()
    return entry


async def reverse_spending(uow: FinanceUnitOfWork, spending_id: UUID, reason: str, on: date) -> Spending:
    """A mistaken entry gives its headroom back; held claims that now fit are released."""
    entry, line = await _spending_on_locked_line(uow, spending_id)
    await record(uow, entry.reversal(reason, on))
    await release_held(uow, line)
    await uow.commit()
    return entry


async def _claim_on_locked_line(uow: FinanceUnitOfWork, claim_id: UUID) -> tuple[Claim, BudgetLine | None]:
    if (claim := await uow.claims.get(claim_id)) is None:
        raise NotFound(f"no claim {claim_id}", code="no_claim")
    line = None
    if claim.year is not None and claim.budget_line:
        line = await uow.lines.get(claim.year, claim.budget_line)  # claims change only under their line's lock
        await uow.session.refresh(claim)
    return claim, line


async def pay_claim(uow: FinanceUnitOfWork, claim_id: UUID, paid_on: date, amount: Decimal | None) -> Claim:
    claim, line = await _claim_on_locked_line(uow, claim_id)
    await record(uow, claim.payment(paid_on, amount))
    if line is not None:
        await release_held(uow, line)
    await uow.commit()
    return claim


async def reject_claim(uow: FinanceUnitOfWork, claim_id: UUID, reason: str) -> Claim:
    claim, line = await _claim_on_locked_line(uow, claim_id)
    await record(uow, claim.rejection(reason))
    if line is not None:
        await release_held(uow, line)
    await uow.commit()
    return claim


HANDLERS = {
    CityJoined: on_city_joined,
    JoinDateCorrected: on_join_date_corrected,
    CityLeft: on_city_left,
    TravelClaimed: on_travel_claimed,
    TravelClaimAmended: on_travel_claim_amended,
    ExpertVisitClaimed: on_expert_visit_claimed,
}
