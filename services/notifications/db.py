"""Notifications tables: what it keeps of others' facts to address and word its mails, the people's
languages, facts waiting for the fact that names their recipient, and the mail outbox."""

from typing import Any

from sqlalchemy import JSON, Column, Date, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint, Uuid, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sqlalchemy.orm import registry

from services.common.db import Cents, UnitOfWork, UtcDateTime, utcnow

mapper = registry()  # tables only (no domain classes): its metadata is what the migrations must build
metadata = mapper.metadata

cities = Table(
    "cities", metadata,
    Column("city_id", Uuid, primary_key=True),
    Column("name", String(200)),
    Column("contact", String(320)),
)
claims = Table(
    "claims", metadata,
    Column("claim_id", Uuid, primary_key=True),
    Column("delegate_email", String(320), nullable=False),
    Column("coe_funded", Cents, nullable=False),
    Column("city_borne", Cents, nullable=False),
)
workshops = Table(
    "workshops", metadata,
    Column("workshop_id", Uuid, primary_key=True),
    Column("title", String(300), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
)
registrations = Table(
    "registrations", metadata,
    Column("registration_id", Uuid, primary_key=True),
    Column("workshop_id", Uuid, nullable=False, index=True),
    Column("delegate_name", String(200), nullable=False),
    Column("delegate_email", String(320), nullable=False),
    Column("status", String(20), nullable=False),
)
invoices = Table(
    "invoices", metadata,
    Column("invoice_id", Uuid, primary_key=True),
    Column("city_id", Uuid, nullable=False),
    Column("number", String(40)),
    Column("amount", Cents, nullable=False),
    Column("balance", Cents, nullable=False),  # still owed: amount less payments, credit notes and credit applied
    Column("due_on", Date, nullable=False, index=True),
)
recipients = Table(
    "recipients", metadata,
    Column("email", String(320), primary_key=True),
    Column("language", String(2), nullable=False),
)
# A fact that arrived before the fact naming its recipient (topics are not ordered with each other):
# applied again when that one comes.
waiting = Table(
    "waiting", metadata,
    Column("event_id", String(200), primary_key=True),
    Column("waits_for", String(80), nullable=False, index=True),  # claim:<id> | city:<id>
    Column("type", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
)
mails = Table(
    "mails", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),  # the fact's id, or dunning-<days>:<invoice id>
    Column("recipient", String(320), nullable=False),
    Column("language", String(2), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("body", Text, nullable=False),
    Column("attachment_name", String(200)),
    Column("attachment", LargeBinary),
    Column("status", String(10), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    UniqueConstraint("event_id", "recipient", name="uq_mails_event_recipient"),  # one mail per fact and recipient
    Index("ix_mails_status_next", "status", "next_attempt_at"),
)


class NotificationsUnitOfWork(UnitOfWork):
    def upsert(self, table: Table, row: dict[str, Any], *, keep: tuple[str, ...] = ()) -> Any:
        """Insert `row`, or update it in place on its primary key (columns in `keep` are left alone)."""
        insert_ = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        statement = insert_(table).values(**row)
        key = [c.name for c in table.primary_key]
        changes = {name: statement.excluded[name] for name in row if name not in key and name not in keep}
        statement = statement.on_conflict_do_update(index_elements=key, set_=changes) if changes else statement.on_conflict_do_nothing()
        return self.session.execute(statement)

    async def one(self, table: Table, key: Any) -> Any:
        column = next(iter(table.primary_key))
        return (await self.session.execute(select(table).where(column == key))).first()

    async def language(self, email: str) -> str:
        found = await self.session.scalar(select(recipients.c.language).where(recipients.c.email == email.lower()))
        return found or "en"

    async def queue_mail(self, event_id: str, recipient: str, language: str, subject: str, body: str,
                         attachment: tuple[str, bytes] | None = None) -> bool:
        """One row per fact and recipient: a redelivered or replayed fact finds its row and adds nothing."""
        insert_ = pg_insert if self.session.bind.dialect.name == "postgresql" else sqlite_insert
        now = utcnow()
        result = await self.session.execute(insert_(mails).values(
            event_id=event_id, recipient=recipient, language=language, subject=subject, body=body,
            attachment_name=attachment[0] if attachment else None, attachment=attachment[1] if attachment else None,
            status="pending", attempts=0, next_attempt_at=now, created_at=now,
        ).on_conflict_do_nothing(index_elements=["event_id", "recipient"]))
        return result.rowcount == 1
