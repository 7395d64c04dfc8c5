"""Membership: a city's status is derived from its dates (member up to and including the
withdrawal's effective date), no longer stored; corrected signature dates are kept.

Revision ID: membership_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "membership_0003"
down_revision = "membership_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_cities_status", table_name="cities")
    with op.batch_alter_table("cities") as batch:
        batch.drop_column("status")
    op.create_index("ix_cities_joined_on", "cities", ["joined_on"])
    op.create_table(
        "signature_corrections",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("city_id", sa.Uuid, sa.ForeignKey("cities.id"), nullable=False),
        sa.Column("document", sa.String(40), nullable=False),
        sa.Column("previous_signed_on", sa.Date, nullable=False),
        sa.Column("signed_on", sa.Date, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("corrected_on", sa.Date, nullable=False),
    )
    op.create_index("ix_signature_corrections_city_id", "signature_corrections", ["city_id"])


def downgrade() -> None:
    op.drop_table("signature_corrections")
    op.drop_index("ix_cities_joined_on", table_name="cities")
    with op.batch_alter_table("cities") as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="applicant"))
    op.execute("UPDATE cities SET status = CASE WHEN left_on IS NOT NULL THEN 'left' "
               "WHEN joined_on IS NOT NULL THEN 'member' ELSE 'applicant' END")
    op.create_index("ix_cities_status", "cities", ["status"])
