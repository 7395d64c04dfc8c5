"""Travel's requests and answers: shape and format only (shared field types); the rules are the domain's."""

from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.money import Money
from services.common.fields import Amount, Currency, PastDate, Rate
from services.travel.domain import (
    EXPERT_VISIT_TEAM,
    AllowanceRate,
    ClaimLine,
    Decision,
    ExchangeRate,
    Expense,
    ExpenseKind,
    ExpertVisit,
    Stay,
    TravelClaim,
    plain,
)
from services.travel.receipts import Receipt

STAY_EXAMPLE = {
    "nights": 3,
    "travel_days_without_night": 1,
    "lines": [
        {"kind": "transport", "amount": "4580.00", "currency": "NOK", "spent_on": "2026-03-02", "receipt": "SAS-7781"},
        {"kind": "local_transport", "amount": "24.00", "currency": "EUR", "spent_on": "2026-03-10"},
    ],
}


# --- requests -----------------------------------------------------------------------------


class LineIn(BaseModel):
    kind: ExpenseKind
    amount: Amount = Field(description="in `currency`, at most two decimals, e.g. \"4580.00\"")
    currency: Currency = Field(description="ISO 4217 code; converted to EUR at the stored rate of `spent_on`")
    spent_on: PastDate = Field(description="the expense date (costs are claimed once spent): it chooses the exchange rate")
    receipt: str | None = Field(default=None, max_length=500, description="proof of payment: required for transport")

    @field_validator("receipt")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:  # PostgreSQL cannot store it in a text column
            raise ValueError("must not contain a NUL character")
        return value.strip() or None if value is not None else None


class ExpenseIn(LineIn):
    """A delegate's expense: its proof of payment is a reference (`receipt`), an uploaded file
    (`receipt_id`), or both; transport without either is kept on the claim but not reimbursed."""

    receipt_id: UUID | None = Field(
        default=None, description="a receipt the delegate (or their coordinator) uploaded with POST /receipts: "
        "the claimant's own, else 422 naming the line")

    def expense(self) -> Expense:
        return Expense(self.kind, self.amount, self.currency, self.spent_on, self.receipt, receipt_id=self.receipt_id)


class StayIn(BaseModel):
    """What a claim declares; an amendment or a resubmission declares it all again."""

    model_config = ConfigDict(json_schema_extra={"examples": [STAY_EXAMPLE]})

    nights: int = Field(ge=0, le=60, description="nights away; capped at the event's days + 1")
    travel_days_without_night: int = Field(
        default=0, ge=0, le=10, description="each earns half the nightly rate; capped so that each calendar day earns one allowance"
    )
    lines: list[ExpenseIn] = Field(default_factory=list, max_length=50)

    def stay(self) -> Stay:
        return Stay(self.nights, self.travel_days_without_night, [line.expense() for line in self.lines])


class ClaimRequest(StayIn):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"registration_id": "6f1c2d3e-0000-4000-8000-000000000001", **STAY_EXAMPLE}]}
    )

    registration_id: UUID


class ExpertExpenseIn(LineIn):
    traveller: str | None = Field(default=None, max_length=200, description="e.g. \"expert\" or \"CoE representative\"")

    def expense(self) -> Expense:
        return Expense(self.kind, self.amount, self.currency, self.spent_on, self.receipt, self.traveller)


class ExpertVisitRequest(BaseModel):
    city_id: UUID
    visit_date: PastDate
    nights: int = Field(default=0, ge=0, le=30, description="nights each traveller stayed; earns the city's allowance rate")
    travellers: int = Field(
        default=EXPERT_VISIT_TEAM, ge=1, le=10, description=f"the expert(s) and the CoE representative: at least {EXPERT_VISIT_TEAM}"
    )
    lines: list[ExpertExpenseIn] = Field(default_factory=list, max_length=100)


class AllowanceRateIn(BaseModel):
    eur_per_night: Amount
    valid_from: date


class ExchangeRateIn(BaseModel):
    units_per_eur: Rate = Field(description="as the ECB quotes it: units of the currency for one euro, e.g. \"11.4500\"")
    on: date


# --- answers ------------------------------------------------------------------------------


class LineView(BaseModel):
    kind: str
    amount: Money
    currency: str
    spent_on: date | None
    receipt: str | None
    exchange_rate: Decimal | None = Field(description="units of `currency` per EUR used; null when no conversion")
    rate_on: date | None = Field(description="the exchange rate's date, or the allowance rate's valid_from")
    eur_amount: Money
    eligible: Money
    coe_funded: Money
    city_borne: Money
    rule: str
    explanation: str
    traveller: str | None = None
    receipt_id: UUID | None = Field(default=None, description="the uploaded receipt (GET /receipts/{id}) proving it")

    @classmethod
    def of(cls, line: ClaimLine) -> "LineView":
        return cls(
            kind=line.kind,
            amount=line.amount,
            currency=line.currency,
            spent_on=line.spent_on,
            receipt=line.receipt,
            exchange_rate=plain(line.units_per_eur) if line.units_per_eur is not None else None,
            rate_on=line.rate_on,
            eur_amount=line.eur_amount,
            eligible=line.eligible,
            coe_funded=line.coe_funded,
            city_borne=line.city_borne,
            rule=line.rule,
            explanation=line.explanation,
            traveller=line.traveller,
            receipt_id=line.receipt_id,
        )


