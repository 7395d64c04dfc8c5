"""Finance tables mapped onto the domain classes, repositories and the unit of work."""

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean, Column, Date, Index, Integer, String, Table, UniqueConstraint, Uuid, inspect, insert, select, text, tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import registry

from contracts.events import (
    BudgetSet, CityJoined, CityLeft, CreditNoteIssued, Event, ExpertVisitClaimed, InvoiceIssued, PaymentReceived,
    ReimbursementApproved, ReimbursementHeld, ReimbursementPaid, ReimbursementRejected, TravelClaimed,
)
from services.common.db import Cents, Keyed, UnitOfWork, UtcDateTime
from services.finance.domain import ADMINISTRATION, LINES, ZERO, BudgetLine, Claim, Invoice, Member, Spending
from contracts.events import SpendingRecorded

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
    Column("credited", Cents, nullable=False, server_default="0"),
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
    # The same bank reference twice on one invoice is a double posting, not a second payment.
    UniqueConstraint("invoice_id", "reference", name="uq_payment_reference"),
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

mapper.map_imperatively(Member, members)
mapper.map_imperatively(Invoice, invoices)
mapper.map_imperatively(BudgetLine, budget_lines)
mapper.map_imperatively(Claim, claims)
mapper.map_imperatively(Spending, spending)


