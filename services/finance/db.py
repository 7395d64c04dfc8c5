"""Finance tables mapped onto the domain classes, repositories and the unit of work."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from sqlalchemy import (
    Boolean, Column, Date, Index, Integer, String, Table, UniqueConstraint, Uuid, delete, func, inspect, insert, select, text,
    tuple_, update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import registry

from contracts.events import (
    BudgetSet, CityJoined, CityLeft, CreditApplied, CreditNoteIssued, CreditRefunded, Event, ExpertVisitClaimed,
    InvoiceIssued, JoinDateCorrected, PaymentReceived, PaymentReversed, ReimbursementApproved, ReimbursementHeld,
    ReimbursementPaid, ReimbursementRejected, ReimbursementReopened, SpendingRecorded, SpendingReversed,
    TravelClaimAmended, TravelClaimed,
)
from services.common.db import Cents, Keyed, UnitOfWork, UtcDateTime, advisory_key, one_of
from services.finance.domain import (
    ADMINISTRATION, LINES, ZERO, BudgetLine, Claim, Credit, Invoice, Member, Payment, Spending,
)

mapper = registry()

FIRST = "00000000-0000-0000-0000-000000000000"  # stands for "replaces nothing" in the unique index

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
    Column("credited", Cents, nullable=False, server_default="0"),
    Column("reason", String(500)),
    Column("replaces", Uuid),
    Column("number", String(30), unique=True),  # the legal number (ICC-2027-0001); None only before numbering
    # One contribution per city and year, whatever is replayed or run concurrently; a year owed
    # again after its invoice was cancelled gets one more, which names the one it replaces.
    Index(
        "uq_contribution_city_year_replaces",
        "city_id",
        "year",
        text(f"coalesce(replaces, '{FIRST}')"),
        unique=True,
        sqlite_where=text("kind = 'contribution'"),
        postgresql_where=text("kind = 'contribution'"),
    ),
)

payments = Table(
    "payments",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),  # the id of its PaymentReceived event
    Column("invoice_id", Uuid, nullable=False),
    Column("city_id", Uuid, nullable=False),
    Column("amount", Cents, nullable=False),
    Column("applied", Cents, nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("reference", String(200), nullable=False),
    Column("reversed_on", Date),
    Column("reversal_reason", String(500)),
    # The same bank reference twice on one invoice is a double posting, not a second payment.
    UniqueConstraint("invoice_id", "reference", name="uq_payment_reference"),
    Index("ix_payments_invoice_id", "invoice_id"),
)

credits = Table(
    "credits",
    mapper.metadata,
    Column("city_id", Uuid, primary_key=True),
    Column("balance", Cents, nullable=False),
)

contribution_runs = Table(
    "contribution_runs",
    mapper.metadata,
    Column("year", Integer, primary_key=True),
    Column("run_on", Date, nullable=False),
)

credit_notes = Table(
    "credit_notes",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("invoice_id", Uuid, nullable=False, index=True),
    Column("city_id", Uuid, nullable=False),
    Column("amount", Cents, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("number", String(30), unique=True),  # ICC-CN-2027-0001
)

# The next legal number of each series and year of issue. Taken with UPDATE ... RETURNING in the
# transaction that issues the document: the row lock makes issuers take turns, and a rollback gives
# the number back (a sequence would not: gaps).
document_numbers = Table(
    "document_numbers",
    mapper.metadata,
    Column("series", String(10), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("next", Integer, nullable=False),
)

budget_lines = Table(
    "budget_lines",
    mapper.metadata,
    Column("year", Integer, primary_key=True),
    Column("line", String(40), primary_key=True),
    Column("allocation", Cents, nullable=False),
    Column("received", Cents, nullable=False),
    Column("committed", Cents, nullable=False),
    Column("spent", Cents, nullable=False),
    Column("held", Integer, nullable=False),
    Column("is_set", Boolean, nullable=False),
    Column("threshold_reached", Integer, nullable=False, server_default="0"),  # 0, 80 or 90: the last published
)

claims = Table(
    "claims",
    mapper.metadata,
    Column("claim_id", Uuid, primary_key=True),
    Column("kind", String(20)),
    Column("city_id", Uuid),
    Column("european", Boolean),
    Column("budget_line", String(40)),
    Column("year", Integer),
    Column("amount", Cents, nullable=False),
    Column("city_borne", Cents, nullable=False),
    Column("recharged", Cents, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(500)),
    Column("held_since", UtcDateTime),
    Column("paid_amount", Cents, nullable=False),
    Column("paid_on", Date),
    Column("supersedes", Uuid),
    Column("claim_version", Integer, nullable=False, server_default="1"),
    Index("ix_claims_year_status", "year", "status"),
)

spending = Table(
    "spending",
    mapper.metadata,
    Column("id", Uuid, primary_key=True),
    Column("year", Integer, nullable=False),
    Column("budget_line", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount", Cents, nullable=False),
    Column("reference", String(200), nullable=False),
    Column("recorded_on", Date, nullable=False),
    Column("open", Cents, nullable=False),
    Column("spent", Cents, nullable=False),
    Column("reversed_on", Date),
    Column("reversal_reason", String(500)),
)

# Every money-moving fact, with the event that made it: each figure is a sum of these rows.
ledger = Table(
    "ledger",
    mapper.metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("correlation_id", String(64)),
    Column("occurred_on", Date, nullable=False),
    Column("year", Integer, nullable=False),
    Column("account", String(20), nullable=False),  # invoiced | credited | received | credit | allocation | committed | spent
    Column("invoice_kind", String(40)),
    Column("budget_line", String(40)),
    Column("city_id", Uuid),
    Column("ref", Uuid),  # the invoice, claim or spending the fact is about
    Column("amount", Cents, nullable=False),
    Index("ix_ledger_year_account", "year", "account"),
)

# The events finance applied or emitted, newest last: the dashboard's feed.
activity = Table(
    "activity",
    mapper.metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64)),
    Column("type", String(60), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False, index=True),
    Column("summary", String(500), nullable=False),
)


class StoredMember(Member):
    """A member loaded from the database: the ORM tracks its changes. Members finance learns of in
    a transaction are plain `Member`s, inserted at commit (FinanceUnitOfWork.commit): a mapped
    object costs ~4 us of instrumentation to create, a plain one 0.2."""


class StoredInvoice(Invoice):
    """An invoice loaded from the database (see StoredMember): new invoices are plain `Invoice`s
    (2 us to create against 9 mapped)."""


mapper.map_imperatively(StoredMember, members)
mapper.map_imperatively(StoredInvoice, invoices)
mapper.map_imperatively(BudgetLine, budget_lines)
mapper.map_imperatively(Claim, claims)
mapper.map_imperatively(Spending, spending)
mapper.map_imperatively(Payment, payments)
mapper.map_imperatively(Credit, credits)


class Changes:
    """Tells the dashboard's streams that a change was committed (one per app). In this process
    directly; on PostgreSQL (`schema` given) the other replicas too: each commit NOTIFYs CHANNEL
    with `shout` (the schema and this process), and every process listens (app.py)."""

    CHANNEL = "icc_finance_changes"

    def __init__(self, schema: str | None = None) -> None:
        self.version = 0
        self._changed = asyncio.Event()
        self._schema = schema
        self.shout = f"{schema}:{uuid4().hex}" if schema else None

    def heard(self, payload: str | None) -> None:
        """A notification (None: the listener (re)connected, it may have missed some). Its own
        were signalled at commit, other schemas' (another deployment) are not ours."""
        if payload is None or (payload != self.shout and payload.rpartition(":")[0] == self._schema):
            self.notify()

    def notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Whether something changed after version `seen` (waiting up to `timeout` seconds for it)."""
        if self.version != seen:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Members(Keyed[Member]):
    def __init__(self, session) -> None:
        super().__init__(session, StoredMember, members.c.city_id)
        self.new: list[Member] = []  # inserted at commit (see FinanceUnitOfWork.commit)

    async def all(self) -> list[Member]:
        return list(await self.session.scalars(select(StoredMember).order_by(members.c.name, members.c.city_id)))

    def add(self, member: Member) -> None:
        self.new.append(member)
        self._loaded[member.city_id] = member

    def forget(self, made: list[Member]) -> None:
        """Members made in a savepoint that was rolled back: they do not exist."""
        for member in made:
            self._loaded.pop(member.city_id, None)

    def name(self, city_id: UUID | None) -> str:
        member = self._loaded.get(city_id) if city_id else None
        return member.name if member else f"city {str(city_id)[:8]}"


class Invoices(Keyed[Invoice]):
    def __init__(self, session) -> None:
        super().__init__(session, StoredInvoice, invoices.c.id)
        self._contributions: dict[UUID, list[Invoice]] = {}  # by city, cancelled ones too
        self.new: list[Invoice] = []  # inserted at commit (see FinanceUnitOfWork.commit)
        self.new_credit_notes: list[dict[str, Any]] = []  # inserted in bulk at commit, like the ledger
        self._issuing: dict[UUID, Invoice] = {}

    def issuing(self, invoice: Invoice) -> None:
        """An invoice the rules just made up, about to be issued: its id is fresh, so no query looks
        for it, and the projection of its InvoiceIssued stores this very object (`made`) rather
        than building a copy (each mapped object costs ~8 us of instrumentation)."""
        self._loaded.setdefault(invoice.id, None)
        self._issuing[invoice.id] = invoice

    def made(self, invoice_id: UUID) -> Invoice | None:
        return self._issuing.pop(invoice_id, None)

    def forget(self, made: list[Invoice]) -> None:
        """Invoices made in a savepoint that was rolled back: they do not exist."""
        for invoice in made:
            self._loaded.pop(invoice.id, None)
            self._issuing.pop(invoice.id, None)
            if invoice in (of_city := self._contributions.get(invoice.city_id, [])):
                of_city.remove(invoice)

    def add(self, invoice: Invoice) -> None:
        self.new.append(invoice)
        self._loaded[invoice.id] = invoice
        if invoice.kind == "contribution":
            self._contributions.setdefault(invoice.city_id, []).append(invoice)

    async def preload_contributions(self, city_ids: set[UUID]) -> None:
        # Not `city_ids - self._contributions.keys()`: that hashes every key of the dict, per event.
        wanted = {city_id for city_id in city_ids if city_id not in self._contributions}
        if wanted:
            query = select(StoredInvoice).where(invoices.c.kind == "contribution", one_of(self.session, invoices.c.city_id, wanted))
            found: dict[UUID, list[Invoice]] = {city_id: [] for city_id in wanted}
            for invoice in await self.session.scalars(query):
                found[invoice.city_id].append(self.remember(invoice))
            self._contributions.update(found)

    async def contributions_of(self, city_id: UUID) -> list[Invoice]:
        await self.preload_contributions({city_id})
        return list(self._contributions[city_id])


    async def get(self, invoice_id: UUID, *, lock: bool = False) -> Invoice | None:
        if lock:  # payments and credit notes on one invoice take turns (PostgreSQL; SQLite serialises writers)
            query = select(StoredInvoice).where(invoices.c.id == invoice_id).with_for_update().execution_options(populate_existing=True)
            self._loaded[invoice_id] = await self.session.scalar(query)
        return await super().get(invoice_id)

    async def find(self, city_id: UUID | None, year: int | None, limit: int, offset: int, cities: set[UUID] | None = None) -> list[Invoice]:
        """`cities`: only these cities' (a coordinator's scope); None: all."""
        query = select(StoredInvoice).order_by(invoices.c.year, invoices.c.issued_on, invoices.c.id).limit(limit).offset(offset)
        if cities is not None:
            query = query.where(invoices.c.city_id.in_(cities))
        if city_id:
            query = query.where(invoices.c.city_id == city_id)
        if year:
            query = query.where(invoices.c.year == year)
        return list(await self.session.scalars(query))

    async def add_credit_note(self, **row: Any) -> None:
        self.new_credit_notes.append(row)


class Payments(Keyed[Payment]):
    def __init__(self, session) -> None:
        super().__init__(session, Payment, payments.c.id)

    async def reference_used(self, invoice_id: UUID, reference: str) -> bool:
        query = select(payments.c.id).where(payments.c.invoice_id == invoice_id, payments.c.reference == reference)
        return await self.session.scalar(query) is not None

    async def of_invoice(self, invoice_id: UUID) -> list[Payment]:
        query = select(Payment).where(payments.c.invoice_id == invoice_id).order_by(payments.c.paid_on, payments.c.id)
        return [self.remember(payment) for payment in await self.session.scalars(query)]


K = TypeVar("K")
R = TypeVar("R")


class Locked(Generic[K, R]):
    """Rows of a running balance, created blank on first use and locked until the commit: a check
    and the change it allows happen under the same row lock, so concurrent requests never take a
    balance below zero (PostgreSQL; SQLite serialises writers)."""

    def __init__(self, session, model: type[R], table: Table, key: Callable[[R], K], blank: Callable[[K], dict[str, Any]]) -> None:
        self.session, self.model, self.table, self.key, self.blank = session, model, table, key, blank
        self._locked: dict[K, R] = {}

    async def lock(self, keys: Iterable[K]) -> None:
        wanted = sorted(set(keys) - self._locked.keys())  # always in the same order: no deadlocks
        if not wanted:
            return
        insert_ = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        primary = [column.name for column in self.table.primary_key]
        await self.session.execute(insert_(self.table).on_conflict_do_nothing(index_elements=primary), [self.blank(k) for k in wanted])
        columns = [self.table.c[name] for name in primary]
        condition = tuple_(*columns).in_(wanted) if len(columns) > 1 else columns[0].in_(wanted)
        query = select(self.model).where(condition).order_by(*columns).with_for_update().execution_options(populate_existing=True)
        for row in await self.session.scalars(query):
            self._locked[self.key(row)] = row

    def loaded(self) -> list[R]:
        return list(self._locked.values())

    async def row(self, key: K) -> R:
        if key not in self._locked:
            await self.lock([key])
        found = self._locked[key]
        if inspect(found).expired_attributes:  # a rolled-back savepoint expired it
            await self.session.refresh(found)
        return found


class Lines(Locked[tuple[int, str], BudgetLine]):
    """Budget lines: the headroom check and the commitment it allows happen under the same row lock,
    so concurrent claims never overspend."""

    def __init__(self, session) -> None:
        super().__init__(
            session, BudgetLine, budget_lines, lambda line: (line.year, line.line),
            lambda key: {"year": key[0], "line": key[1], "allocation": ZERO, "received": ZERO, "committed": ZERO,
                         "spent": ZERO, "held": 0, "is_set": False, "threshold_reached": 0},
        )

    async def get(self, year: int, line: str) -> BudgetLine:
        return await self.row((year, line))

    async def year(self, year: int) -> list[BudgetLine]:
        await self.lock((year, line) for line in LINES)
        return [await self.row((year, line)) for line in LINES]


class Credits(Locked[UUID, Credit]):
    """Each city's credit: applied or refunded under its row lock, never below zero."""

    def __init__(self, session) -> None:
        super().__init__(session, Credit, credits, lambda credit: credit.city_id,
                         lambda city_id: {"city_id": city_id, "balance": ZERO})

    async def of(self, city_id: UUID) -> Credit:
        return await self.row(city_id)


