"""Travel HTTP API: parse, call a handler, answer."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import pycountry
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.money import EUR, Money
from contracts.reference import is_country_code
from services.common.api import Limit, Offset, today
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.travel import handlers
from services.travel.db import TravelUnitOfWork
from services.travel.domain import (
    EXPERT_VISIT_TEAM,
    AllowanceRate,
    ClaimLine,
    Decision,
    ExchangeRate,
    Expense,
    ExpenseKind,
    ExpertVisit,
    RateMissing,
    TravelClaim,
    plain,
)

router = APIRouter(tags=["travel"])
UoW = Annotated[TravelUnitOfWork, Depends(get_unit_of_work)]
RATE_PLACES = 6  # ECB rates have at most 4 decimals; leave room for finer ones


def _not_in_future(value: date) -> date:
    if value > today():
        raise ValueError(f"{value} is in the future: costs are claimed once spent")
    return value


def _country(value: str) -> str:
    code = value.strip().upper()
    if not is_country_code(code):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. FR, TR, MA)")
    return code


def _currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, NOK, TRY)")
    return code


# --- requests -----------------------------------------------------------------------------


class ExpenseIn(BaseModel):
    kind: ExpenseKind
    amount: Money = Field(description="in `currency`, at most two decimals, e.g. \"4580.00\"")
    currency: str = Field(description="ISO 4217 code; converted to EUR at the stored rate of `spent_on`")
    spent_on: date = Field(description="the expense date: it chooses the exchange rate")
    receipt: str | None = Field(default=None, max_length=500, description="proof of payment: required for transport")

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("an expense amount must be positive")
        return value

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        return _currency(value)

    @field_validator("spent_on")
    @classmethod
    def _spent(cls, value: date) -> date:
        return _not_in_future(value)

    @field_validator("receipt")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    def expense(self) -> Expense:
        return Expense(self.kind, self.amount, self.currency, self.spent_on, self.receipt)


class ClaimRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "registration_id": "6f1c2d3e-0000-4000-8000-000000000001",
                    "nights": 3,
                    "travel_days_without_night": 1,
                    "lines": [
                        {"kind": "transport", "amount": "4580.00", "currency": "NOK", "spent_on": "2026-03-02", "receipt": "SAS-7781"},
                        {"kind": "local_transport", "amount": "24.00", "currency": "EUR", "spent_on": "2026-03-10"},
                    ],
                }
            ]
        }
    )

    registration_id: UUID
    nights: int = Field(ge=0, le=60, description="nights away; capped at the event's days + 1")
    travel_days_without_night: int = Field(default=0, ge=0, le=10, description="each earns half the nightly rate; at most 2 count")
    lines: list[ExpenseIn] = Field(default_factory=list, max_length=50)


class ExpertExpenseIn(ExpenseIn):
    traveller: str | None = Field(default=None, max_length=200, description="e.g. \"expert\" or \"CoE representative\"")

    def expense(self) -> Expense:
        return Expense(self.kind, self.amount, self.currency, self.spent_on, self.receipt, self.traveller)


class ExpertVisitRequest(BaseModel):
    city_id: UUID
    visit_date: date
    nights: int = Field(default=0, ge=0, le=30, description="nights each traveller stayed; earns the city's allowance rate")
    travellers: int = Field(default=EXPERT_VISIT_TEAM, ge=EXPERT_VISIT_TEAM, le=10, description="the expert(s) and the CoE representative")
    lines: list[ExpertExpenseIn] = Field(default_factory=list, max_length=100)

    @field_validator("visit_date")
    @classmethod
    def _visited(cls, value: date) -> date:
        return _not_in_future(value)


class AllowanceRateIn(BaseModel):
    eur_per_night: Money
    valid_from: date

    @field_validator("eur_per_night")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("a rate per night must be positive")
        return value


class ExchangeRateIn(BaseModel):
    units_per_eur: Decimal = Field(description="as the ECB quotes it: units of the currency for one euro, e.g. \"11.4500\"")
    on: date

    @field_validator("units_per_eur", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("send the rate as a decimal string such as \"11.4500\", not a float")
        return value

    @field_validator("units_per_eur")
    @classmethod
    def _exact_positive(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise ValueError("a rate must be a positive number")
        if value != value.quantize(Decimal(1).scaleb(-RATE_PLACES)):
            raise ValueError(f"a rate has at most {RATE_PLACES} decimal places")
        return value


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


class ClaimView(BaseModel):
    id: UUID
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    european: bool
    funded: bool = Field(description="within the city's funded quota when the claim was submitted")
    event_year: int
    submitted_on: date
    status: ClaimStatusName
    claimed: Money = Field(description="every line in EUR")
    coe_funded: Money
    city_borne: Money
    blocked: Money = Field(description="not reimbursed: transport without proof of payment")
    lines: list[LineView]
    decisions: list[DecisionView]

    @classmethod
    def of(cls, claim: TravelClaim) -> "ClaimView":
        return cls(
            **{name: getattr(claim, name) for name in cls.model_fields if name not in ("lines", "decisions")},
            lines=[LineView.of(line) for line in claim.lines],
            decisions=[DecisionView.of(decision) for decision in claim.decisions],
        )


class ExpertVisitView(BaseModel):
    id: UUID
    city_id: UUID
    city_name: str
    european: bool
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


# --- claims -------------------------------------------------------------------------------


@router.post("/claims", status_code=201, summary="A delegate claims travel costs for a registration")
async def submit_claim(request: ClaimRequest, uow: UoW) -> ClaimView:
    async with uow:
        claim = await handlers.submit_claim(
            uow,
            request.registration_id,
            request.nights,
            request.travel_days_without_night,
            [line.expense() for line in request.lines],
            today(),
        )
        return ClaimView.of(claim)


@router.get("/claims/{claim_id}", summary="One claim, its lines explained, and finance's decisions")
async def get_claim(claim_id: UUID, uow: UoW) -> ClaimView:
    async with uow:
        return ClaimView.of(await uow.claims.get_one(claim_id))


@router.get("/claims", summary="Claims: a delegate's own (by email), or all by event, city, status")
async def list_claims(
    uow: UoW,
    delegate_email: str | None = None,
    workshop_id: UUID | None = None,
    city_id: UUID | None = None,
    status: ClaimStatusName | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ClaimView]:
    async with uow:
        claims = await uow.claims.find(
            delegate_email=delegate_email, workshop_id=workshop_id, city_id=city_id, status=status, limit=limit, offset=offset
        )
        return [ClaimView.of(claim) for claim in claims]


# --- expert visits ------------------------------------------------------------------------


@router.post("/expert-visits", status_code=201, summary="Claim an expert visit's costs (recharged to a non-European city)")
async def claim_expert_visit(request: ExpertVisitRequest, uow: UoW) -> ExpertVisitView:
    async with uow:
        visit = await handlers.claim_expert_visit(
            uow,
            request.city_id,
            request.visit_date,
            request.nights,
            request.travellers,
            [line.expense() for line in request.lines],
            today(),
        )
        return ExpertVisitView.of(visit)


@router.get("/expert-visits/{visit_id}", summary="One expert visit, its lines explained, and finance's decisions")
async def get_expert_visit(visit_id: UUID, uow: UoW) -> ExpertVisitView:
    async with uow:
        return ExpertVisitView.of(await uow.expert_visits.get_one(visit_id))


@router.get("/expert-visits", summary="Expert visits, by city and status")
async def list_expert_visits(
    uow: UoW, city_id: UUID | None = None, status: ClaimStatusName | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[ExpertVisitView]:
    async with uow:
        visits = await uow.expert_visits.find(city_id=city_id, status=status, limit=limit, offset=offset)
        return [ExpertVisitView.of(visit) for visit in visits]


# --- rate tables --------------------------------------------------------------------------


@router.put("/allowance-rates/{country}", summary="Set a host country's allowance per night from a date")
async def put_allowance_rate(country: str, rate: AllowanceRateIn, uow: UoW) -> AllowanceRateView:
    code = _valid_path(_country, country, "country")
    async with uow:
        return AllowanceRateView.of(await handlers.set_allowance_rate(uow, code, rate.valid_from, rate.eur_per_night))


@router.get("/allowance-rates", summary="The allowance rate table")
async def list_allowance_rates(uow: UoW, country: str | None = None, limit: Limit = 100, offset: Offset = 0) -> list[AllowanceRateView]:
    async with uow:
        code = _valid_path(_country, country, "country") if country else None
        return [AllowanceRateView.of(rate) for rate in await uow.allowance_rates.find(code, limit, offset)]


@router.get("/allowance-rates/{country}", summary="The allowance rate in force in a country on a date")
async def allowance_rate_in_force(country: str, uow: UoW, on: date | None = None) -> AllowanceRateView:
    code, on = _valid_path(_country, country, "country"), on or today()
    async with uow:
        if (rate := await uow.allowance_rates.in_force(code, on)) is None:
            raise NotFound(f"no daily allowance rate for {code} in force on {on}")
        return AllowanceRateView.of(rate)


@router.put("/exchange-rates/{currency}", summary="Set a currency's rate (units per EUR) on a date")
async def put_exchange_rate(currency: str, rate: ExchangeRateIn, uow: UoW) -> ExchangeRateView:
    code = _valid_path(_currency, currency, "currency")
    if code == EUR:
        raise InvalidPath(["path", "currency"], "EUR is the claims' currency: it has no rate to itself")
    async with uow:
        return ExchangeRateView.of(await handlers.set_exchange_rate(uow, code, rate.on, rate.units_per_eur))


@router.get("/exchange-rates", summary="The exchange rate table")
async def list_exchange_rates(uow: UoW, currency: str | None = None, limit: Limit = 100, offset: Offset = 0) -> list[ExchangeRateView]:
    async with uow:
        code = _valid_path(_currency, currency, "currency") if currency else None
        return [ExchangeRateView.of(rate) for rate in await uow.exchange_rates.find(code, limit, offset)]


@router.get("/exchange-rates/{currency}", summary="The latest rate of a currency on or before a date")
async def exchange_rate_in_force(currency: str, uow: UoW, on: date | None = None) -> ExchangeRateView:
    code, on = _valid_path(_currency, currency, "currency"), on or today()
    async with uow:
        if (rate := await uow.exchange_rates.in_force(code, on)) is None:
            raise NotFound(f"no {code} exchange rate on or before {on}")
        return ExchangeRateView.of(rate)


# --- errors -------------------------------------------------------------------------------


class InvalidPath(ValueError):
    def __init__(self, loc: list[str], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _valid_path(check, value: str, name: str) -> str:
    try:
        return check(value)
    except ValueError as err:
        raise InvalidPath(["path", name], str(err)) from err


def install_travel_errors(app: FastAPI) -> None:
    """A missing rate and a bad path parameter are the request's problem (422), answered like FastAPI's own."""

    @app.exception_handler(RateMissing)
    async def rate_missing(_: Request, err: RateMissing) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(InvalidPath)
    async def invalid_path(_: Request, err: InvalidPath) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": err.loc, "msg": str(err), "type": "value_error"}]}, status_code=422)
