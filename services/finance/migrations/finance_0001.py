"""Finance: members known from membership's events, and invoices.

Revision ID: finance_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "finance_0001"
down_revision = None
branch_labels = ("finance",)
depends_on = "machinery_0001"


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("city_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("paid", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_invoices_city_id", "invoices", ["city_id"])
    op.create_index(
        "uq_contribution_city_year",
        "invoices",
        ["city_id", "year"],
        unique=True,
        sqlite_where=sa.text("kind = 'contribution'"),
        postgresql_where=sa.text("kind = 'contribution'"),
    )


def downgrade() -> None:
    op.drop_table("invoices")
    op.drop_table("members")
