"""Finance HTTP API."""

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from contracts.money import Money
from services.common.api import Limit, Offset, today
from services.common.runtime import get_unit_of_work
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import Invoice

router = APIRouter(tags=["invoices"])
UoW = Annotated[FinanceUnitOfWork, Depends(get_unit_of_work)]


class InvoiceView(BaseModel):
    id: UUID
    city_id: UUID
    year: int
    kind: Literal["contribution", "expert_visit_recharge"]
    amount: Money
    paid: Money
    outstanding: Money
    status: Literal["issued", "partly_paid", "paid", "overdue"]
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
            outstanding=max(invoice.amount - invoice.paid, Decimal("0.00")),
            status=invoice.status(on),
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
        )


@router.get("/invoices", summary="Invoices, by city and year")
async def list_invoices(
    uow: UoW, city_id: UUID | None = None, year: int | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[InvoiceView]:
    async with uow:
        on = today()
        return [InvoiceView.of(invoice, on) for invoice in await uow.invoices.find(city_id, year, limit, offset)]
