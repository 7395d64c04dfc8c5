"""Events: applicant cities (from `CityApplied`), so that their delegates get a final refusal, and
each city's country (from `CityApplied`/`CityJoined`).

Revision ID: events_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0003"
down_revision = "events_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("member_cities") as batch:
        batch.add_column(sa.Column("country", sa.String(2)))
        batch.add_column(sa.Column("applied_on", sa.Date))


def downgrade() -> None:
    with op.batch_alter_table("member_cities") as batch:
        batch.drop_column("applied_on")
        batch.drop_column("country")