class Numbers:
    """Legal numbers, gap-free per series and year of issue (see document_numbers).

    A transaction takes a counter's row once (the UPDATE locks it until the commit, so no other
    transaction numbers that series meanwhile) and counts on in memory; `write` stores where it
    got to, just before the commit. A batch of 500 invoices is one UPDATE, not 500 (a profile of a
    PostgreSQL burst put a sixth of finance's CPU in the per-invoice UPDATE)."""

    def __init__(self, session) -> None:
        self.session = session
        self._next: dict[tuple[str, int], int] = {}  # the next number of each counter this transaction holds
        self._stored: dict[tuple[str, int], int] = {}  # what its row says
        self._transaction: object = None  # the transaction holding those rows

    def _ours(self) -> None:
        """Counters are held by one transaction: after a commit or a rollback, take them afresh."""
        transaction = self.session.sync_session.get_transaction()
        if transaction is not self._transaction:
            self._next, self._stored, self._transaction = {}, {}, transaction

    async def take(self, series: str, year: int) -> str:
        key = (series, year)
        self._ours()
        if key not in self._next:
            t = document_numbers
            bump = update(t).where(t.c.series == series, t.c.year == year).values(next=t.c.next + 1).returning(t.c.next)
            taken = await self.session.scalar(bump)
            if taken is None:  # the year's first: create its counter (a concurrent first waits on the row, then bumps it)
                insert_ = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
                await self.session.execute(insert_(t).values(series=series, year=year, next=1).on_conflict_do_nothing())
                taken = await self.session.scalar(bump)
            self._next[key] = self._stored[key] = taken
            return f"{series}-{year}-{taken - 1:04d}"
        number = self._next[key]
        self._next[key] = number + 1
        return f"{series}-{year}-{number:04d}"

    def held(self) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        """Where the counters stand (a savepoint gives back the numbers taken after it)."""
        return dict(self._next), dict(self._stored)

    def give_back(self, held: tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]) -> None:
        self._next, self._stored = dict(held[0]), dict(held[1])

    async def write(self) -> None:
        """Store the counters taken on in memory (their rows are this transaction's since `take`)."""
        self._ours()
        t = document_numbers
        for (series, year), next_ in self._next.items():
            if next_ != self._stored[series, year]:
                await self.session.execute(update(t).where(t.c.series == series, t.c.year == year).values(next=next_))
                self._stored[series, year] = next_

    async def restore(self) -> None:
        """Counters from the numbers held (after a rebuild: the numbers came from the events)."""
        highest: dict[tuple[str, int], int] = {}
        for table in (invoices, credit_notes):
            for (number,) in await self.session.execute(select(table.c.number).where(table.c.number.is_not(None))):
                series, year, n = number.rsplit("-", 2)
                highest[series, int(year)] = max(highest.get((series, int(year)), 0), int(n))
        await self.session.execute(delete(document_numbers))
        if highest:
            await self.session.execute(insert(document_numbers), [
                {"series": series, "year": year, "next": n + 1} for (series, year), n in highest.items()
            ])


