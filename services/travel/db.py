"""Travel tables mapped onto the domain classes, repositories and the unit of work."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import deferred, foreign, registry, relationship, undefer

from contracts.events import (
    DelegateRegistered,
    Event,
    RegistrationCancelled,
    RegistrationFundingChanged,
    RegistrationPromoted,
    ReimbursementApproved,
    ReimbursementHeld,
    ReimbursementPaid,
    ReimbursementRejected,
    WorkshopCancelled,
    WorkshopRescheduled,
    WorkshopScheduled,
)
from services.common.db import Cents, Keyed, ScaledDecimal, UnitOfWork, UtcDateTime
from services.common.members import city_facts_table, city_ids
from services.common.refusals import NotFound
from services.travel.domain import (
    AllowanceRate,
    ClaimLine,
    ClaimStatus,
    Decision,
    ExchangeRate,
    ExpertVisit,
    Funding,
    KnownCity,
    KnownEvent,
    Rates,
    Registration,
    TravelClaim,
    plain,
)
from services.travel.receipts import Receipt

mapper = registry()


class Micros(ScaledDecimal):
    """An exchange rate with up to six places (an ECB rate such as 11.4500) stored as an integer."""

    SCALE = 6
    cache_ok = True

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        rate = super().process_result_value(value, dialect)
        return None if rate is None else plain(rate)  # 11450000 -> 11.45


known_cities = city_facts_table("known_cities", mapper.metadata)
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
registrations = Table(
    "registrations",
    mapper.metadata,
    Column("registration_id", Uuid, primary_key=True),
    Column("workshop_id", Uuid, nullable=False, index=True),
    Column("city_id", Uuid, nullable=False),
    Column("delegate_name", String(200), nullable=False),
    Column("delegate_email", String(320), nullable=False),
    Column("status", String(20), nullable=False),
    Column("funded", Boolean, nullable=False),
)
allowance_rates = Table(
    "allowance_rates",
    mapper.metadata,
    Column("country", String(2), primary_key=True),
    Column("valid_from", Date, primary_key=True),
    Column("eur_per_night", Cents, nullable=False),
)
exchange_rates = Table(
    "exchange_rates",
    mapper.metadata,
    Column("currency", String(3), primary_key=True),
    Column("quoted_on", Date, primary_key=True),
    Column("units_per_eur", Micros, nullable=False),
)
travel_claims = Table(
    "travel_claims",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("registration_id", Uuid, nullable=False),
    Column("workshop_id", Uuid, nullable=False, index=True),
    Column("city_id", Uuid, nullable=False, index=True),
    Column("delegate_name", String(200), nullable=False),
    Column("delegate_email", String(320), nullable=False, index=True),
    Column("european", Boolean, nullable=False),
    Column("funded", Boolean, nullable=False),
    Column("funding", String(60), nullable=False),
    Column("submitted_on", Date, nullable=False),
    Column("event_year", Integer, nullable=False),
    Column("nights", Integer, nullable=False),
    Column("travel_days_without_night", Integer, nullable=False),
    Column("coe_funded", Cents, nullable=False),
    Column("city_borne", Cents, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("claim_version", Integer, nullable=False),
    Column("supersedes", Uuid),
    Column("amended_on", Date),
    Column("amendments", Integer, nullable=False),
    # One claim per registration (delegate and event) and version, even under concurrent submissions;
    # a rejected claim is resubmitted once, even by two requests at once.
    UniqueConstraint("registration_id", "claim_version", name="uq_travel_claim_version"),
    UniqueConstraint("supersedes", name="uq_travel_claims_supersedes"),
    Index("ix_travel_claims_quota", "workshop_id", "city_id", "funding"),
)
expert_visits = Table(
    "expert_visits",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("city_id", Uuid, nullable=False),
    Column("city_name", String(200), nullable=False),
    Column("european", Boolean, nullable=False),
    Column("visit_date", Date, nullable=False),
    Column("submitted_on", Date, nullable=False),
    Column("nights", Integer, nullable=False),
    Column("travellers", Integer, nullable=False),
    Column("coe_funded", Cents, nullable=False),
    Column("recharged", Cents, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    # One expert visit per city and day: a second submission is a duplicate, not a second visit.
    UniqueConstraint("city_id", "visit_date", name="uq_expert_visit_city_date"),
)
# Lines and decisions of claims and expert visits alike: `owner_id` is the claim's or the visit's id.
claim_lines = Table(
    "claim_lines",
    mapper.metadata,
    Column("owner_id", Uuid, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("amount", Cents, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("spent_on", Date),
    Column("receipt", String(500)),
    Column("units_per_eur", Micros),
    Column("rate_on", Date),
    Column("eur_amount", Cents, nullable=False),
    Column("eligible", Cents, nullable=False),
    Column("coe_funded", Cents, nullable=False),
    Column("city_borne", Cents, nullable=False),
    Column("rule", String(60), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("traveller", String(200)),
    Column("receipt_id", Uuid),  # an uploaded receipt (a delegate's claim line)
)
claim_decisions = Table(
    "claim_decisions",
    mapper.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("amount", Cents),
    Column("reason", Text),
    Column("paid_on", Date),
    Column("recorded_at", UtcDateTime, nullable=False),
)
# Receipts uploaded as files (services/travel/receipts.py): the bytes stay in the service's own
# database, with their checksum; one row per owner and content (an upload again finds it).
receipts = Table(
    "receipts",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(40), nullable=False),
    Column("size", Integer, nullable=False),
    Column("filename", String(200)),
    Column("owner_email", String(320), nullable=False),
    Column("city_id", Uuid, nullable=False),
    Column("uploaded_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("content", LargeBinary, nullable=False),
    UniqueConstraint("city_id", "owner_email", "sha256", name="uq_receipts_owner_sha256"),
)


# What travel learnt from other services and its rate tables: plain domain objects where a claim reads
# them (TravelUnitOfWork.claimant, claim_facts: no instrumentation to pay per claim); the mapped
# subclasses are what the consumer's handlers and the rate tables' routes load, change and add.


class StoredCity(KnownCity):
    pass


class StoredEvent(KnownEvent):
    pass


class StoredRegistration(Registration):
    pass


class StoredAllowanceRate(AllowanceRate):
    pass


class StoredExchangeRate(ExchangeRate):
    pass


mapper.map_imperatively(StoredCity, known_cities)
mapper.map_imperatively(StoredEvent, known_events)
mapper.map_imperatively(StoredRegistration, registrations)
mapper.map_imperatively(StoredAllowanceRate, allowance_rates)
mapper.map_imperatively(StoredExchangeRate, exchange_rates)


# The domain's claims, expert visits, lines and decisions are plain objects: a claim decided or shown
# (POST /claims, GET /claims/{id}) and a decision applied create them without the ORM's instrumentation,
# which cost more to create than the rest of their work (a mapped claim with two lines ~40 us, a plain
# one ~5). They are written as rows (Claims.insert, Claims.save_amended, ExpertVisits.insert,
# Decisions.record). The mapped subclasses below are what ORM queries load (lists, lookups).


class StoredLine(ClaimLine):
    """A claim's or an expert visit's line as the ORM loads it."""


class StoredDecision(Decision):
    """A decision as the ORM loads it."""


class StoredClaim(TravelClaim):
    """A claim as the ORM loads it (lists, the checks of a new claim or version): read, never changed."""


class StoredVisit(ExpertVisit):
    """An expert visit as the ORM loads it (lookups, lists): read, never changed."""


mapper.map_imperatively(StoredLine, claim_lines)
mapper.map_imperatively(StoredDecision, claim_decisions)
# The bytes are loaded only to be served: checks of ownership and the metadata leave them out.
mapper.map_imperatively(Receipt, receipts, properties={"content": deferred(receipts.c.content)})


def _owned(table: Table, child: type, order: Column, name: str) -> Any:
    # selectin: a page of claims loads its lines and decisions in one query each, never one per claim.
    # overlaps: claims and visits both own rows of the same table, never the same rows.
    return relationship(
        child,
        primaryjoin=lambda: table.c.id == foreign(order.table.c.owner_id),
        order_by=order,
        lazy="selectin",
        viewonly=True,  # written as rows, never through these objects
        overlaps=name,
    )


for aggregate, table in ((StoredClaim, travel_claims), (StoredVisit, expert_visits)):
    mapper.map_imperatively(
        aggregate,
        table,
        properties={
            "lines": _owned(table, StoredLine, claim_lines.c.position, "lines"),
            "decisions": _owned(table, StoredDecision, claim_decisions.c.id, "decisions"),
        },
    )

R = TypeVar("R", AllowanceRate, ExchangeRate)


class DatedRates(Generic[R]):
    """A dated rate table (allowance per night by country, exchange rate by currency): the rate in
    force on a date is the latest one dated on or before it."""

    def __init__(self, session, model: type[R], mapped: type[R], table: Table, key: str, dated: str, value: str) -> None:
        """`model`: the plain rate (`of`); `mapped`: its mapped subclass, what queries load and `put` adds."""
        self.session, self.model, self.mapped = session, model, mapped
        self.key, self.dated, self.value = table.c[key], table.c[dated], value

    async def in_force(self, key: str, on: date) -> R | None:
        query = select(self.mapped).where(self.key == key, self.dated <= on).order_by(self.dated.desc()).limit(1)
        return await self.session.scalar(query)

    def in_force_columns(self, key: Any, on: Any) -> tuple[Any, Any]:
        """`in_force` as two scalar subqueries (the rate's date, its value), to read along with other
        things in one statement; `of` makes the rate of what they return."""
        latest = self.key.table.c[self.value]
        return tuple(
            select(column).where(self.key == key, self.dated <= on).order_by(self.dated.desc()).limit(1).scalar_subquery()
            for column in (self.dated, latest)
        )

    def of(self, key: str, dated: date | None, value: Decimal | None) -> R | None:
        return None if dated is None else self.model(key, dated, value)

    async def stored(self, key: str, dated: date) -> Decimal | None:
        """The value stored for exactly this key and date, if any (what a `put` would replace)."""
        rate = await self.session.get(self.mapped, (key, dated))
        return None if rate is None else getattr(rate, self.value)

    async def put(self, key: str, dated: date, value: Decimal) -> R:
        rate = await self.session.get(self.mapped, (key, dated))
        if rate is None:
            rate = self.mapped(key, dated, value)
            self.session.add(rate)
        setattr(rate, self.value, value)
        return rate

    async def find(self, key: str | None, limit: int, offset: int) -> list[R]:
        query = select(self.mapped).order_by(self.key, self.dated).limit(limit).offset(offset)
        if key:
            query = query.where(self.key == key)
        return list(await self.session.scalars(query))


# A claim's registration, event and city in one statement, the event locked (PostgreSQL row lock;
# SQLite serialises writers anyway): the city's funded places for it are counted one claim at a time.
# Inner joins: no row when any of the three is unknown (and FOR UPDATE may not lock an outer join's side).
_CLAIMANT = (
    select(*registrations.c, *known_events.c, *known_cities.c)
    .join_from(registrations, known_events, known_events.c.workshop_id == registrations.c.workshop_id)
    .join(known_cities, known_cities.c.city_id == registrations.c.city_id)
    .where(registrations.c.registration_id == bindparam("registration_id"))
    .with_for_update(of=known_events)
)
_REGISTRATION, _EVENT = len(registrations.c), len(registrations.c) + len(known_events.c)
_CITY_COLUMNS = tuple(c.name for c in known_cities.c)
_CLAIM_COLUMNS = tuple(c.name for c in travel_claims.c)
_LINE_COLUMNS = tuple(c.name for c in claim_lines.c if c.name != "owner_id")
_INSERT_CLAIM, _INSERT_LINES = insert(travel_claims), insert(claim_lines)
_INSERT_VISIT, _VISIT_COLUMNS = insert(expert_visits), tuple(c.name for c in expert_visits.c)
_DECISION_COLUMNS = tuple(c.name for c in claim_decisions.c if c.name not in ("id", "owner_id"))
# A claim read as rows into a plain object (no identity map, no selectin loaders), in one statement:
# its row joined with its lines and its decisions, one row per (line, decision) pair (a claim has a
# few lines, at most 51, and a few decisions). Shown (the GET polled for decisions: one statement is
# one snapshot, so it needs no transaction around it, see Claims.shown), checked, or amended (locked).
_SHOWN = (
    select(travel_claims, *(claim_lines.c[name] for name in _LINE_COLUMNS), claim_decisions.c.id,
           *(claim_decisions.c[name] for name in _DECISION_COLUMNS))
    .select_from(travel_claims
                 .outerjoin(claim_lines, claim_lines.c.owner_id == travel_claims.c.id)
                 .outerjoin(claim_decisions, claim_decisions.c.owner_id == travel_claims.c.id))
    .where(travel_claims.c.id == bindparam("id"))
    .order_by(claim_lines.c.position, claim_decisions.c.id)
)
_SHOWN_LOCKED = _SHOWN.with_for_update(of=travel_claims)  # the claim's row only: its lines and decisions may be absent
_SHOWN_LINE = slice(len(_CLAIM_COLUMNS), len(_CLAIM_COLUMNS) + len(_LINE_COLUMNS))
_SHOWN_DECISION = slice(_SHOWN_LINE.stop + 1, None)  # after the decision's id
# What an amendment changes: the claim's stay, totals and status, and its lines (replaced).
_AMENDED = ("nights", "travel_days_without_night", "coe_funded", "city_borne", "status", "amended_on", "amendments")
_SAVE_AMENDED = update(travel_claims).where(travel_claims.c.id == bindparam("claim_id")).values(
    {name: bindparam(name) for name in _AMENDED})
_DROP_LINES = delete(claim_lines).where(claim_lines.c.owner_id == bindparam("claim_id"))


def _lines_rows(owner_id: UUID, lines: list[ClaimLine]) -> list[dict[str, Any]]:
    return [{"owner_id": owner_id, **{name: getattr(line, name) for name in _LINE_COLUMNS}} for line in lines]


@dataclass(frozen=True)
class ClaimFacts:
    """What deciding a new claim reads besides its claimant, in one statement (see
    `TravelUnitOfWork.claim_facts`)."""

    claimed: bool  # the registration has a claim already (any version)
    coe_funded_claims: int  # the city's live CoE-funded claims for the event (Claims.using_funded_quota)
    rates: Rates


class Claims(Keyed[TravelClaim]):
    """Claims are written as rows and read as rows into plain `TravelClaim`s; lists load `StoredClaim`s."""

    def __init__(self, session) -> None:
        super().__init__(session, StoredClaim, travel_claims.c.id)

    async def insert(self, claim: TravelClaim) -> None:
        """A new claim and its lines: two INSERTs (the lines' one executemany), no ORM flush."""
        await self.session.execute(_INSERT_CLAIM, {name: getattr(claim, name) for name in _CLAIM_COLUMNS})
        await self.session.execute(_INSERT_LINES, _lines_rows(claim.id, claim.lines))

    async def save_amended(self, claim: TravelClaim) -> None:
        """Write what `TravelClaim.amend` changed: the claim's row, and its lines replaced (the
        amendment event keeps what changed). The claim was read with `get_one(for_update=True)`."""
        await self.session.execute(_SAVE_AMENDED, {"claim_id": claim.id, **{name: getattr(claim, name) for name in _AMENDED}})
        await self.session.execute(_DROP_LINES, {"claim_id": claim.id})
        await self.session.execute(_INSERT_LINES, _lines_rows(claim.id, claim.lines))

    async def get_one(self, claim_id: UUID, may_see: Callable[[UUID, str], bool] | None = None, *, for_update: bool = False) -> TravelClaim:
        """The claim with its lines and decisions, or NotFound; also when `may_see(city_id,
        delegate_email)` says it is not the caller's. A plain object, outside the session: a change
        to it is saved by `save_amended`. `for_update` locks the claim's row until the commit
        (PostgreSQL; SQLite serialises writers anyway)."""
        rows = (await self.session.execute(_SHOWN_LOCKED if for_update else _SHOWN, {"id": claim_id})).all()
        if not rows or (may_see is not None and not may_see(rows[0].city_id, rows[0].delegate_email)):
            raise NotFound(f"no claim with id {claim_id}")
        lines: dict[int, ClaimLine] = {}
        decisions: dict[int, Decision] = {}
        for row in rows:
            line, decision_id = row[_SHOWN_LINE], row[_SHOWN_LINE.stop]
            if line[0] is not None and line[0] not in lines:
                lines[line[0]] = ClaimLine(**dict(zip(_LINE_COLUMNS, line)))
            if decision_id is not None and decision_id not in decisions:
                decisions[decision_id] = Decision(**dict(zip(_DECISION_COLUMNS, row[_SHOWN_DECISION])))
        return TravelClaim(
            **dict(zip(_CLAIM_COLUMNS, rows[0][:len(_CLAIM_COLUMNS)])),
            lines=list(lines.values()),  # in position order (the statement's)
            decisions=[decisions[key] for key in sorted(decisions)],  # in the order finance made them
        )

    async def shown(self, claim_id: UUID, may_see: Callable[[UUID, str], bool] | None = None) -> TravelClaim:
        """`get_one` for a route that only reads (GET /claims/{id}, which clients poll for finance's
        decision): its one statement outside any transaction on PostgreSQL (no BEGIN and ROLLBACK
        round trips: one round trip instead of three). The session must not have run anything before."""
        if self.session.bind.dialect.name == "postgresql":
            await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return await self.get_one(claim_id, may_see)

    async def latest_for(self, registration_id: UUID) -> TravelClaim | None:
        """The registration's claim, its latest version if it was resubmitted."""
        query = (select(StoredClaim).where(travel_claims.c.registration_id == registration_id)
                 .order_by(travel_claims.c.claim_version.desc()).limit(1))
        return await self.session.scalar(query)

    async def superseding(self, claim_id: UUID) -> TravelClaim | None:
        return await self.session.scalar(select(StoredClaim).where(travel_claims.c.supersedes == claim_id))

    async def using_funded_quota(self, workshop_id: UUID, city_id: UUID) -> int:
        """The city's live CoE-funded claims for the event (see TravelClaim.uses_funded_quota)."""
        return await self.session.scalar(_funded_quota_count(workshop_id, city_id))

    async def find(
        self, *, delegate_email: str | None, workshop_id: UUID | None, city_id: UUID | None, status: str | None, limit: int, offset: int,
        cities: set[UUID] | None = None, own_email: str | None = None,
    ) -> list[TravelClaim]:
        """`cities` / `own_email`: the caller's scope (a coordinator's city; a delegate's address and city)."""
        conditions = [
            condition
            for condition, wanted in (
                (travel_claims.c.city_id.in_(cities or ()), cities is not None),
                (func.lower(travel_claims.c.delegate_email) == (own_email or "").lower(), own_email),
            )
            if wanted
        ] + [
            condition
            for condition, wanted in (
                (func.lower(travel_claims.c.delegate_email) == (delegate_email or "").lower(), delegate_email),
                (travel_claims.c.workshop_id == workshop_id, workshop_id),
                (travel_claims.c.city_id == city_id, city_id),
                (travel_claims.c.status == status, status),
            )
            if wanted
        ]
        query = (
            select(StoredClaim)
            .where(and_(True, *conditions))
            .order_by(travel_claims.c.submitted_on, travel_claims.c.id)
            .limit(limit)
            .offset(offset)
        )
        return list(await self.session.scalars(query))


def _funded_quota_count(workshop_id: Any, city_id: Any) -> Any:
    return select(func.count()).select_from(travel_claims).where(
        travel_claims.c.workshop_id == workshop_id,
        travel_claims.c.city_id == city_id,
        travel_claims.c.funding == Funding.COE,
        travel_claims.c.status != ClaimStatus.REJECTED,
    )


_INSERT_DECISION = insert(claim_decisions)
_STATUS = {table: update(table).where(table.c.id == bindparam("claim_id")).values(status=bindparam("status"))
           for table in (travel_claims, expert_visits)}


class Decisions:
    """Finance's decisions on claims and expert visits, applied as rows: a batch reads the status of
    what it decides in one query per table; each decision is an INSERT and an UPDATE. (Not the ORM:
    loading each claim with its lines and decisions to append one cost more than the rest of the batch.)"""

    def __init__(self, session) -> None:
        self.session = session
        self._status: dict[UUID, tuple[Table, str] | None] = {}  # claim id -> its table and status; None: neither has it

    async def preload(self, claim_ids: set[UUID]) -> None:
        wanted = {claim_id for claim_id in claim_ids if claim_id not in self._status}
        if not wanted:
            return
        self._status.update(dict.fromkeys(wanted))
        for table in (travel_claims, expert_visits):  # expert visits only for the ids no claim has
            for claim_id, status in await self.session.execute(select(table.c.id, table.c.status).where(table.c.id.in_(wanted))):
                self._status[claim_id] = (table, status)
                wanted.discard(claim_id)
            if not wanted:
                break

    async def status(self, claim_id: UUID) -> str | None:
        """The claim's (or expert visit's) status, None when travel has neither."""
        await self.preload({claim_id})
        found = self._status[claim_id]
        return None if found is None else found[1]

    async def record(self, claim_id: UUID, decision: Decision) -> None:
        table, _ = self._status[claim_id]
        await self.session.execute(_INSERT_DECISION, {"owner_id": claim_id, **{name: getattr(decision, name) for name in _DECISION_COLUMNS}})
        await self.session.execute(_STATUS[table], {"claim_id": claim_id, "status": decision.status})
        self._status[claim_id] = (table, decision.status)


class ExpertVisits(Keyed[ExpertVisit]):
    """Expert visits are written as rows (`insert`); lookups and lists load `StoredVisit`s."""

    def __init__(self, session) -> None:
        super().__init__(session, StoredVisit, expert_visits.c.id)

    async def insert(self, visit: ExpertVisit) -> None:
        """A new expert visit and its lines (a duplicate of the city and day fails on its unique key)."""
        await self.session.execute(_INSERT_VISIT, {name: getattr(visit, name) for name in _VISIT_COLUMNS})
        if visit.lines:
            await self.session.execute(_INSERT_LINES, _lines_rows(visit.id, visit.lines))

    async def get_one(self, visit_id: UUID) -> ExpertVisit:
        if (visit := await self.get(visit_id)) is None:
            raise NotFound(f"no expert visit with id {visit_id}")
        return visit

    async def on(self, city_id: UUID, visit_date: date) -> ExpertVisit | None:
        return await self.session.scalar(
            select(StoredVisit).where(expert_visits.c.city_id == city_id, expert_visits.c.visit_date == visit_date)
        )

    async def find(self, *, city_id: UUID | None, status: str | None, limit: int, offset: int, cities: set[UUID] | None = None) -> list[ExpertVisit]:
        query = select(StoredVisit).order_by(expert_visits.c.visit_date, expert_visits.c.id).limit(limit).offset(offset)
        if cities is not None:
            query = query.where(expert_visits.c.city_id.in_(cities))
        if city_id:
            query = query.where(expert_visits.c.city_id == city_id)
        if status:
            query = query.where(expert_visits.c.status == status)
        return list(await self.session.scalars(query))


class Receipts:
    def __init__(self, session) -> None:
        self.session = session

    def add(self, receipt: Receipt) -> None:
        self.session.add(receipt)

    async def get(self, receipt_id: UUID, *, with_content: bool = False) -> Receipt | None:
        query = select(Receipt).where(receipts.c.id == receipt_id)
        return await self.session.scalar(query.options(undefer(Receipt.content)) if with_content else query)

    async def of_owner(self, city_id: UUID, owner_email: str, sha256: str) -> Receipt | None:
        """The owner's receipt with these bytes, if they uploaded them before."""
        return await self.session.scalar(select(Receipt).where(
            receipts.c.city_id == city_id, receipts.c.owner_email == owner_email.lower(), receipts.c.sha256 == sha256))

    async def among(self, ids: set[UUID]) -> dict[UUID, Receipt]:
        """The receipts with these ids (without their bytes): those a claim's lines name."""
        return {receipt.id: receipt for receipt in await self.session.scalars(select(Receipt).where(receipts.c.id.in_(ids)))}

_claim_facts_statements: dict[int, Any] = {}  # by number of exchange rates: built once each

REGISTRATION_EVENTS = (DelegateRegistered, RegistrationCancelled, RegistrationPromoted, RegistrationFundingChanged)
DECISIONS = (ReimbursementApproved, ReimbursementHeld, ReimbursementPaid, ReimbursementRejected)


class TravelUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "TravelUnitOfWork":
        await super().__aenter__()
        self.cities = Keyed(self.session, StoredCity, known_cities.c.city_id)
        self.workshops = Keyed(self.session, StoredEvent, known_events.c.workshop_id)
        self.registrations = Keyed(self.session, StoredRegistration, registrations.c.registration_id)
        self.claims = Claims(self.session)
        self.expert_visits = ExpertVisits(self.session)
        self.receipts = Receipts(self.session)
        self.decisions = Decisions(self.session)
        self.allowance_rates = DatedRates(self.session, AllowanceRate, StoredAllowanceRate, allowance_rates, "country", "valid_from", "eur_per_night")
        self.exchange_rates = DatedRates(self.session, ExchangeRate, StoredExchangeRate, exchange_rates, "currency", "quoted_on", "units_per_eur")
        return self

    async def claimant(self, registration_id: UUID) -> tuple[Registration, KnownCity, KnownEvent] | None:
        """The registration, its city and its event, the event locked until the commit, in one
        statement; None when any of them is unknown (the caller looks them up one by one to say which)."""
        row = (await self.session.execute(_CLAIMANT, {"registration_id": registration_id})).first()
        if row is None:
            return None
        city = KnownCity(**dict(zip(_CITY_COLUMNS, row[_EVENT:])))
        return Registration(*row[:_REGISTRATION]), city, KnownEvent(*row[_REGISTRATION:_EVENT])

    async def claim_facts(self, registration_id: UUID, event: KnownEvent, city_id: UUID, exchange: list[tuple[str, date]]) -> ClaimFacts:
        """In one statement, after `claimant` locked the event (so that the count includes every claim
        committed before): whether the registration has a claim, the city's CoE-funded claims for the
        event, the allowance rate in force on its first day and the exchange rate of each (currency, day).
        Rates are read with each claim, never cached: a rate set by another replica counts at once."""
        statement = _claim_facts_statements.get(len(exchange))
        if statement is None:
            statement = _claim_facts_statements[len(exchange)] = self._claim_facts_statement(len(exchange))
        parameters = {"registration_id": registration_id, "workshop_id": event.workshop_id, "city_id": city_id,
                      "country": event.host_country, "first_day": event.starts_on}
        for i, (currency, on) in enumerate(exchange):
            parameters |= {f"currency_{i}": currency, f"on_{i}": on}
        claimed, count, allowance_from, allowance, *quotes = (await self.session.execute(statement, parameters)).one()
        rates = Rates(
            self.allowance_rates.of(event.host_country, allowance_from, allowance),
            {(currency, on): self.exchange_rates.of(currency, quotes[2 * i], quotes[2 * i + 1]) for i, (currency, on) in enumerate(exchange)},
        )
        return ClaimFacts(claimed is not None, count, rates)

    def _claim_facts_statement(self, currencies: int) -> Any:
        latest = select(travel_claims.c.id).where(travel_claims.c.registration_id == bindparam("registration_id")).limit(1)
        count = _funded_quota_count(bindparam("workshop_id"), bindparam("city_id")).scalar_subquery()
        columns = [latest.scalar_subquery(), count, *self.allowance_rates.in_force_columns(bindparam("country"), bindparam("first_day"))]
        for i in range(currencies):
            columns += self.exchange_rates.in_force_columns(bindparam(f"currency_{i}"), bindparam(f"on_{i}"))
        return select(*columns)

    async def prefetch(self, events: list[Event]) -> None:
        await self.cities.preload(city_ids(events))
        await self.workshops.preload(
            {e.workshop_id for e in events if isinstance(e, WorkshopScheduled | WorkshopRescheduled | WorkshopCancelled)}
        )
        await self.registrations.preload({e.registration_id for e in events if isinstance(e, REGISTRATION_EVENTS)})
        # A decision's claim_id is a delegate's claim or an expert visit: look for both in bulk.
        await self.decisions.preload({e.claim_id for e in events if isinstance(e, DECISIONS)})
