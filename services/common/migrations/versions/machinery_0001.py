"""Machinery tables every service has: the outbox and the processed-event (dedupe) table.

Revision ID: machinery_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "machinery_0001"
down_revision = None
branch_labels = ("machinery",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200)),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_published_at", "outbox")
    op.drop_table("outbox")