# Joins and runs take turns on PostgreSQL (SQLite serialises writers anyway): a join holds this lock
# shared from reading the years run until its commit, a run holds it alone. Otherwise, under READ
# COMMITTED, a join could miss a run being recorded while the run missed the join being committed,
# and the city would never be invoiced for that year.
ROSTER_LOCK = advisory_key("icc.finance.contribution-roster")


class Runs:
    """The years an annual contribution run was done for."""

    def __init__(self, session) -> None:
        self.session = session
        self._years: set[int] | None = None

    async def _lock(self, function: str) -> None:
        if self.session.bind.dialect.name == "postgresql":
            await self.session.execute(text(f"SELECT {function}(:key)"), {"key": ROSTER_LOCK})

    async def years(self) -> set[int]:
        """As a join must see them: waits for a run under way to commit."""
        if self._years is None:
            await self._lock("pg_advisory_xact_lock_shared")
            self._years = set(await self.session.scalars(select(contribution_runs.c.year)))
        return self._years

    async def start(self) -> None:
        """Before a run reads the members: waits for joins under way to commit, and holds off new ones."""
        await self._lock("pg_advisory_xact_lock")

    async def add(self, year: int, run_on: date) -> None:
        if year not in await self.years():
            await self.session.execute(insert(contribution_runs), [{"year": year, "run_on": run_on}])
            self._years.add(year)


