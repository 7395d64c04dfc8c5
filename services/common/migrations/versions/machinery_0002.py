"""Who did what: the audit trail, and the actor of each event a consumer applied.

Revision ID: machinery_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "machinery_0002"
down_revision = "machinery_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_name", sa.String(200)),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200)),
        sa.Column("event_id", sa.String(64)),
        sa.Column("details", sa.JSON),
    )
    op.create_index("ix_audit_subject", "audit", ["subject"])
    with op.batch_alter_table("processed_events") as table:
        table.add_column(sa.Column("actor", sa.String(250)))


def downgrade() -> None:
    with op.batch_alter_table("processed_events") as table:
        table.drop_column("actor")
    op.drop_index("ix_audit_subject", "audit")
    op.drop_table("audit")
