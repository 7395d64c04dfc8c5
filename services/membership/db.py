"""Membership tables, mapped onto the plain domain classes, the repositories and the unit of work."""

from datetime import date
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    and_,
    or_,
    select,
    text,
)
from sqlalchemy.orm import registry

from services.common.db import Keyed, UnitOfWork, UtcDateTime
from services.common.refusals import NotFound
from services.membership.domain import City, CityStatus, ExpertVisit, SignatureCorrection
from services.membership.index import Indexed, IndexScore, IndexSubmission, Waiting

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
    Column("statement_signed_on", Date),
    Column("agreement_signed_on", Date),
    Column("joined_on", Date, index=True),
    Column("left_on", Date),
    Column("contact", String(300)),
)

signature_corrections = Table(
    "signature_corrections",
    mapper.metadata,
    Column("number", Integer, primary_key=True, autoincrement=True),  # the order they were made in
    Column("id", Uuid, nullable=False, unique=True),
    Column("city_id", Uuid, ForeignKey("cities.id"), nullable=False, index=True),
    Column("document", String(40), nullable=False),
    Column("previous_signed_on", Date, nullable=False),
    Column("signed_on", Date, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("corrected_on", Date, nullable=False),
)

index_submissions = Table(
    "index_submissions",
    mapper.metadata,
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("id", Uuid, nullable=False, unique=True),
    Column("city_id", Uuid, ForeignKey("cities.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("answers", JSON, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("analysed_on", Date),
    Column("analyst", String(200)),
    Column("result", JSON(none_as_null=True)),
    # One submission per city waits in the queue at a time, even under concurrent submissions.
    Index(
        "uq_index_submission_waiting",
        "city_id",
        unique=True,
        sqlite_where=text("analysed_on IS NULL"),
        postgresql_where=text("analysed_on IS NULL"),
    ),
)

expert_visits = Table(
    "expert_visits",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("city_id", Uuid, ForeignKey("cities.id"), nullable=False, index=True),
    Column("visit_date", Date, nullable=False),
    Column("experts", JSON, nullable=False),
    Column("coe_representatives", JSON, nullable=False),
    Column("profile_summary", Text),
    Column("profile_url", String(500)),
    Column("profile_recorded_on", Date),
)

mapper.map_imperatively(City, cities)
mapper.map_imperatively(IndexSubmission, index_submissions)
mapper.map_imperatively(ExpertVisit, expert_visits)
mapper.map_imperatively(SignatureCorrection, signature_corrections)


def status_on(day: date) -> dict[CityStatus, ColumnElement[bool]]:
    """City.status_on as SQL, so that `?status=member` lists exactly the cities whose status is member."""
    c = cities.c
    return {
        CityStatus.LEFT: c.left_on < day,
        CityStatus.MEMBER: and_(c.joined_on <= day, or_(c.left_on.is_(None), c.left_on >= day)),
        CityStatus.APPLICANT: and_(or_(c.joined_on.is_(None), c.joined_on > day), or_(c.left_on.is_(None), c.left_on >= day)),
    }


class CityRepository(Keyed[City]):
    def __init__(self, session) -> None:
        super().__init__(session, City, cities.c.id)

    async def get(self, city_id: UUID) -> City:  # type: ignore[override]
        if (city := await super().get(city_id)) is None:
            raise NotFound(f"no city with id {city_id}", code="no_city")
        return city

    async def find(self, status: CityStatus | None, today: date, limit: int, offset: int, only: set[UUID] | None = None) -> list[City]:
        """`only`: these cities' ids (a caller's scope); None: all."""
        query = select(City).order_by(cities.c.name, cities.c.id).limit(limit).offset(offset)
        if only is not None:
            query = query.where(cities.c.id.in_(only))
        if status:
            query = query.where(status_on(today)[status])
        return list(await self.session.scalars(query))

    def add_correction(self, correction: SignatureCorrection) -> None:
        self.session.add(correction)

    async def corrections(self, city_id: UUID) -> list[SignatureCorrection]:
        query = select(SignatureCorrection).where(signature_corrections.c.city_id == city_id).order_by(
            signature_corrections.c.number)
        return list(await self.session.scalars(query))


class IndexRepository:
    def __init__(self, session) -> None:
        self.session = session

    def add(self, submission: IndexSubmission) -> None:
        self.session.add(submission)

    async def waiting_for(self, city_id: UUID) -> IndexSubmission | None:
        query = select(IndexSubmission).where(index_submissions.c.city_id == city_id, index_submissions.c.analysed_on.is_(None))
        return (await self.session.scalars(query)).first()

    async def waiting(self) -> list[Waiting]:
        """Every submission not analysed yet, with the city facts the queue order depends on."""
        s, c = index_submissions.c, cities.c
        query = (
            select(s.id, s.city_id, c.name, s.submitted_at, s.number, c.statement_signed_on)
            .join(cities, c.id == s.city_id)
            .where(s.analysed_on.is_(None))
        )
        return [Waiting(*row) for row in await self.session.execute(query)]

    async def get_waiting_for_update(self, submission_id: UUID) -> IndexSubmission | None:
        """The submission, locked (PostgreSQL), if it still waits: two analysts never take the same one."""
        query = (
            select(IndexSubmission)
            .where(index_submissions.c.id == submission_id, index_submissions.c.analysed_on.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).first()

    async def latest_analysed(self, city_id: UUID) -> IndexSubmission | None:
        query = (
            select(IndexSubmission)
            .where(index_submissions.c.city_id == city_id, index_submissions.c.analysed_on.is_not(None))
            .order_by(index_submissions.c.number.desc())
            .limit(1)
        )
        return (await self.session.scalars(query)).first()

    async def network(self, version: int, today: date) -> list[Indexed]:
        """The latest analysed result, on questionnaire `version`, of every member city."""
        s, c = index_submissions.c, cities.c
        query = (
            select(s.city_id, c.population, c.foreign_born_share, s.result)
            .join(cities, c.id == s.city_id)
            .where(status_on(today)[CityStatus.MEMBER], s.version == version, s.analysed_on.is_not(None))
            .order_by(s.number)
        )
        latest = {}
        for city_id, population, share, result in await self.session.execute(query):
            latest[city_id] = (population, share, result)  # later numbers overwrite earlier ones
        return [Indexed(city_id, population, share, IndexScore.from_data(result))
                for city_id, (population, share, result) in latest.items()]


class ExpertVisitRepository(Keyed[ExpertVisit]):
    def __init__(self, session) -> None:
        super().__init__(session, ExpertVisit, expert_visits.c.id)

    async def of(self, city_id: UUID, visit_id: UUID) -> ExpertVisit:
        visit = await self.get(visit_id)
        if visit is None or visit.city_id != city_id:
            raise NotFound(f"no expert visit {visit_id} for city {city_id}", code="no_expert_visit")
        return visit

    async def of_city(self, city_id: UUID) -> list[ExpertVisit]:
        query = select(ExpertVisit).where(expert_visits.c.city_id == city_id).order_by(expert_visits.c.visit_date)
        return list(await self.session.scalars(query))


class MembershipUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "MembershipUnitOfWork":
        await super().__aenter__()
        self.cities = CityRepository(self.session)
        self.index = IndexRepository(self.session)
        self.expert_visits = ExpertVisitRepository(self.session)
        return self
