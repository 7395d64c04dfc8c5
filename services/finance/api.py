"""Finance HTTP API: parse, call a handler or a report, answer."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field

from contracts.events import BudgetLine as LineName
from contracts.money import Money
from services.common.api import Limit, Offset, today
from services.common.auth import require, still_signed_in
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.finance import handlers, reports
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import Claim, Invoice, Spending

router = APIRouter()
UoW = Annotated[FinanceUnitOfWork, Depends(get_unit_of_work)]
Year = Annotated[int, Path(ge=2000, le=2100, description="budget or contribution year")]
InvoiceKind = Literal["contribution", "expert_visit_recharge"]


def _not_in_future(day: date) -> date:
    if day > today():
        raise ValueError(f"{day} is in the future")
    return day


Positive = Annotated[Money, Field(gt=0, description="EUR, more than zero")]
NotNegative = Annotated[Money, Field(ge=0, description="EUR, zero or more")]
PastDate = Annotated[date, AfterValidator(_not_in_future)]
Reference = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


# --- invoices and payments ----------------------------------------------------------------


class InvoiceView(BaseModel):
    id: UUID
    city_id: UUID
    year: int
    kind: InvoiceKind
    amount: Money
    paid: Money
    credited: Money
    outstanding: Money
    status: Literal["issued", "partly_paid", "paid", "overdue", "cancelled"]
    issued_on: date
    due_on: date

    @classmethod
    def of(cls, invoice: Invoice, on: date) -> "InvoiceView":
        return cls(
            id=invoice.id,
            city_id=invoice.city_id,
            year=invoice.year,
            kind=invoice.kind,
            amount=invoice.amount,
            paid=invoice.paid,
            credited=invoice.credited,
            outstanding=max(invoice.outstanding, Decimal("0.00")),
            status=invoice.status(on),
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
        )


@router.get("/invoices", summary="Invoices, by city and year", tags=["invoices"])
async def list_invoices(
    uow: UoW, city_id: UUID | None = None, year: int | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[InvoiceView]:
    async with uow:
        on = today()
        return [InvoiceView.of(invoice, on) for invoice in await uow.invoices.find(city_id, year, limit, offset)]


@router.get("/invoices/{invoice_id}", summary="One invoice", tags=["invoices"])
async def get_invoice(invoice_id: UUID, uow: UoW) -> InvoiceView:
    async with uow:
        if (invoice := await uow.invoices.get(invoice_id)) is None:
            raise NotFound(f"no invoice {invoice_id}")
        return InvoiceView.of(invoice, today())


class PaymentIn(BaseModel):
    amount: Positive
    paid_on: PastDate
    reference: Reference = Field(description="the bank reference; the same one twice on an invoice is refused")


class PaymentOut(BaseModel):
    invoice: InvoiceView
    applied: Money = Field(description="applied to the invoice")
    credit: Money = Field(description="paid beyond the invoice: kept as a credit on the city")


@router.post("/invoices/{invoice_id}/payments", status_code=201, summary="Record a payment (partial, full or over)", tags=["invoices"])
async def pay(invoice_id: UUID, body: PaymentIn, uow: UoW) -> PaymentOut:
    async with uow:
        invoice, applied, credit = await handlers.pay_invoice(uow, invoice_id, body.amount, body.paid_on, body.reference)
        return PaymentOut(invoice=InvoiceView.of(invoice, today()), applied=applied, credit=credit)


class CreditNoteIn(BaseModel):
    amount: Positive
    reason: Reason
    issued_on: PastDate | None = None


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201, summary="Cancel (part of) an invoice", tags=["invoices"])
async def credit_note(invoice_id: UUID, body: CreditNoteIn, uow: UoW) -> InvoiceView:
    async with uow:
        invoice = await handlers.credit_invoice(uow, invoice_id, body.amount, body.reason, body.issued_on or today())
        return InvoiceView.of(invoice, today())


class ContributionRunIn(BaseModel):
    year: int = Field(ge=2000, le=2100)


class ContributionRunOut(BaseModel):
    year: int
    issued: int
    already_invoiced: int
    invoices: list[UUID]


@router.post("/contribution-runs", summary="Invoice every member for a year (idempotent)", tags=["invoices"])
async def contribution_run(body: ContributionRunIn, uow: UoW) -> ContributionRunOut:
    issued, already = await handlers.run_contributions(uow, body.year, today())
    return ContributionRunOut(year=body.year, issued=len(issued), already_invoiced=already, invoices=[i.id for i in issued])


@router.get("/credits", summary="Each city's credit: what it paid beyond its invoices", tags=["invoices"])
async def credits(uow: UoW) -> list[dict[str, Any]]:
    async with uow:
        return await reports.credits(uow.session)


# --- budget -------------------------------------------------------------------------------


class Allocations(BaseModel):
    administration: NotNegative = Field(description="the planned administrative cost (funded by contributions received)")
    delegate_travel: NotNegative
    expert_visits: NotNegative
    index_analysis: NotNegative
    events: NotNegative


class BudgetIn(BaseModel):
    lines: Allocations


@router.put("/budgets/{year}", summary="Set a year's allocations per line (held claims are released if they now fit)", tags=["budget"])
async def set_budget(year: Year, body: BudgetIn, uow: UoW) -> dict[str, Any]:
    async with uow:
        await handlers.set_budget(uow, year, body.lines.model_dump())
    async with uow:
        return await reports.budget(uow.session, year)


@router.get("/budgets/{year}", summary="Per line: allocation, available, committed, spent, headroom", tags=["budget"])
async def get_budget(year: Year, uow: UoW) -> dict[str, Any]:
    async with uow:
        return await reports.budget(uow.session, year)


class SpendingIn(BaseModel):
    budget_line: LineName
    kind: Literal["commitment", "spent"]
    amount: Positive
    reference: Reference
    recorded_on: PastDate | None = None


class SpendingView(BaseModel):
    id: UUID
    year: int
    budget_line: str
    kind: str
    amount: Money
    open: Money = Field(description="still committed")
    spent: Money
    reference: str
    recorded_on: date

    @classmethod
    def of(cls, entry: Spending) -> "SpendingView":
        return cls(**{name: getattr(entry, name) for name in cls.model_fields})


@router.post("/budgets/{year}/spending", status_code=201, summary="Record other spending against a line", tags=["budget"])
async def record_spending(year: Year, body: SpendingIn, uow: UoW) -> SpendingView:
    async with uow:
        spending_id = await handlers.record_spending(
            uow, year, body.budget_line, body.kind, body.amount, body.reference, body.recorded_on or today()
        )
    async with uow:
        return SpendingView.of(await uow.spendings.get(spending_id))


@router.get("/budgets/{year}/spending", summary="Other spending recorded against the year's lines", tags=["budget"])
async def list_spending(year: Year, uow: UoW) -> list[SpendingView]:
    async with uow:
        return [SpendingView.of(entry) for entry in await uow.spendings.find(year)]


class SettlementIn(BaseModel):
    spent: NotNegative = Field(description="what was finally spent; the rest of the commitment is released")
    settled_on: PastDate | None = None


@router.post("/spending/{spending_id}/settlement", summary="Settle a commitment: spent, the rest released", tags=["budget"])
async def settle(spending_id: UUID, body: SettlementIn, uow: UoW) -> SpendingView:
    async with uow:
        await handlers.settle_spending(uow, spending_id, body.spent, body.settled_on or today())
    async with uow:
        return SpendingView.of(await uow.spendings.get(spending_id))


# --- reimbursements -----------------------------------------------------------------------


ClaimStatus = Literal["submitted", "approved", "held", "paid", "rejected"]


class ClaimView(BaseModel):
    claim_id: UUID
    kind: str | None
    city_id: UUID | None
    european: bool | None
    budget_line: str | None
    year: int | None
    amount: Money = Field(description="CoE-funded")
    city_borne: Money
    recharged: Money
    status: ClaimStatus
    reason: str | None
    held_since: datetime | None
    paid_amount: Money
    paid_on: date | None

    @classmethod
    def of(cls, claim: Claim) -> "ClaimView":
        return cls(**{name: getattr(claim, name) for name in cls.model_fields})


@router.get("/reimbursements", summary="Claims as finance decided them (held ones first come first served)", tags=["reimbursements"])
async def list_claims(
    uow: UoW, status: ClaimStatus | None = None, year: int | None = None, budget_line: LineName | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[ClaimView]:
    async with uow:
        return [ClaimView.of(c) for c in await uow.claims.find(status, year, budget_line, limit, offset)]


async def _claim_view(uow: FinanceUnitOfWork, claim_id: UUID) -> ClaimView:
    async with uow:
        if (claim := await uow.claims.get(claim_id)) is None:
            raise NotFound(f"no claim {claim_id}")
        return ClaimView.of(claim)


@router.get("/reimbursements/{claim_id}", summary="One claim", tags=["reimbursements"])
async def get_claim(claim_id: UUID, uow: UoW) -> ClaimView:
    return await _claim_view(uow, claim_id)


class ClaimPaymentIn(BaseModel):
    paid_on: PastDate
    amount: NotNegative | None = Field(default=None, description="default: the amount approved; less releases the rest")


@router.post("/reimbursements/{claim_id}/payment", summary="Mark an approved claim paid: committed becomes spent", tags=["reimbursements"])
async def pay_claim(claim_id: UUID, body: ClaimPaymentIn, uow: UoW) -> ClaimView:
    async with uow:
        await handlers.pay_claim(uow, claim_id, body.paid_on, body.amount)
    return await _claim_view(uow, claim_id)


class RejectionIn(BaseModel):
    reason: Reason


@router.post("/reimbursements/{claim_id}/rejection", summary="Reject a held (or approved, unpaid) claim", tags=["reimbursements"])
async def reject_claim(claim_id: UUID, body: RejectionIn, uow: UoW) -> ClaimView:
    async with uow:
        await handlers.reject_claim(uow, claim_id, body.reason)
    return await _claim_view(uow, claim_id)


# --- reconciliation -----------------------------------------------------------------------


AsOf = Annotated[date | None, Query(description="age and overdue status as of this day (default today)")]


@router.get("/reconciliation/{year}.csv", summary="The reconciliation as CSV", tags=["reconciliation"], response_class=PlainTextResponse)
async def reconciliation_csv(year: Year, uow: UoW, on: AsOf = None) -> PlainTextResponse:
    async with uow:
        report = await reports.reconciliation(uow.session, year, on or today())
    return PlainTextResponse(
        reports.reconciliation_csv(report),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="reconciliation-{year}.csv"'},
    )


@router.get("/reconciliation/{year}", summary="Contributions invoiced/received/outstanding per city, against the budget", tags=["reconciliation"])
async def reconciliation(year: Year, uow: UoW, on: AsOf = None) -> dict[str, Any]:
    async with uow:
        return await reports.reconciliation(uow.session, year, on or today())


Account = Literal["invoiced", "credited", "received", "credit", "allocation", "committed", "spent"]


@router.get("/reconciliation/{year}/trace", summary="The events a figure is the sum of", tags=["reconciliation"])
async def trace(
    year: Year, account: Account, uow: UoW, budget_line: LineName | None = None, city_id: UUID | None = None,
    invoice_kind: InvoiceKind | None = None,
) -> dict[str, Any]:
    async with uow:
        return await reports.trace(uow.session, year, account, budget_line=budget_line, city_id=city_id, invoice_kind=invoice_kind)


# --- dashboard data -----------------------------------------------------------------------


SnapshotYear = Annotated[int | None, Query(ge=2000, le=2100, description="default: the current year")]


@router.get("/dashboard/snapshot", summary="Everything the finance dashboard shows, as JSON", tags=["dashboard"])
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