class DecisionView(BaseModel):
    status: str
    amount: Money | None
    reason: str | None
    paid_on: date | None
    recorded_at: datetime

    @classmethod
    def of(cls, decision: Decision) -> "DecisionView":
        return cls(
            status=decision.status,
            amount=decision.amount,
            reason=decision.reason,
            paid_on=decision.paid_on,
            recorded_at=decision.recorded_at,
        )


ClaimStatusName = Literal["submitted", "approved", "held", "paid", "rejected"]


class PricedClaim(BaseModel):
    """What a claim and its quote both say: whose, under which rule, and its lines priced in EUR."""

    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    european: bool = Field(description="the city's country was a Council of Europe member on the event's first day")
    funding: str = Field(description="the funding rule the lines are decided under")
    event_year: int
    claimed: Money = Field(description="every line in EUR")
    coe_funded: Money
    city_borne: Money
    blocked: Money = Field(description="not reimbursed: transport without proof of payment")
    lines: list[LineView]

    @classmethod
    def _fields_of(cls, claim: TravelClaim, *computed: str) -> dict:
        return {
            **{name: getattr(claim, name) for name in cls.model_fields if name not in ("lines", *computed)},
            "lines": [LineView.of(line) for line in claim.lines],
        }


class ClaimView(PricedClaim):
    id: UUID
    funded: bool = Field(description="within the city's funded quota when the claim was decided")
    submitted_on: date
    nights: int = Field(description="nights away, as claimed")
    travel_days_without_night: int = Field(description="travel days without a night, as claimed")
    status: ClaimStatusName
    claim_version: int = Field(description="1, or the version of a resubmitted claim")
    supersedes: UUID | None = Field(description="the rejected claim this version replaces")
    amended_on: date | None
    amendments: int
    decisions: list[DecisionView]

    @classmethod
    def of(cls, claim: TravelClaim) -> "ClaimView":
        return cls(**cls._fields_of(claim, "decisions"), decisions=[DecisionView.of(decision) for decision in claim.decisions])


class ClaimQuote(PricedClaim):
    """A claim priced as `POST /claims` would decide it today, stored nowhere: no id, no status."""

    funded: bool = Field(description="within the city's funded quota, counting the claims already funded")
    priced_on: date = Field(description="today: a claim submitted later is priced with the rates and quota of its day")

    @classmethod
    def of(cls, claim: TravelClaim) -> "ClaimQuote":
        return cls(**cls._fields_of(claim, "priced_on"), priced_on=claim.submitted_on)


class ReceiptView(BaseModel):
    id: UUID
    sha256: str = Field(description="SHA-256 of the bytes, hex: compare with your file's to check the upload")
    content_type: Literal["application/pdf", "image/jpeg", "image/png"] = Field(description="judged by the file's content")
    size: int = Field(description="bytes")
    filename: str | None = Field(description="the uploaded file's name, for display only")
    created_at: datetime

    @classmethod
    def of(cls, receipt: Receipt) -> "ReceiptView":
        return cls(id=receipt.id, sha256=receipt.sha256, content_type=receipt.content_type, size=receipt.size,
                   filename=receipt.filename, created_at=receipt.created_at)


class ExpertVisitView(BaseModel):
    id: UUID
    city_id: UUID
    city_name: str
    european: bool = Field(description="the city's country was a Council of Europe member on the visit date")
    visit_date: date
    submitted_on: date
    nights: int
    travellers: int
    status: ClaimStatusName
    claimed: Money
    coe_funded: Money
    recharged: Money = Field(description="invoiced to a non-European city by finance")
    blocked: Money
    lines: list[LineView]
    decisions: list[DecisionView]

    @classmethod
    def of(cls, visit: ExpertVisit) -> "ExpertVisitView":
        return cls(
            **{name: getattr(visit, name) for name in cls.model_fields if name not in ("lines", "decisions")},
            lines=[LineView.of(line) for line in visit.lines],
            decisions=[DecisionView.of(decision) for decision in visit.decisions],
        )


class AllowanceRateView(BaseModel):
    country: str
    valid_from: date
    eur_per_night: Money

    @classmethod
    def of(cls, rate: AllowanceRate) -> "AllowanceRateView":
        return cls(country=rate.country, valid_from=rate.valid_from, eur_per_night=rate.eur_per_night)


class ExchangeRateView(BaseModel):
    currency: str
    on: date
    units_per_eur: Decimal

    @classmethod
    def of(cls, rate: ExchangeRate) -> "ExchangeRateView":
        return cls(currency=rate.currency, on=rate.quoted_on, units_per_eur=plain(rate.units_per_eur))
