"""Finance: corrections (payment reversals, credits applied and refunded, manual invoices, spending
reversals), recorded contribution runs, resubmitted claims.

Revision ID: finance_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "finance_0003"
down_revision = "finance_0002"
branch_labels = None
depends_on = None

CENTS = sa.BigInteger  # services.common.db.Cents stores integer cents
CONTRIBUTION = "kind = 'contribution'"
FIRST = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    op.add_column("invoices", sa.Column("reason", sa.String(500)))
    op.add_column("invoices", sa.Column("replaces", sa.Uuid))
    # A year owed again after its contribution was cancelled gets one more invoice, naming the one it replaces.
    op.drop_index("uq_contribution_city_year", table_name="invoices")
    op.create_index(
        "uq_contribution_city_year_replaces", "invoices", ["city_id", "year", sa.text(f"coalesce(replaces, '{FIRST}')")],
        unique=True, sqlite_where=sa.text(CONTRIBUTION), postgresql_where=sa.text(CONTRIBUTION),
    )
    op.add_column("payments", sa.Column("reversed_on", sa.Date))
    op.add_column("payments", sa.Column("reversal_reason", sa.String(500)))
    op.create_index("ix_payments_invoice_id", "payments", ["invoice_id"])
    op.create_table(
        "credits",
        sa.Column("city_id", sa.Uuid, primary_key=True),
        sa.Column("balance", CENTS, nullable=False),
    )
    # Each city's credit so far is the sum of its credit ledger rows.
    op.execute("INSERT INTO credits (city_id, balance) SELECT city_id, SUM(amount) FROM ledger "
               "WHERE account = 'credit' AND city_id IS NOT NULL GROUP BY city_id")
    op.create_table(
        "contribution_runs",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("run_on", sa.Date, nullable=False),
    )
    op.add_column("claims", sa.Column("supersedes", sa.Uuid))
    op.add_column("claims", sa.Column("claim_version", sa.Integer, nullable=False, server_default="1"))
    op.add_column("spending", sa.Column("reversed_on", sa.Date))
    op.add_column("spending", sa.Column("reversal_reason", sa.String(500)))


def downgrade() -> None:
    op.drop_index("ix_payments_invoice_id", table_name="payments")
    for table, columns in (("spending", ("reversal_reason", "reversed_on")), ("claims", ("claim_version", "supersedes")),
                           ("payments", ("reversal_reason", "reversed_on"))):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
    op.drop_table("contribution_runs")
    op.drop_table("credits")
    op.drop_index("uq_contribution_city_year_replaces", table_name="invoices")
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("replaces")
        batch.drop_column("reason")
    op.create_index(
        "uq_contribution_city_year", "invoices", ["city_id", "year"], unique=True,
        sqlite_where=sa.text(CONTRIBUTION), postgresql_where=sa.text(CONTRIBUTION),
    )