class Changes:
    """Tells the dashboard's streams that a change was committed (one per app, in-process)."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()

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
        super().__init__(session, Member, members.c.city_id)
        self.new: list[Member] = []  # inserted at commit (see FinanceUnitOfWork.commit)

    async def all(self) -> list[Member]:
        return list(await self.session.scalars(select(Member).order_by(members.c.name, members.c.city_id)))

    def add(self, member: Member) -> None:
        self.new.append(member)
        self._loaded[member.city_id] = member

    def name(self, city_id: UUID | None) -> str:
        member = self._loaded.get(city_id) if city_id else None
        return member.name if member else f"city {str(city_id)[:8]}"


class Invoices(Keyed[Invoice]):
    def __init__(self, session) -> None:
        super().__init__(session, Invoice, invoices.c.id)
        self._contributions: dict[tuple[UUID, int], Invoice] = {}
        self._cities_loaded: set[UUID] = set()
        self.new: list[Invoice] = []  # inserted at commit (see FinanceUnitOfWork.commit)
        self.new_payments: list[dict[str, Any]] = []  # inserted in bulk at commit, like the ledger
        self.new_credit_notes: list[dict[str, Any]] = []

    def fresh(self, invoice_id: UUID) -> None:
        """An id just made up in this transaction: nothing can have it yet, so no query will look for it."""
        self._loaded.setdefault(invoice_id, None)

    def add(self, invoice: Invoice) -> None:
        self.new.append(invoice)
        self._loaded[invoice.id] = invoice
        if invoice.kind == "contribution":
            self._contributions[(invoice.city_id, invoice.year)] = invoice

    async def preload_contributions(self, city_ids: set[UUID]) -> None:
        wanted = city_ids - self._cities_loaded
        if wanted:
            query = select(Invoice).where(invoices.c.kind == "contribution", invoices.c.city_id.in_(wanted))
            for invoice in await self.session.scalars(query):
                self._contributions[(invoice.city_id, invoice.year)] = self.remember(invoice)
            self._cities_loaded |= wanted

    async def contribution(self, city_id: UUID, year: int) -> Invoice | None:
        await self.preload_contributions({city_id})
        return self._contributions.get((city_id, year))

    async def get(self, invoice_id: UUID, *, lock: bool = False) -> Invoice | None:
        if lock:  # payments and credit notes on one invoice take turns (PostgreSQL; SQLite serialises writers)
            query = select(Invoice).where(invoices.c.id == invoice_id).with_for_update().execution_options(populate_existing=True)
            self._loaded[invoice_id] = await self.session.scalar(query)
        return await super().get(invoice_id)

    async def find(self, city_id: UUID | None, year: int | None, limit: int, offset: int) -> list[Invoice]:
        query = select(Invoice).order_by(invoices.c.year, invoices.c.issued_on, invoices.c.id).limit(limit).offset(offset)
        if city_id:
            query = query.where(invoices.c.city_id == city_id)
        if year:
            query = query.where(invoices.c.year == year)
        return list(await self.session.scalars(query))

    async def payment_reference_used(self, invoice_id: UUID, reference: str) -> bool:
        query = select(payments.c.id).where(payments.c.invoice_id == invoice_id, payments.c.reference == reference)
        return await self.session.scalar(query) is not None

    async def add_payment(self, **row: Any) -> None:
        self.new_payments.append(row)

    async def add_credit_note(self, **row: Any) -> None:
        self.new_credit_notes.append(row)


class Lines:
    """Budget lines, locked on first use in a transaction: the headroom check and the commitment it
    allows happen under the same row lock, so concurrent claims never overspend."""

    def __init__(self, session) -> None:
        self.session = session
        self._locked: dict[tuple[int, str], BudgetLine] = {}

    async def lock(self, keys: Iterable[tuple[int, str]]) -> None:
        wanted = sorted(set(keys) - self._locked.keys())  # always in the same order: no deadlocks
        if not wanted:
            return
        insert_ = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        missing = [
            {"year": year, "line": line, "allocation": ZERO, "received": ZERO, "committed": ZERO, "spent": ZERO, "held": 0, "is_set": False}
            for year, line in wanted
        ]
        await self.session.execute(insert_(budget_lines).on_conflict_do_nothing(index_elements=["year", "line"]), missing)
        query = (
            select(BudgetLine)
            .where(tuple_(budget_lines.c.year, budget_lines.c.line).in_(wanted))
            .order_by(budget_lines.c.year, budget_lines.c.line)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for line in await self.session.scalars(query):
            self._locked[(line.year, line.line)] = line

    async def get(self, year: int, line: str) -> BudgetLine:
        if (year, line) not in self._locked:
            await self.lock([(year, line)])
        found = self._locked[(year, line)]
        if inspect(found).expired_attributes:  # a rolled-back savepoint expired it
            await self.session.refresh(found)
        return found

    async def year(self, year: int) -> list[BudgetLine]:
        await self.lock((year, line) for line in LINES)
        return [self._locked[(year, line)] for line in LINES]


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


class Spendings:
    def __init__(self, session) -> None:
        self.session = session

    async def get(self, spending_id: UUID) -> Spending | None:
        return await self.session.get(Spending, spending_id)

    def add(self, entry: Spending) -> None:
        self.session.add(entry)

    async def find(self, year: int) -> list[Spending]:
        query = select(Spending).where(spending.c.year == year).order_by(spending.c.recorded_on, spending.c.id)
        return list(await self.session.scalars(query))


class FinanceUnitOfWork(UnitOfWork):
    async def __aenter__(self) -> "FinanceUnitOfWork":
        await super().__aenter__()
        self.members = Members(self.session)
        self.invoices = Invoices(self.session)
        self.lines = Lines(self.session)
        self.claims = Claims(self.session)
        self.spendings = Spendings(self.session)
        self._ledger: list[dict[str, Any]] = []
        self._activity: list[dict[str, Any]] = []
        return self

    async def prefetch(self, events: list[Event]) -> None:
        """Load in a few queries what a batch touches, and lock the budget lines it may commit on."""
        joined = {e.city_id for e in events if isinstance(e, CityJoined)}
        await self.members.preload(
            {e.city_id for e in events if isinstance(e, CityJoined | CityLeft | InvoiceIssued | TravelClaimed | ExpertVisitClaimed)}
        )
        await self.invoices.preload_contributions(joined)
        await self.invoices.preload({e.invoice_id for e in events if isinstance(e, InvoiceIssued | PaymentReceived | CreditNoteIssued)})
        await self.claims.preload({e.claim_id for e in events if hasattr(e, "claim_id")})
        keys: set[tuple[int, str]] = set()
        for e in events:
            if isinstance(e, TravelClaimed) and e.coe_funded > 0:
                keys.add((e.event_year, e.budget_line))
            elif isinstance(e, ExpertVisitClaimed) and e.coe_funded > 0:
                keys.add((e.visit_date.year, "expert_visits"))
            elif isinstance(e, ReimbursementApproved | ReimbursementHeld | SpendingRecorded):
                keys.add((e.year, e.budget_line))
            elif isinstance(e, BudgetSet):
                keys.update((e.year, line) for line in LINES)
            elif isinstance(e, PaymentReceived | CreditNoteIssued):
                invoice = await self.invoices.get(e.invoice_id)
                if invoice and invoice.kind == "contribution":
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
                (activity, self._activity), (payments, self.invoices.new_payments), (credit_notes, self.invoices.new_credit_notes)]

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        pending = [len(rows) for _, rows in self._rows()]
        try:
            async with super().savepoint():
                yield
        except BaseException:
            for (_, rows), keep in zip(self._rows(), pending):
                del rows[keep:]
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
        await super().commit()
        if changes := self.session.info.get("finance_changes"):
            changes.notify()

