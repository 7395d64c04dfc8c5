"""Events: registrations (seats, waiting list, funded quota), cancellations, and cities known only
from `CityLeft` (no name or join date).

Revision ID: events_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0002"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("member_cities") as batch:
        batch.alter_column("name", existing_type=sa.String(200), nullable=True)
        batch.alter_column("european", existing_type=sa.Boolean, nullable=True)
        batch.alter_column("joined_on", existing_type=sa.Date, nullable=True)
    with op.batch_alter_table("workshops") as batch:
        batch.add_column(sa.Column("cancelled_on", sa.Date))
        batch.add_column(sa.Column("last_sequence", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "registrations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("workshop_id", sa.Uuid, sa.ForeignKey("workshops.id"), nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("delegate_name", sa.String(200), nullable=False),
        sa.Column("delegate_email", sa.String(320), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("funded", sa.Boolean, nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_registrations_workshop_id", "registrations", ["workshop_id"])
    op.create_index("ix_registrations_city_id", "registrations", ["city_id"])
    op.create_index(
        "uq_registration_delegate",
        "registrations",
        ["workshop_id", "delegate_email"],
        unique=True,
        sqlite_where=sa.text("status <> 'cancelled'"),
        postgresql_where=sa.text("status <> 'cancelled'"),
    )


def downgrade() -> None:
    op.drop_table("registrations")
    with op.batch_alter_table("workshops") as batch:
        batch.drop_column("last_sequence")
        batch.drop_column("cancelled_on")
    with op.batch_alter_table("member_cities") as batch:
        batch.alter_column("joined_on", existing_type=sa.Date, nullable=False)
        batch.alter_column("european", existing_type=sa.Boolean, nullable=False)
        batch.alter_column("name", existing_type=sa.String(200), nullable=False)
