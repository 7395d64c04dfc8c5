"""Travel: receipts uploaded as files (PDF, JPEG, PNG), kept in the database with their SHA-256,
and the claim lines that name one (`claim_lines.receipt_id`, empty for the lines before).

Revision ID: travel_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "travel_0004"
down_revision = "travel_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("filename", sa.String(200)),
        sa.Column("owner_email", sa.String(320), nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("uploaded_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("city_id", "owner_email", "sha256", name="uq_receipts_owner_sha256"),
    )
    with op.batch_alter_table("claim_lines") as lines:
        lines.add_column(sa.Column("receipt_id", sa.Uuid))


def downgrade() -> None:
    with op.batch_alter_table("claim_lines") as lines:
        lines.drop_column("receipt_id")
    op.drop_table("receipts")
