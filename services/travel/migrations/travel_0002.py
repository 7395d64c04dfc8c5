"""Travel: registrations learnt from events, claims and expert visits with their lines and
decisions, and the dated allowance and exchange rate tables, seeded from services/travel/data/.

The seed is the data files as this revision reads them; afterwards the tables are managed
through the API (PUT /allowance-rates/{country}, PUT /exchange-rates/{currency}).

Revision ID: travel_0002
"""

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "travel_0002"
down_revision = "travel_0001"
branch_labels = None
depends_on = None

DATA = Path(__file__).resolve().parents[1] / "data"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as data:
        return list(csv.DictReader(data))


def upgrade() -> None:
    # The city's country gives an expert visit its allowance rate (null for cities learnt before).
    op.add_column("known_cities", sa.Column("country", sa.String(2)))

    op.create_table(
        "registrations",
        sa.Column("registration_id", sa.Uuid, primary_key=True),
        sa.Column("workshop_id", sa.Uuid, nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("delegate_name", sa.String(200), nullable=False),
        sa.Column("delegate_email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("funded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_registrations_workshop_id", "registrations", ["workshop_id"])

    allowance_rates = op.create_table(
        "allowance_rates",
        sa.Column("country", sa.String(2), primary_key=True),
        sa.Column("valid_from", sa.Date, primary_key=True),
        sa.Column("eur_per_night", sa.BigInteger, nullable=False),  # cents
    )
    exchange_rates = op.create_table(
        "exchange_rates",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("quoted_on", sa.Date, primary_key=True),
        sa.Column("units_per_eur", sa.BigInteger, nullable=False),  # millionths
    )

    op.create_table(
        "travel_claims",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("registration_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("workshop_id", sa.Uuid, nullable=False),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("delegate_name", sa.String(200), nullable=False),
        sa.Column("delegate_email", sa.String(320), nullable=False),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("funded", sa.Boolean, nullable=False),
        sa.Column("submitted_on", sa.Date, nullable=False),
        sa.Column("event_year", sa.Integer, nullable=False),
        sa.Column("nights", sa.Integer, nullable=False),
        sa.Column("travel_days_without_night", sa.Integer, nullable=False),
        sa.Column("coe_funded", sa.BigInteger, nullable=False),
        sa.Column("city_borne", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    )
    for column in ("workshop_id", "city_id", "delegate_email", "status"):
        op.create_index(f"ix_travel_claims_{column}", "travel_claims", [column])

    op.create_table(
        "expert_visits",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("city_id", sa.Uuid, nullable=False),
        sa.Column("city_name", sa.String(200), nullable=False),
        sa.Column("european", sa.Boolean, nullable=False),
        sa.Column("visit_date", sa.Date, nullable=False),
        sa.Column("submitted_on", sa.Date, nullable=False),
        sa.Column("nights", sa.Integer, nullable=False),
        sa.Column("travellers", sa.Integer, nullable=False),
        sa.Column("coe_funded", sa.BigInteger, nullable=False),
        sa.Column("recharged", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.UniqueConstraint("city_id", "visit_date", name="uq_expert_visit_city_date"),
    )
    op.create_index("ix_expert_visits_status", "expert_visits", ["status"])

    op.create_table(
        "claim_lines",
        sa.Column("owner_id", sa.Uuid, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("spent_on", sa.Date),
        sa.Column("receipt", sa.String(500)),
        sa.Column("units_per_eur", sa.BigInteger),
        sa.Column("rate_on", sa.Date),
        sa.Column("eur_amount", sa.BigInteger, nullable=False),
        sa.Column("eligible", sa.BigInteger, nullable=False),
        sa.Column("coe_funded", sa.BigInteger, nullable=False),
        sa.Column("city_borne", sa.BigInteger, nullable=False),
        sa.Column("rule", sa.String(60), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("traveller", sa.String(200)),
    )
    op.create_table(
        "claim_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger),
        sa.Column("reason", sa.Text),
        sa.Column("paid_on", sa.Date),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_claim_decisions_owner_id", "claim_decisions", ["owner_id"])

    op.bulk_insert(
        allowance_rates,
        [
            {
                "country": row["country"],
                "valid_from": date.fromisoformat(row["valid_from"]),
                "eur_per_night": int(Decimal(row["eur_per_night"]).scaleb(2)),
            }
            for row in _rows("allowance_rates.csv")
        ],
    )
    op.bulk_insert(
        exchange_rates,
        [
            {
                "currency": row["currency"],
                "quoted_on": date.fromisoformat(row["on"]),
                "units_per_eur": int(Decimal(row["units_per_eur"]).scaleb(6)),
            }
            for row in _rows("exchange_rates.csv")
        ],
    )


def downgrade() -> None:
    for table in ("claim_decisions", "claim_lines", "expert_visits", "travel_claims", "exchange_rates", "allowance_rates", "registrations"):
        op.drop_table(table)
    with op.batch_alter_table("known_cities") as cities:
        cities.drop_column("country")
