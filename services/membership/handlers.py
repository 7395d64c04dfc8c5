"""Membership commands: one plain function each, run inside a unit of work."""

from datetime import date
from decimal import Decimal
from uuid import UUID

from services.membership import domain
from services.membership.db import MembershipUnitOfWork
from services.membership.domain import City


async def apply_for_membership(
    uow: MembershipUnitOfWork, name: str, country: str, population: int, foreign_born_share: Decimal | None, today: date
) -> City:
    city, applied = domain.apply_for_membership(name, country, population, foreign_born_share, today)
    uow.cities.add(city)
    uow.emit(applied)
    await uow.commit()
    return city


async def sign_statement_of_intent(uow: MembershipUnitOfWork, city_id: UUID, signed_on: date) -> City:
    city = await uow.cities.get(city_id)
    if joined := city.sign_statement_of_intent(signed_on):
        uow.emit(joined)
    await uow.commit()
    return city


async def sign_financial_agreement(uow: MembershipUnitOfWork, city_id: UUID, signed_on: date) -> City:
    city = await uow.cities.get(city_id)
    if joined := city.sign_financial_agreement(signed_on):
        uow.emit(joined)
    await uow.commit()
    return city


async def withdraw(uow: MembershipUnitOfWork, city_id: UUID, effective_on: date) -> City:
    city = await uow.cities.get(city_id)
    uow.emit(city.withdraw(effective_on))
    await uow.commit()
    return city
