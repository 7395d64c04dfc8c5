"""Purging old processed event ids (services/common/purge.py) finds them by age: an index on it.

Revision ID: machinery_0003
"""

from alembic import op

revision = "machinery_0003"
down_revision = "machinery_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_events_processed_at", "processed_events")
