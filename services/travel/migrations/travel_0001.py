"""Travel: the cities and events travel has learnt of from other services' events.

Revision ID: travel_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "travel_0001"
down_revision = None
branch_labels = ("travel",)
depends_on = "machinery_0001"


def upgrade() -> None:
    op.create_table(
        "known_cities",
        sa.Column("city_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date),
    )
    op.create_table(
        "known_events",
        sa.Column("workshop_id", sa.Uuid, primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("host_country", sa.String(2), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("funded_quota_per_city", sa.Integer, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("known_events")
    op.drop_table("known_cities")
