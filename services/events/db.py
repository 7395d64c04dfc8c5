"""Events tables mapped onto the domain classes, repositories and the unit of work."""

from datetime import date
from uuid import UUID

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Uuid, select, text
from sqlalchemy.orm import registry, relationship, selectinload

from contracts.events import Event
from services.common.db import Keyed, UnitOfWork, UtcDateTime
from services.common.members import city_facts_table, city_ids
from services.common.refusals import NotFound
from services.events.domain import MemberCity, Registration, Workshop

mapper = registry()

member_cities = city_facts_table("member_cities", mapper.metadata)
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
    Column("cancelled_on", Date),
    Column("last_sequence", Integer, nullable=False, default=0),
)
registrations = Table(
    "registrations",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("workshop_id", Uuid, ForeignKey("workshops.id"), nullable=False, index=True),
    Column("city_id", Uuid, nullable=False, index=True),
    Column("delegate_name", String(200), nullable=False),
    Column("delegate_email", String(320), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("funded", Boolean, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("cancelled_at", UtcDateTime),
    # The same delegate holds at most one live registration per event, whatever races.
    Index(
        "uq_registration_delegate",
        "workshop_id",
        "delegate_email",
        unique=True,
        sqlite_where=text("status <> 'cancelled'"),
        postgresql_where=text("status <> 'cancelled'"),
    ),
)
mapper.map_imperatively(MemberCity, member_cities)
mapper.map_imperatively(Registration, registrations)
mapper.map_imperatively(
    Workshop,
    workshops,
    properties={"registrations": relationship(Registration, order_by=registrations.c.sequence, lazy="raise")},
)


class MemberCities(Keyed[MemberCity]):
    """What events knows of cities; batch consumers preload them in one query."""

    def __init__(self, session) -> None:
        super().__init__(session, MemberCity, member_cities.c.city_id)

    async def list(self, limit: int, offset: int) -> list[MemberCity]:
        query = select(MemberCity).order_by(member_cities.c.name, member_cities.c.city_id).limit(limit).offset(offset)
        return list(await self.session.scalars(query))


class Workshops:
    def __init__(self, session) -> None:
        self.session = session

    async def get(self, workshop_id: UUID, *, for_update: bool = False) -> Workshop:
        """The event with its registrations. `for_update` locks its row (PostgreSQL; SQLite
        serialises writers anyway), so seats, the waiting list and quotas are decided one at a time."""
        query = select(Workshop).where(workshops.c.id == workshop_id).options(selectinload(Workshop.registrations))
        if for_update:
            query = query.with_for_update(of=workshops).execution_options(populate_existing=True)
        workshop = (await self.session.scalars(query)).first()
        if workshop is None:
            raise NotFound(f"no event with id {workshop_id}")
        return workshop

    async def list(
        self, status: str | None, kind: str | None, starting_from: date | None, until: date | None, limit: int, offset: int
    ) -> list[Workshop]:
        query = (
            select(Workshop)
            .options(selectinload(Workshop.registrations))
            .order_by(workshops.c.starts_on, workshops.c.title, workshops.c.id)
            .limit(limit)
            .offset(offset)
        )
        if status:
            query = query.where(workshops.c.status == status)
        if kind:
            query = query.where(workshops.c.kind == kind)
        if starting_from:
            query = query.where(workshops.c.ends_on >= starting_from)
        if until:
            query = query.where(workshops.c.starts_on <= until)
        return list(await self.session.scalars(query))

    def add(self, workshop: Workshop) -> None:
        self.session.add(workshop)


class EventsUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "EventsUnitOfWork":
        await super().__aenter__()
        self.member_cities = MemberCities(self.session)
        self.workshops = Workshops(self.session)
        return self

    async def prefetch(self, events: list[Event]) -> None:
        await self.member_cities.preload(city_ids(events))
