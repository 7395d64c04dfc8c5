"""Events tables mapped onto the domain classes, repositories and the unit of work."""

from uuid import UUID

from sqlalchemy import Boolean, Column, Date, Integer, String, Table, Uuid
from sqlalchemy.orm import registry

from services.common.db import UnitOfWork
from services.common.errors import NotFound
from services.events.domain import MemberCity, Workshop

mapper = registry()

member_cities = Table(
    "member_cities",
    mapper.metadata,
    Column("city_id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("european", Boolean, nullable=False),
    Column("joined_on", Date, nullable=False),
    Column("left_on", Date),
)
workshops = Table(
    "workshops",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("title", String(300), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("host_city", String(200), nullable=False),
    Column("host_country", String(2), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("funded_quota_per_city", Integer, nullable=False),
    Column("status", String(20), nullable=False),
)
mapper.map_imperatively(MemberCity, member_cities)
mapper.map_imperatively(Workshop, workshops)


class MemberCities:
    def __init__(self, session) -> None:
        self.session = session

    async def get(self, city_id: UUID) -> MemberCity | None:
        return await self.session.get(MemberCity, city_id)

    def add(self, city: MemberCity) -> None:
        self.session.add(city)


class Workshops:
    def __init__(self, session) -> None:
        self.session = session

    async def get(self, workshop_id: UUID) -> Workshop:
        workshop = await self.session.get(Workshop, workshop_id)
        if workshop is None:
            raise NotFound(f"no event with id {workshop_id}")
        return workshop

    def add(self, workshop: Workshop) -> None:
        self.session.add(workshop)


class EventsUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "EventsUnitOfWork":
        await super().__aenter__()
        self.member_cities = MemberCities(self.session)
        self.workshops = Workshops(self.session)
        return self
