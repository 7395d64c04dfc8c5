"""Finance HTTP API: parse, call a handler or a report, answer. Models are in schemas.py."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from contracts.events import BudgetLine as LineName
from services.common.api import Limit, Offset, today
from services.common import documents
from services.common.auth import Principal, require, still_signed_in
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.finance import handlers, papers, reports
from services.finance.db import FinanceUnitOfWork
from services.finance.schemas import (
    YEARS, Account, BudgetIn, ClaimPaymentIn, ClaimStatus, ClaimView, ContributionRunIn, ContributionRunOut,
    CreditApplicationIn, CreditNoteIn, CreditNoteView, CreditView, InvoiceKind, InvoiceView, ManualInvoiceIn, PaymentIn, PaymentOut,
    PaymentView, ReallocationIn, RefundIn, RejectionIn, ReversalIn, SettlementIn, SpendingIn, SpendingView, YearPath,
    YearQuery,
)

router = APIRouter()
UoW = Annotated[FinanceUnitOfWork, Depends(get_unit_of_work)]

# Finance acts; the auditor reads; a city's coordinator reads their city's invoices and credit.
ACT = require("finance")
READ = require("finance", "auditor")
InvoiceReader = Annotated[Principal, require("finance", "auditor", "city_coordinator")]


def _invoice_in_scope(invoice, invoice_id: UUID, principal: Principal) -> None:
    if invoice is None or not principal.scope().covers(city_id=invoice.city_id):
        raise NotFound(f"no invoice {invoice_id}", code="no_invoice")


# --- invoices and payments ----------------------------------------------------------------


@router.get("/invoices", summary="Invoices, by city and year", tags=["invoices"])
async def list_invoices(
    uow: UoW, principal: InvoiceReader, city_id: UUID | None = None, year: YearQuery = None, limit: Limit = 100,
    offset: Offset = 0,
) -> list[InvoiceView]:
    """A city coordinator gets their city's."""
    async with uow:
        on = today()
        found = await uow.invoices.find(city_id, year, limit, offset, principal.scope().cities)
        return [InvoiceView.of(invoice, on) for invoice in found]


@router.post("/invoices", status_code=201, summary="Invoice a contribution by hand, for a year the rules did not bill",
             tags=["invoices"], dependencies=[ACT])
async def invoice_by_hand(body: ManualInvoiceIn, uow: UoW) -> InvoiceView:
    """At most one contribution per city and year (one cancelled in full no longer counts); the city
    must have been a member at some time in the year. 409 retryable while finance has not learnt
    that the city joined."""
    async with uow:
        invoice = await handlers.invoice_by_hand(uow, body.city_id, body.year, body.reason, today())
        return InvoiceView.of(invoice, today())


# --- documents (PDF) -------------------------------------------------------------------------
# Registered before /invoices/{invoice_id}: that route would take "….pdf" as an invoice id.

Lang = Annotated[Literal["en", "fr"], Query(description="the document's language")]
PDF = {"content": {"application/pdf": {}}, "description": "the PDF"}


