"""Membership HTTP API: parse, call a handler, answer."""

from datetime import date
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.reference import is_country_code
from services.common.api import Limit, Offset, today
from services.common.runtime import get_unit_of_work
from services.membership import handlers
from services.membership.db import MembershipUnitOfWork
from services.membership.domain import City, CityStatus

router = APIRouter(tags=["cities"])
UoW = Annotated[MembershipUnitOfWork, Depends(get_unit_of_work)]


class CityApplication(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Oslo", "country": "NO", "population": 709000, "foreign_born_share": "0.28"}]}
    )

    name: str = Field(min_length=1, max_length=200)
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. NO")
    population: int = Field(gt=0)
    foreign_born_share: Decimal | None = Field(default=None, ge=0, le=1, description="share of foreign-born residents, 0 to 1")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.strip().upper()
        if not is_country_code(code):
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. FR, TR, MA)")
        return code


class Signature(BaseModel):
    signed_on: date

    @field_validator("signed_on")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        if value > today():
            raise ValueError("a signature cannot be dated in the future")
        return value


class Withdrawal(BaseModel):
    effective_on: date


class CityView(BaseModel):
    id: UUID
    name: str
    country: str
    population: int
    foreign_born_share: Decimal | None
    european: bool
    small_city: bool
    status: CityStatus
    applied_on: date
    statement_signed_on: date | None
    agreement_signed_on: date | None
    joined_on: date | None
    left_on: date | None

    @classmethod
    def of(cls, city: City) -> "CityView":
        return cls.model_validate(
            {**{name: getattr(city, name) for name in cls.model_fields if name != "small_city"}, "small_city": city.small_city}
        )


@router.post("/cities", status_code=201, summary="A city applies to join the network")
async def apply(application: CityApplication, uow: UoW) -> CityView:
    async with uow:
        city = await handlers.apply_for_membership(
            uow, application.name, application.country, application.population, application.foreign_born_share, today()
        )
    return CityView.of(city)


@router.get("/cities/{city_id}", summary="One city and its membership status")
async def get_city(city_id: UUID, uow: UoW) -> CityView:
    async with uow:
        return CityView.of(await uow.cities.get(city_id))


@router.get("/cities", summary="Cities, optionally by status")
async def list_cities(uow: UoW, status: CityStatus | None = None, limit: Limit = 100, offset: Offset = 0) -> list[CityView]:
    async with uow:
        return [CityView.of(city) for city in await uow.cities.list(status, limit, offset)]


@router.post("/cities/{city_id}/statement-of-intent", summary="Record the signed statement of intent")
async def sign_statement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    async with uow:
        return CityView.of(await handlers.sign_statement_of_intent(uow, city_id, signature.signed_on))


@router.post("/cities/{city_id}/financial-agreement", summary="Record the signed financial agreement")
async def sign_agreement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    async with uow:
        return CityView.of(await handlers.sign_financial_agreement(uow, city_id, signature.signed_on))


@router.post("/cities/{city_id}/withdrawal", summary="A member leaves the network")
async def withdraw(city_id: UUID, withdrawal: Withdrawal, uow: UoW) -> CityView:
    async with uow:
        return CityView.of(await handlers.withdraw(uow, city_id, withdrawal.effective_on))