class Claims(Keyed[Claim]):
    def __init__(self, session) -> None:
        super().__init__(session, Claim, claims.c.claim_id)

    async def held_on(self, year: int, line: str) -> list[Claim]:
        """The claims waiting on a line, first come first served."""
        query = (
            select(Claim)
            .where(claims.c.year == year, claims.c.budget_line == line, claims.c.status == "held")
            .order_by(claims.c.held_since, claims.c.claim_id)
        )
        return [self.remember(claim) for claim in await self.session.scalars(query)]

    async def find(self, status: str | None, year: int | None, line: str | None, limit: int, offset: int) -> list[Claim]:
        query = select(Claim).order_by(claims.c.held_since.is_(None), claims.c.held_since, claims.c.claim_id)
        for column, value in ((claims.c.status, status), (claims.c.year, year), (claims.c.budget_line, line)):
            if value is not None:
                query = query.where(column == value)
        return list(await self.session.scalars(query.limit(limit).offset(offset)))


class Spendings(Keyed[Spending]):
    def __init__(self, session) -> None:
        super().__init__(session, Spending, spending.c.id)

    async def find(self, year: int) -> list[Spending]:
        query = select(Spending).where(spending.c.year == year).order_by(spending.c.recorded_on, spending.c.id)
        return list(await self.session.scalars(query))