def _pdf(body: bytes, name: str) -> Response:
    return Response(body, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


@router.get("/invoices/{invoice_id}.pdf", summary="An invoice as PDF", tags=["documents"], response_class=Response,
            responses={200: PDF})
async def invoice_pdf(invoice_id: UUID, request: Request, uow: UoW, principal: InvoiceReader, lang: Lang = "en") -> Response:
    async with uow:
        _invoice_in_scope(invoice := await uow.invoices.get(invoice_id), invoice_id, principal)
        doc = await papers.invoice_document(uow, invoice, request.app.state.runtime.settings.bank)
    return _pdf(documents.invoice_pdf(doc, lang), doc.number)


@router.get("/invoices/{invoice_id}/credit-notes", summary="An invoice's credit notes", tags=["invoices"])
async def list_credit_notes(invoice_id: UUID, uow: UoW, principal: InvoiceReader) -> list[CreditNoteView]:
    async with uow:
        _invoice_in_scope(await uow.invoices.get(invoice_id), invoice_id, principal)
        return [CreditNoteView(**note) for note in await papers.credit_notes_of(uow, invoice_id)]


@router.get("/credit-notes/{credit_note_id}.pdf", summary="A credit note as PDF", tags=["documents"], response_class=Response,
            responses={200: PDF})
async def credit_note_pdf(credit_note_id: UUID, request: Request, uow: UoW, principal: InvoiceReader, lang: Lang = "en") -> Response:
    async with uow:
        note = await papers.credit_note(uow, credit_note_id)
        invoice = await uow.invoices.get(note["invoice_id"]) if note else None
        if invoice is None or not principal.scope().covers(city_id=invoice.city_id):
            raise NotFound(f"no credit note {credit_note_id}", code="no_credit_note")
        doc = await papers.credit_note_document(uow, note, invoice)
    return _pdf(documents.credit_note_pdf(doc, lang), doc.number)


@router.get("/statements/{city_id}.pdf", summary="A city's statement of account as PDF: invoices, credit notes, payments, balance",
            tags=["documents"], response_class=Response, responses={200: PDF})
async def statement_pdf(city_id: UUID, request: Request, uow: UoW, principal: InvoiceReader, year: YearQuery = None,
                        lang: Lang = "en") -> Response:
    """`year`: the contribution year of the invoices it lists (default: every year)."""
    if not principal.scope().covers(city_id=city_id):
        raise NotFound(f"no city {city_id}", code="no_city")
    async with uow:
        if await uow.members.get(city_id) is None:
            raise NotFound(f"no city {city_id}", code="no_city")
        doc = await papers.statement_document(uow, city_id, year, today(), request.app.state.runtime.settings.bank)
    return _pdf(documents.statement_pdf(doc, lang), f"statement-{city_id}" + (f"-{year}" if year else ""))


@router.get("/invoices/{invoice_id}", summary="One invoice", tags=["invoices"])
async def get_invoice(invoice_id: UUID, uow: UoW, principal: InvoiceReader) -> InvoiceView:
    async with uow:
        _invoice_in_scope(invoice := await uow.invoices.get(invoice_id), invoice_id, principal)
        return InvoiceView.of(invoice, today())


@router.post("/invoices/{invoice_id}/payments", status_code=201, summary="Record a payment (partial, full or over)", tags=["invoices"], dependencies=[ACT])
async def pay(invoice_id: UUID, body: PaymentIn, uow: UoW) -> PaymentOut:
    async with uow:
        invoice, payment = await handlers.pay_invoice(uow, invoice_id, body.amount, body.paid_on, body.reference)
        return PaymentOut.of(invoice, payment, today())


@router.get("/invoices/{invoice_id}/payments", summary="The payments recorded on an invoice, reversed ones too", tags=["invoices"])
async def list_payments(invoice_id: UUID, uow: UoW, principal: InvoiceReader) -> list[PaymentView]:
    async with uow:
        _invoice_in_scope(await uow.invoices.get(invoice_id), invoice_id, principal)
        return [PaymentView.of(payment) for payment in await uow.payments.of_invoice(invoice_id)]


@router.post("/payments/{payment_id}/reversal", summary="Reverse a payment recorded by mistake (a bounced transfer)",
             tags=["invoices"], dependencies=[ACT])
async def reverse_payment(payment_id: UUID, body: ReversalIn, uow: UoW) -> InvoiceView:
    """Taken back first from what the invoice shows paid, the rest from the city's credit; the
    payment stays on record, marked reversed (`PaymentReversed`)."""
    async with uow:
        invoice = await handlers.reverse_payment(uow, payment_id, body.reason, body.reversed_on or today())
        return InvoiceView.of(invoice, today())


@router.post("/payments/{payment_id}/reallocation", summary="Move a payment recorded on the wrong invoice to the right one",
             tags=["invoices"], dependencies=[ACT])
async def reallocate_payment(payment_id: UUID, body: ReallocationIn, uow: UoW) -> PaymentOut:
    """Reversed where it was recorded and recorded again (same amount, date and reference) on
    `invoice_id`, in one transaction: `PaymentReversed`, then `PaymentReceived`."""
    async with uow:
        invoice, payment = await handlers.reallocate_payment(uow, payment_id, body.invoice_id, body.reason,
                                                             body.reversed_on or today())
        return PaymentOut.of(invoice, payment, today())


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201, summary="Cancel (part of) an invoice", tags=["invoices"], dependencies=[ACT])
async def credit_note(invoice_id: UUID, body: CreditNoteIn, uow: UoW) -> InvoiceView:
    async with uow:
        invoice = await handlers.credit_invoice(uow, invoice_id, body.amount, body.reason, body.issued_on or today())
        return InvoiceView.of(invoice, today())


@router.post("/invoices/{invoice_id}/credit-applications", status_code=201, summary="Pay an invoice out of its city's credit",
             tags=["invoices"], dependencies=[ACT])
