"""Finance: legal numbers on invoices (ICC-2027-0001) and credit notes (ICC-CN-2027-0001), their
counters, and the budget thresholds already published.

Invoices and credit notes issued before numbering get theirs here, per year of issue in issue order
(issue date, then id: the order they were issued on one day is not recorded), and the counters
continue after them.

Revision ID: finance_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "finance_0004"
down_revision = "finance_0003"
branch_labels = None
depends_on = None

SERIES = (("invoices", "ICC"), ("credit_notes", "ICC-CN"))


# SQLite's batch mode copies the table but cannot reflect an index on an expression: the one that
# allows one contribution per city and year (finance_0003) is made again after the copy.
CONTRIBUTION = "kind = 'contribution'"
FIRST = "00000000-0000-0000-0000-000000000000"


def _one_contribution_per_city_and_year() -> None:
    op.create_index(
        "uq_contribution_city_year_replaces", "invoices", ["city_id", "year", sa.text(f"coalesce(replaces, '{FIRST}')")],
        unique=True, sqlite_where=sa.text(CONTRIBUTION), postgresql_where=sa.text(CONTRIBUTION),
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, _ in SERIES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("number", sa.String(30)))
            batch.create_unique_constraint(f"uq_{table}_number", ["number"])
    if sqlite:
        _one_contribution_per_city_and_year()
    op.add_column("budget_lines", sa.Column("threshold_reached", sa.Integer, nullable=False, server_default="0"))
    counters = op.create_table(
        "document_numbers",
        sa.Column("series", sa.String(10), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("next", sa.Integer, nullable=False),
    )
    connection = op.get_bind()
    for table, series in SERIES:
        rows = connection.execute(sa.text(f"SELECT id, issued_on FROM {table} ORDER BY issued_on, id")).all()
        taken: dict[int, int] = {}
        for row_id, issued_on in rows:
            year = int(str(issued_on)[:4])  # a date on PostgreSQL, ISO text on SQLite
            taken[year] = taken.get(year, 0) + 1
            connection.execute(sa.text(f"UPDATE {table} SET number = :number WHERE id = :id"),
                               {"number": f"{series}-{year}-{taken[year]:04d}", "id": row_id})
        if taken:
            op.bulk_insert(counters, [{"series": series, "year": year, "next": n + 1} for year, n in taken.items()])


def downgrade() -> None:
    op.drop_table("document_numbers")
    with op.batch_alter_table("budget_lines") as batch:
        batch.drop_column("threshold_reached")
    for table, _ in SERIES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_number", type_="unique")
            batch.drop_column("number")
    if op.get_bind().dialect.name == "sqlite":
        _one_contribution_per_city_and_year()
