"""Finance tables mapped onto the domain classes, repositories and the unit of work."""

from uuid import UUID

from sqlalchemy import Boolean, Column, Date, Index, Integer, String, Table, Uuid, select, text
from sqlalchemy.orm import registry

from contracts.events import CityJoined, CityLeft, Event
from services.common.db import Cents, UnitOfWork
from services.finance.domain import Invoice, Member

mapper = registry()

members = Table(
    "members",
    mapper.metadata,
    Column("city_id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("european", Boolean, nullable=False),
    Column("joined_on", Date, nullable=False),
    Column("left_on", Date),
)

invoices = Table(
    "invoices",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("city_id", Uuid, nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("year", Integer, nullable=False),
    Column("amount", Cents, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("paid", Cents, nullable=False),
    # At most one contribution per city and year, whatever is replayed or run concurrently.
    Index(
        "uq_contribution_city_year",
        "city_id",
        "year",
        unique=True,
        sqlite_where=text("kind = 'contribution'"),
        postgresql_where=text("kind = 'contribution'"),
    ),
)
mapper.map_imperatively(Member, members)
mapper.map_imperatively(Invoice, invoices)


class Members:
    def __init__(self, session) -> None:
        self.session = session
        self._loaded: dict[UUID, Member | None] = {}

    async def preload(self, city_ids: set[UUID]) -> None:
        wanted = city_ids - self._loaded.keys()
        if wanted:
            found = {m.city_id: m for m in await self.session.scalars(select(Member).where(members.c.city_id.in_(wanted)))}
            self._loaded.update({city_id: found.get(city_id) for city_id in wanted})

    async def get(self, city_id: UUID) -> Member | None:
        if city_id not in self._loaded:
            await self.preload({city_id})
        return self._loaded[city_id]

    async def active(self) -> list[Member]:
        return list(await self.session.scalars(select(Member).where(members.c.left_on.is_(None)).order_by(members.c.name)))

    def add(self, member: Member) -> None:
        self.session.add(member)
        self._loaded[member.city_id] = member


class Invoices:
    def __init__(self, session) -> None:
        self.session = session
        self._contributions: dict[tuple[UUID, int], Invoice] = {}
        self._cities_loaded: set[UUID] = set()

    def add(self, invoice: Invoice) -> None:
        self.session.add(invoice)
        if invoice.kind == "contribution":
            self._contributions[(invoice.city_id, invoice.year)] = invoice

    async def preload_contributions(self, city_ids: set[UUID]) -> None:
        wanted = city_ids - self._cities_loaded
        if wanted:
            query = select(Invoice).where(invoices.c.kind == "contribution", invoices.c.city_id.in_(wanted))
            for invoice in await self.session.scalars(query):
                self._contributions[(invoice.city_id, invoice.year)] = invoice
            self._cities_loaded |= wanted

    async def contribution(self, city_id: UUID, year: int) -> Invoice | None:
        await self.preload_contributions({city_id})
        return self._contributions.get((city_id, year))

    async def find(self, city_id: UUID | None, year: int | None, limit: int, offset: int) -> list[Invoice]:
        query = select(Invoice).order_by(invoices.c.issued_on, invoices.c.id).limit(limit).offset(offset)
        if city_id:
            query = query.where(invoices.c.city_id == city_id)
        if year:
            query = query.where(invoices.c.year == year)
        return list(await self.session.scalars(query))


class FinanceUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "FinanceUnitOfWork":
        await super().__aenter__()
        self.members = Members(self.session)
        self.invoices = Invoices(self.session)
        return self

    async def prefetch(self, events: list[Event]) -> None:
        city_ids = {event.city_id for event in events if isinstance(event, CityJoined | CityLeft)}
        await self.members.preload(city_ids)
        await self.invoices.preload_contributions(city_ids)
