"""Events: member cities (from membership's events) and workshops.

Revision ID: events_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0001"
down_revision = None
branch_labels = ("events",)
depends_on = "machinery_0001"


def upgrade() -> None:
    op.create_table(
        "member_cities",
        sa.Column("city_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date),
    )
    op.create_table(
        "workshops",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("host_city", sa.String(200), nullable=False),
        sa.Column("host_country", sa.String(2), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("funded_quota_per_city", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workshops")
    op.drop_table("member_cities")
