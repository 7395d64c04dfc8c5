"""Travel tables mapped onto the domain classes, repositories and the unit of work."""

from uuid import UUID

from sqlalchemy import Boolean, Column, Date, Integer, String, Table, Uuid
from sqlalchemy.orm import registry

from services.common.db import UnitOfWork
from services.travel.domain import KnownCity, KnownEvent

mapper = registry()

known_cities = Table(
    "known_cities",
    mapper.metadata,
    Column("city_id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("european", Boolean, nullable=False),
    Column("joined_on", Date, nullable=False),
    Column("left_on", Date),
)
known_events = Table(
    "known_events",
    mapper.metadata,
    Column("workshop_id", Uuid, primary_key=True),
    Column("title", String(300), nullable=False),
    Column("host_country", String(2), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("funded_quota_per_city", Integer, nullable=False),
    Column("cancelled", Boolean, nullable=False),
)
mapper.map_imperatively(KnownCity, known_cities)
mapper.map_imperatively(KnownEvent, known_events)


class TravelUnitOfWork(UnitOfWork):
    async def city(self, city_id: UUID) -> KnownCity | None:
        return await self.session.get(KnownCity, city_id)

    async def event(self, workshop_id: UUID) -> KnownEvent | None:
        return await self.session.get(KnownEvent, workshop_id)

    def add(self, thing: KnownCity | KnownEvent) -> None:
        self.session.add(thing)