# Finance's facts about invoices that move a city's credit.
CREDIT_FACTS = (PaymentReceived, CreditNoteIssued, PaymentReversed, CreditApplied, CreditRefunded)


class FinanceUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "FinanceUnitOfWork":
        await super().__aenter__()
        self.members = Members(self.session)
        self.invoices = Invoices(self.session)
        self.payments = Payments(self.session)
        self.credits = Credits(self.session)
        self.runs = Runs(self.session)
        self.numbers = Numbers(self.session)
        self.lines = Lines(self.session)
        self.claims = Claims(self.session)
        self.spendings = Spendings(self.session)
        self._ledger: list[dict[str, Any]] = []
        self._activity: list[dict[str, Any]] = []
        return self

    async def prefetch(self, events: list[Event]) -> None:
        """Load in a few queries what a batch touches, and lock the budget lines it may commit on."""
        cities = {e.city_id for e in events if isinstance(e, CityJoined | CityLeft | JoinDateCorrected)}
        await self.members.preload(
            cities | {e.city_id for e in events if isinstance(e, InvoiceIssued | TravelClaimed | ExpertVisitClaimed)}
        )
        await self.invoices.preload_contributions(cities)
        # The field, asked of the event's class: hasattr on a pydantic event without it raises inside.
        await self.invoices.preload({e.invoice_id for e in events if "invoice_id" in type(e).model_fields})
        await self.payments.preload({e.payment_id for e in events if isinstance(e, PaymentReversed)})
        await self.claims.preload({e.claim_id for e in events if "claim_id" in type(e).model_fields})
        keys: set[tuple[int, str]] = set()
        for e in events:
            if isinstance(e, TravelClaimed | TravelClaimAmended):
                keys.add((e.event_year, e.budget_line))
            elif isinstance(e, ExpertVisitClaimed):
                keys.add((e.visit_date.year, "expert_visits"))
            elif isinstance(e, ReimbursementApproved | ReimbursementHeld | ReimbursementReopened | SpendingRecorded | SpendingReversed):
                keys.add((e.year, e.budget_line))
            elif isinstance(e, BudgetSet):
                keys.update((e.year, line) for line in LINES)
            elif isinstance(e, CREDIT_FACTS) and "invoice_id" in type(e).model_fields:
                invoice = await self.invoices.get(e.invoice_id)
                if invoice and invoice.funds_administration:
                    keys.add((invoice.year, ADMINISTRATION))
            elif isinstance(e, ReimbursementPaid | ReimbursementRejected):
                claim = await self.claims.get(e.claim_id)
                if claim and claim.year is not None and claim.budget_line:
                    keys.add((claim.year, claim.budget_line))
        await self.lines.lock(keys)

    def record_ledger(self, **row: Any) -> None:
        self._ledger.append(row)

    def record_activity(self, event_id: Any, type_: str, occurred_at: datetime, summary: str) -> None:
        self._activity.append(
            {"event_id": str(event_id) if event_id else None, "type": type_, "occurred_at": occurred_at, "summary": summary[:500]}
        )

    def _rows(self) -> list[tuple[Table, list[Any]]]:
        """What this transaction inserts at commit, per table: the batch's new members and invoices
        (the objects, read at commit so that later changes in the transaction count), and its
        ledger, feed, payment and credit note rows."""
        return [(members, self.members.new), (invoices, self.invoices.new), (ledger, self._ledger),
                (activity, self._activity), (credit_notes, self.invoices.new_credit_notes)]

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        pending = [len(rows) for _, rows in self._rows()]
        # New members and invoices are not in the ORM's session, so its rollback cannot expire them:
        # what a failing handler changed on them is put back from these copies.
        made = [(thing, {key: getattr(thing, key) for key in table.columns.keys()})
                for table, things in ((members, self.members.new), (invoices, self.invoices.new)) for thing in things]
        numbers = self.numbers.held()
        try:
            async with super().savepoint():
                yield
        except BaseException:
            self.members.forget(self.members.new[pending[0]:])
            self.invoices.forget(self.invoices.new[pending[1]:])
            for (_, rows), keep in zip(self._rows(), pending):
                del rows[keep:]
            for thing, values in made:
                for key, value in values.items():
                    setattr(thing, key, value)
            self.numbers.give_back(numbers)  # an event rolled back gives its numbers back: no gap
            raise

    async def commit(self) -> None:
        # One multi-row INSERT per table, not one statement (and one autoflush) per event. New
        # members and invoices go in the same way: the ORM would only track objects nobody reloads
        # in this transaction (the repositories keep them), at several times the cost.
        for table, rows in self._rows():
            if rows:
                if table is members or table is invoices:  # the objects' own values, past the instrumentation
                    keys = table.columns.keys()
                    rows = [{key: values[key] for key in keys} for values in (vars(thing) for thing in rows)]
                await self.session.execute(insert(table), rows)
        for _, rows in self._rows():
            rows.clear()
        await self.numbers.write()
        changes = self.session.info.get("finance_changes")
        if changes is not None and changes.shout:  # PostgreSQL: the other replicas hear it once this commits
            await self.session.execute(select(func.pg_notify(Changes.CHANNEL, changes.shout)))
        await super().commit()
        if changes is not None:
            changes.notify()