async def apply_credit(invoice_id: UUID, body: CreditApplicationIn, uow: UoW) -> InvoiceView:
    async with uow:
        invoice = await handlers.apply_credit(uow, invoice_id, body.amount, body.applied_on or today())
        return InvoiceView.of(invoice, today())


@router.post("/contribution-runs", summary="Invoice every member for a year (idempotent)", tags=["invoices"], dependencies=[ACT])
async def contribution_run(body: ContributionRunIn, uow: UoW) -> ContributionRunOut:
    """Recorded (`ContributionRunCompleted`, the first time): a city whose joining reaches finance
    later is invoiced for this year too."""
    issued, already = await handlers.run_contributions(uow, body.year, today())
    return ContributionRunOut(year=body.year, issued=len(issued), already_invoiced=already, invoices=[i.id for i in issued])


@router.get("/credits", summary="Each city's credit: what it paid beyond its invoices", tags=["invoices"])
async def credits(uow: UoW, principal: InvoiceReader) -> list[dict[str, Any]]:
    """A city coordinator gets their city's line only."""
    cities = principal.scope().cities
    async with uow:
        return [c for c in await reports.credits(uow.session) if cities is None or UUID(c["city_id"]) in cities]


@router.post("/credits/{city_id}/refunds", status_code=201, summary="Pay (part of) a city's credit back to it", tags=["invoices"], dependencies=[ACT])
async def refund_credit(city_id: UUID, body: RefundIn, uow: UoW) -> CreditView:
    async with uow:
        left = await handlers.refund_credit(uow, city_id, body.amount, body.reference, body.refunded_on or today())
        return CreditView(city_id=city_id, credit=left)


# --- budget -------------------------------------------------------------------------------


@router.put("/budgets/{year}", summary="Set a year's allocations per line (held claims are released if they now fit)", tags=["budget"], dependencies=[ACT])
async def set_budget(year: YearPath, body: BudgetIn, uow: UoW) -> dict[str, Any]:
    async with uow:
        await handlers.set_budget(uow, year, body.lines.model_dump())
    async with uow:
        return await reports.budget(uow.session, year)


@router.get("/budgets/{year}", summary="Per line: allocation, available, committed, spent, headroom", tags=["budget"], dependencies=[READ])
async def get_budget(year: YearPath, uow: UoW) -> dict[str, Any]:
    async with uow:
        return await reports.budget(uow.session, year)


@router.post("/budgets/{year}/spending", status_code=201, summary="Record other spending against a line", tags=["budget"], dependencies=[ACT])
async def record_spending(year: YearPath, body: SpendingIn, uow: UoW) -> SpendingView:
    async with uow:
        spending_id = await handlers.record_spending(
            uow, year, body.budget_line, body.kind, body.amount, body.reference, body.recorded_on or today()
        )
    async with uow:
        return SpendingView.of(await uow.spendings.get(spending_id))


@router.get("/budgets/{year}/spending", summary="Other spending recorded against the year's lines", tags=["budget"], dependencies=[READ])
async def list_spending(year: YearPath, uow: UoW) -> list[SpendingView]:
    async with uow:
        return [SpendingView.of(entry) for entry in await uow.spendings.find(year)]


@router.post("/spending/{spending_id}/settlement", summary="Settle a commitment: spent, the rest released", tags=["budget"], dependencies=[ACT])
async def settle(spending_id: UUID, body: SettlementIn, uow: UoW) -> SpendingView:
    async with uow:
        return SpendingView.of(await handlers.settle_spending(uow, spending_id, body.spent, body.settled_on or today()))


@router.post("/spending/{spending_id}/reversal", summary="Reverse a mistaken spending entry: its headroom comes back",
             tags=["budget"], dependencies=[ACT])
async def reverse_spending(spending_id: UUID, body: ReversalIn, uow: UoW) -> SpendingView:
    """What the entry still holds (committed and spent) goes back to the line; held claims that now
    fit are released (`SpendingReversed`)."""
    async with uow:
        return SpendingView.of(await handlers.reverse_spending(uow, spending_id, body.reason, body.reversed_on or today()))


# --- reimbursements -----------------------------------------------------------------------


