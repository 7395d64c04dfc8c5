"""Membership: cities and their signatures.

Revision ID: membership_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "membership_0001"
down_revision = None
branch_labels = ("membership",)
depends_on = "machinery_0001"


def upgrade() -> None:
    op.create_table(
        "cities",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("foreign_born_share", sa.Numeric(5, 4)),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("applied_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("statement_signed_on", sa.Date),
        sa.Column("agreement_signed_on", sa.Date),
        sa.Column("joined_on", sa.Date),
        sa.Column("left_on", sa.Date),
    )
    op.create_index("ix_cities_status", "cities", ["status"])


def downgrade() -> None:
    op.drop_table("cities")
