"""Membership tables, mapped onto the plain domain classes, and the unit of work's repository."""

from uuid import UUID

from sqlalchemy import Boolean, Column, Date, Integer, Numeric, String, Table, Uuid, select
from sqlalchemy.orm import registry

from services.common.db import UnitOfWork
from services.common.errors import NotFound
from services.membership.domain import City

mapper = registry()

cities = Table(
    "cities",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("country", String(2), nullable=False),
    Column("population", Integer, nullable=False),
    Column("foreign_born_share", Numeric(5, 4, asdecimal=True)),
    Column("european", Boolean, nullable=False),
    Column("applied_on", Date, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("statement_signed_on", Date),
    Column("agreement_signed_on", Date),
    Column("joined_on", Date),
    Column("left_on", Date),
)
mapper.map_imperatively(City, cities)


class CityRepository:
    def __init__(self, session) -> None:
        self.session = session

    def add(self, city: City) -> None:
        self.session.add(city)

    async def get(self, city_id: UUID) -> City:
        city = await self.session.get(City, city_id)
        if city is None:
            raise NotFound(f"no city with id {city_id}")
        return city

    async def list(self, status: str | None, limit: int, offset: int) -> list[City]:
        query = select(City).order_by(cities.c.name, cities.c.id).limit(limit).offset(offset)
        if status:
            query = query.where(cities.c.status == status)
        return list(await self.session.scalars(query))


class MembershipUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "MembershipUnitOfWork":
        await super().__aenter__()
        self.cities = CityRepository(self.session)
        return self
