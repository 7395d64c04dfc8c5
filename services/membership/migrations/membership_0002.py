"""Membership: a city's contact, INDEX submissions (the analysis queue and results), expert visits.

Revision ID: membership_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "membership_0002"
down_revision = "membership_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cities", sa.Column("contact", sa.String(300)))
    op.create_table(
        "index_submissions",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("city_id", sa.Uuid, sa.ForeignKey("cities.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("analysed_on", sa.Date),
        sa.Column("analyst", sa.String(200)),
        sa.Column("result", sa.JSON),
    )
    op.create_index("ix_index_submissions_city_id", "index_submissions", ["city_id"])
    op.create_index(
        "uq_index_submission_waiting",
        "index_submissions",
        ["city_id"],
        unique=True,
        sqlite_where=sa.text("analysed_on IS NULL"),
        postgresql_where=sa.text("analysed_on IS NULL"),
    )
    op.create_table(
        "expert_visits",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("city_id", sa.Uuid, sa.ForeignKey("cities.id"), nullable=False),
        sa.Column("visit_date", sa.Date, nullable=False),
        sa.Column("experts", sa.JSON, nullable=False),
        sa.Column("coe_representatives", sa.JSON, nullable=False),
        sa.Column("profile_summary", sa.Text),
        sa.Column("profile_url", sa.String(500)),
        sa.Column("profile_recorded_on", sa.Date),
    )
    op.create_index("ix_expert_visits_city_id", "expert_visits", ["city_id"])


def downgrade() -> None:
    op.drop_table("expert_visits")
    op.drop_table("index_submissions")
    with op.batch_alter_table("cities") as batch:
        batch.drop_column("contact")
