"""Finance's request and response models: shape and format only, from the shared field types.
What is allowed (paying a cancelled invoice, crediting more than is left) is the domain's to say."""

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Path, Query
from pydantic import BaseModel, Field

from contracts.events import BudgetLine as LineName
from contracts.money import Money
from services.common.fields import Amount, AmountOrZero, PastDate, Text
from services.finance.domain import Claim, Invoice, Payment, Spending

FIRST_YEAR, LAST_YEAR = 2000, 2100  # budget and contribution years the service takes
YEARS = {"ge": FIRST_YEAR, "le": LAST_YEAR}

Year = Annotated[int, Field(**YEARS, description="budget or contribution year")]
YearPath = Annotated[int, Path(**YEARS, description="budget or contribution year")]
YearQuery = Annotated[int | None, Query(**YEARS, description="only this year")]
Reference = Annotated[Text, Field(max_length=200)]
Reason = Annotated[Text, Field(max_length=500)]
InvoiceKind = Literal["contribution", "expert_visit_recharge"]
ClaimStatus = Literal["submitted", "approved", "held", "paid", "rejected"]
Account = Literal["invoiced", "credited", "received", "credit", "allocation", "committed", "spent"]


# --- invoices, payments, credit -------------------------------------------------------------


class InvoiceView(BaseModel):
    id: UUID
    number: str | None = Field(description="the legal number (ICC-2027-0001), also the payment reference")
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
    reason: str | None = Field(description="a manual invoice: why finance issued it by hand")

    @classmethod
    def of(cls, invoice: Invoice, on: date) -> "InvoiceView":
        return cls(
            id=invoice.id, number=invoice.number, city_id=invoice.city_id, year=invoice.year, kind=invoice.kind, amount=invoice.amount,
            paid=invoice.paid, credited=invoice.credited, outstanding=invoice.outstanding, status=invoice.status(on),
            issued_on=invoice.issued_on, due_on=invoice.due_on, reason=invoice.reason,
        )


class ManualInvoiceIn(BaseModel):
    city_id: UUID
    year: Year
    reason: Reason = Field(description="why the rules did not bill this year and finance does")


class PaymentIn(BaseModel):
    amount: Amount
    paid_on: PastDate
    reference: Reference = Field(description="the bank reference; the same one twice on an invoice is refused")


class PaymentView(BaseModel):
    id: UUID
    invoice_id: UUID
    city_id: UUID
    amount: Money
    applied: Money = Field(description="what went to the invoice when it was received; the rest to the city's credit")
    paid_on: date
    reference: str
    reversed_on: date | None
    reversal_reason: str | None

    @classmethod
    def of(cls, payment: Payment) -> "PaymentView":
        return cls(**{name: getattr(payment, name) for name in cls.model_fields})


class PaymentOut(BaseModel):
    payment_id: UUID
    invoice: InvoiceView
    applied: Money = Field(description="applied to the invoice")
    credit: Money = Field(description="paid beyond the invoice: kept as a credit on the city")

    @classmethod
    def of(cls, invoice: Invoice, payment: Payment, on: date) -> "PaymentOut":
        return cls(payment_id=payment.id, invoice=InvoiceView.of(invoice, on), applied=payment.applied,
                   credit=payment.amount - payment.applied)


class CreditNoteView(BaseModel):
    id: UUID
    number: str | None = Field(description="its legal number (ICC-CN-2027-0001)")
    invoice_id: UUID
    city_id: UUID
    amount: Money
    reason: str
    issued_on: date


class CreditNoteIn(BaseModel):
    amount: Amount
    reason: Reason
    issued_on: PastDate | None = None


class ReversalIn(BaseModel):
    reason: Reason = Field(description="why it is reversed: a bounced transfer, a wrong invoice")
    reversed_on: PastDate | None = None


class ReallocationIn(BaseModel):
    invoice_id: UUID = Field(description="the invoice the money was meant for")
    reason: Reason
    reversed_on: PastDate | None = None


class CreditApplicationIn(BaseModel):
    amount: Amount | None = Field(default=None, description="default: as much as the credit and the invoice allow")
    applied_on: PastDate | None = None


class RefundIn(BaseModel):
    amount: Amount | None = Field(default=None, description="default: the whole credit")
    reference: Reference = Field(description="the bank reference of the transfer back")
    refunded_on: PastDate | None = None


class CreditView(BaseModel):
    city_id: UUID
    credit: Money = Field(description="what the city has left as credit")


class ContributionRunIn(BaseModel):
    year: Year


class ContributionRunOut(BaseModel):
    year: int
    issued: int
    already_invoiced: int
    invoices: list[UUID]


# --- budget ---------------------------------------------------------------------------------


class Allocations(BaseModel):
    administration: AmountOrZero = Field(description="the planned administrative cost (funded by contributions received)")
    delegate_travel: AmountOrZero
    expert_visits: AmountOrZero
    index_analysis: AmountOrZero
    events: AmountOrZero


class BudgetIn(BaseModel):
    lines: Allocations


class SpendingIn(BaseModel):
    budget_line: LineName
    kind: Literal["commitment", "spent"]
    amount: Amount
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
    reversed_on: date | None
    reversal_reason: str | None

    @classmethod
    def of(cls, entry: Spending) -> "SpendingView":
        return cls(**{name: getattr(entry, name) for name in cls.model_fields})


class SettlementIn(BaseModel):
    spent: AmountOrZero = Field(description="what was finally spent; the rest of the commitment is released")
    settled_on: PastDate | None = None


# --- reimbursements -------------------------------------------------------------------------


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
    supersedes: UUID | None = Field(description="the rejected claim this resubmission replaces")
    claim_version: int = Field(description="1 for a first submission, 2 for its first resubmission, ...")

    @classmethod
    def of(cls, claim: Claim) -> "ClaimView":
        return cls(**{name: getattr(claim, name) for name in cls.model_fields})


class ClaimPaymentIn(BaseModel):
    paid_on: PastDate
    amount: Amount | None = Field(default=None, description="default: the amount approved; less releases the rest")


class RejectionIn(BaseModel):
    reason: Reason
