"""Notifications: cities, claims, workshops, registrations and invoices as mails need them, the
recipients' languages, waiting facts, and the mail outbox.

Revision ID: notifications_0001
"""

import sqlalchemy as sa
from alembic import op



revision = "notifications_0001"
down_revision = None
branch_labels = ("notifications",)
depends_on = "machinery_0001"


def upgrade() -> None:
    op.create_table("cities", sa.Column("city_id", sa.Uuid, primary_key=True), sa.Column("name", sa.String(200)),
                    sa.Column("contact", sa.String(320)))
    op.create_table("claims", sa.Column("claim_id", sa.Uuid, primary_key=True), sa.Column("delegate_email", sa.String(320), nullable=False),
                    sa.Column("coe_funded", sa.BigInteger, nullable=False), sa.Column("city_borne", sa.BigInteger, nullable=False))
    op.create_table("workshops", sa.Column("workshop_id", sa.Uuid, primary_key=True), sa.Column("title", sa.String(300), nullable=False),
                    sa.Column("starts_on", sa.Date, nullable=False), sa.Column("ends_on", sa.Date, nullable=False))
    op.create_table("registrations", sa.Column("registration_id", sa.Uuid, primary_key=True),
                    sa.Column("workshop_id", sa.Uuid, nullable=False, index=True), sa.Column("delegate_name", sa.String(200), nullable=False),
                    sa.Column("delegate_email", sa.String(320), nullable=False), sa.Column("status", sa.String(20), nullable=False))
    op.create_table("invoices", sa.Column("invoice_id", sa.Uuid, primary_key=True), sa.Column("city_id", sa.Uuid, nullable=False),
                    sa.Column("number", sa.String(40)), sa.Column("amount", sa.BigInteger, nullable=False), sa.Column("balance", sa.BigInteger, nullable=False),
                    sa.Column("due_on", sa.Date, nullable=False, index=True))
    op.create_table("recipients", sa.Column("email", sa.String(320), primary_key=True), sa.Column("language", sa.String(2), nullable=False))
    op.create_table("waiting", sa.Column("event_id", sa.String(200), primary_key=True),
                    sa.Column("waits_for", sa.String(80), nullable=False, index=True), sa.Column("type", sa.String(100), nullable=False),
                    sa.Column("payload", sa.JSON, nullable=False))
    op.create_table(
        "mails",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attachment_name", sa.String(200)),
        sa.Column("attachment", sa.LargeBinary),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event_id", "recipient", name="uq_mails_event_recipient"),
    )
    op.create_index("ix_mails_status_next", "mails", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("mails", "waiting", "recipients", "invoices", "registrations", "workshops", "claims", "cities"):
        op.drop_table(table)
