"""Finance: payments, credit notes, budget lines, claims, other spending, the ledger and the feed.

Revision ID: finance_0002
"""

import sqlalchemy as sa
from alembic import op

from services.common.db import UtcDateTime

revision = "finance_0002"
down_revision = "finance_0001"
branch_labels = None
depends_on = None

CENTS = sa.BigInteger  # services.common.db.Cents stores integer cents


def upgrade() -> None:
    op.add_column("invoices", sa.Column("credited", CENTS, nullable=False, server_default="0"))
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("invoice_id", sa.Uuid, nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("amount", CENTS, nullable=False),
        sa.Column("applied", CENTS, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.UniqueConstraint("invoice_id", "reference", name="uq_payment_reference"),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("invoice_id", sa.Uuid, nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("amount", CENTS, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("issued_on", sa.Date, nullable=False),
    )
    op.create_index("ix_credit_notes_invoice_id", "credit_notes", ["invoice_id"])
    op.create_table(
        "budget_lines",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("line", sa.String(40), primary_key=True),
        sa.Column("allocation", CENTS, nullable=False),
        sa.Column("received", CENTS, nullable=False),
        sa.Column("committed", CENTS, nullable=False),
        sa.Column("spent", CENTS, nullable=False),
        sa.Column("held", sa.Integer, nullable=False),
        sa.Column("is_set", sa.Boolean, nullable=False),
    )
    op.create_table(
        "claims",
        sa.Column("claim_id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.String(20)),
        sa.Column("city_id", sa.Uuid),
        sa.Column("european", sa.Boolean),
        sa.Column("budget_line", sa.String(40)),
        sa.Column("year", sa.Integer),
        sa.Column("amount", CENTS, nullable=False),
        sa.Column("city_borne", CENTS, nullable=False),
        sa.Column("recharged", CENTS, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("held_since", UtcDateTime),
        sa.Column("paid_amount", CENTS, nullable=False),
        sa.Column("paid_on", sa.Date),
    )
    op.create_index("ix_claims_year_status", "claims", ["year", "status"])
    op.create_table(
        "spending",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("budget_line", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amount", CENTS, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("recorded_on", sa.Date, nullable=False),
        sa.Column("open", CENTS, nullable=False),
        sa.Column("spent", CENTS, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("account", sa.String(20), nullable=False),
        sa.Column("invoice_kind", sa.String(40)),
        sa.Column("budget_line", sa.String(40)),
        sa.Column("city_id", sa.Uuid),
        sa.Column("ref", sa.Uuid),
        sa.Column("amount", CENTS, nullable=False),
    )
    op.create_index("ix_ledger_year_account", "ledger", ["year", "account"])
    op.create_table(
        "activity",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64)),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
    )
    op.create_index("ix_activity_occurred_at", "activity", ["occurred_at"])


def downgrade() -> None:
    for table in ("activity", "ledger", "spending", "claims", "budget_lines", "credit_notes", "payments"):
        op.drop_table(table)
    op.drop_column("invoices", "credited")