@router.get("/reimbursements", summary="Claims as finance decided them (held ones first come first served)", tags=["reimbursements"], dependencies=[READ])
async def list_claims(
    uow: UoW, status: ClaimStatus | None = None, year: YearQuery = None, budget_line: LineName | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[ClaimView]:
    async with uow:
        return [ClaimView.of(c) for c in await uow.claims.find(status, year, budget_line, limit, offset)]


@router.get("/reimbursements/{claim_id}", summary="One claim", tags=["reimbursements"], dependencies=[READ])
async def get_claim(claim_id: UUID, uow: UoW) -> ClaimView:
    async with uow:
        if (claim := await uow.claims.get(claim_id)) is None:
            raise NotFound(f"no claim {claim_id}", code="no_claim")
        return ClaimView.of(claim)


@router.post("/reimbursements/{claim_id}/payment", summary="Mark an approved claim paid: committed becomes spent", tags=["reimbursements"], dependencies=[ACT])
async def pay_claim(claim_id: UUID, body: ClaimPaymentIn, uow: UoW) -> ClaimView:
    """A claim with nothing CoE-funded (0.00) has nothing to pay (409)."""
    async with uow:
        return ClaimView.of(await handlers.pay_claim(uow, claim_id, body.paid_on, body.amount))


@router.post("/reimbursements/{claim_id}/rejection", summary="Reject a held (or approved, unpaid) claim", tags=["reimbursements"], dependencies=[ACT])
async def reject_claim(claim_id: UUID, body: RejectionIn, uow: UoW) -> ClaimView:
    async with uow:
        return ClaimView.of(await handlers.reject_claim(uow, claim_id, body.reason))


# --- reconciliation -----------------------------------------------------------------------


AsOf = Annotated[date | None, Query(description="age and overdue status as of this day (default today)")]


@router.get("/reconciliation/{year}.csv", summary="The reconciliation as CSV", tags=["reconciliation"], response_class=PlainTextResponse, dependencies=[READ])
async def reconciliation_csv(year: YearPath, uow: UoW, on: AsOf = None) -> PlainTextResponse:
    async with uow:
        report = await reports.reconciliation(uow.session, year, on or today())
    return PlainTextResponse(
        reports.reconciliation_csv(report),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="reconciliation-{year}.csv"'},
    )


@router.get("/reconciliation/{year}", summary="Contributions invoiced/received/outstanding per city, against the budget", tags=["reconciliation"], dependencies=[READ])
async def reconciliation(year: YearPath, uow: UoW, on: AsOf = None) -> dict[str, Any]:
    async with uow:
        return await reports.reconciliation(uow.session, year, on or today())


@router.get("/reconciliation/{year}/trace", summary="The events a figure is the sum of", tags=["reconciliation"], dependencies=[READ])
async def trace(
    year: YearPath, account: Account, uow: UoW, budget_line: LineName | None = None, city_id: UUID | None = None,
    invoice_kind: InvoiceKind | None = None,
) -> dict[str, Any]:
    async with uow:
        return await reports.trace(uow.session, year, account, budget_line=budget_line, city_id=city_id, invoice_kind=invoice_kind)


# --- dashboard data -----------------------------------------------------------------------


SnapshotYear = Annotated[int | None, Query(**YEARS, description="default: the current year")]


@router.get("/dashboard/snapshot", summary="Everything the finance dashboard shows, as JSON", tags=["dashboard"], dependencies=[READ])
async def dashboard_snapshot(uow: UoW, year: SnapshotYear = None) -> dict[str, Any]:
    async with uow:
        return await reports.snapshot(uow.session, year or today().year)


@router.get(
    "/dashboard/stream",
    summary="Server-Sent Events: a snapshot on connect and after every change (finance or auditor: token or signed-in page)",
    tags=["dashboard"],
    # The dashboard page's data: its browser session counts as well as a bearer token.
    dependencies=[require("finance", "auditor", session=True)],
)
async def dashboard_stream(request: Request, year: SnapshotYear = None) -> StreamingResponse:
    runtime, changes = request.app.state.runtime, request.app.state.changes
    ping = runtime.settings.dashboard_ping_seconds
    year = year or today().year

    async def snapshot() -> str:
        async with runtime.unit_of_work() as uow:
            data = await reports.snapshot(uow.session, year)
        return f"event: snapshot\ndata: {json.dumps(data)}\n\n"

    async def events() -> AsyncIterator[str]:
        seen = changes.version
        yield await snapshot()
        while True:
            changed = await changes.wait(seen, timeout=ping)
            if not await still_signed_in(request):
                return  # signed out meanwhile: no more figures (the page reloads into the login)
            if changed:
                seen = changes.version  # read before building: a change during the build triggers another
                yield await snapshot()
            else:
                yield f": ping {datetime.now(UTC).isoformat()}\n\n"  # keeps proxies from closing an idle stream

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
    )

