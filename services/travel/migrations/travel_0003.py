"""Travel: applicants and withdrawals learnt from membership; claims that count the funded quota,
are resubmitted as new versions and amended; no invented reference data.

- known_cities: a city may be known as an applicant (`CityApplied`: no join date yet) or only
  from `CityLeft` (no name), so name, european and joined_on may be empty; `applied_on`.
- travel_claims: `funding` (the rule its lines were decided under, counted for the funded quota;
  existing claims get it from their `european` and `funded` flags), `claim_version` and
  `supersedes` (a rejected claim's new version), `amended_on` and `amendments`. One claim per
  registration and version instead of one per registration.
- The exchange and allowance rates travel_0002 seeded from services/travel/data/ were
  illustrative, not reference data: the rows still exactly as seeded are deleted; a rate finance
  staff set or corrected since (another value, or another date) stays.

Revision ID: travel_0003
"""

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "travel_0003"
down_revision = "travel_0002"
branch_labels = None
depends_on = None

SEEDED = Path(__file__).resolve().parents[1] / "data"


def _seeded(name: str, key: str, dated: str, value: str, scale: int) -> list[dict]:
    with (SEEDED / name).open(newline="") as data:
        return [
            {"key": row[key], "dated": date.fromisoformat(row[dated]), "value": int(Decimal(row[value]).scaleb(scale))}
            for row in csv.DictReader(data)
        ]


def _delete_seeded(table: str, key: str, dated: str, value: str, rows: list[dict]) -> None:
    statement = sa.text(f"DELETE FROM {table} WHERE {key} = :key AND {dated} = :dated AND {value} = :value")
    op.get_bind().execute(statement, rows)


def upgrade() -> None:
    with op.batch_alter_table("known_cities") as cities:
        cities.alter_column("name", existing_type=sa.String(200), nullable=True)
        cities.alter_column("european", existing_type=sa.Boolean, nullable=True)
        cities.alter_column("joined_on", existing_type=sa.Date, nullable=True)
        cities.add_column(sa.Column("applied_on", sa.Date))

    # travel_0002 declared registration_id unique without a name: PostgreSQL named it, SQLite did not.
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("travel_claims", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}) as claims:
        claims.add_column(sa.Column("funding", sa.String(60), nullable=False, server_default="beyond_funded_quota_self_funded"))
        claims.add_column(sa.Column("claim_version", sa.Integer, nullable=False, server_default="1"))
        claims.add_column(sa.Column("supersedes", sa.Uuid))
        claims.add_column(sa.Column("amended_on", sa.Date))
        claims.add_column(sa.Column("amendments", sa.Integer, nullable=False, server_default="0"))
        claims.drop_constraint("travel_claims_registration_id_key" if postgres else "uq_travel_claims_registration_id", type_="unique")
        claims.create_unique_constraint("uq_travel_claim_version", ["registration_id", "claim_version"])
        claims.create_unique_constraint("uq_travel_claims_supersedes", ["supersedes"])
        claims.create_index("ix_travel_claims_quota", ["workshop_id", "city_id", "funding"])
    op.execute(
        "UPDATE travel_claims SET funding = CASE WHEN NOT european THEN 'non_european_member_city_borne' "
        "WHEN funded THEN 'european_member_coe_funded' ELSE 'beyond_funded_quota_self_funded' END"
    )
    with op.batch_alter_table("travel_claims") as claims:
        for column in ("funding", "claim_version", "amendments"):
            claims.alter_column(column, server_default=None)

    _delete_seeded("exchange_rates", "currency", "quoted_on", "units_per_eur",
                   _seeded("exchange_rates.csv", "currency", "on", "units_per_eur", 6))
    _delete_seeded("allowance_rates", "country", "valid_from", "eur_per_night",
                   _seeded("allowance_rates.csv", "country", "valid_from", "eur_per_night", 2))


def downgrade() -> None:
    # The seeded rates are not put back: they were never reference data.
    with op.batch_alter_table("travel_claims") as claims:
        claims.drop_index("ix_travel_claims_quota")
        claims.drop_constraint("uq_travel_claims_supersedes", type_="unique")
        claims.drop_constraint("uq_travel_claim_version", type_="unique")
        claims.create_unique_constraint("uq_travel_claims_registration_id", ["registration_id"])
        for column in ("amendments", "amended_on", "supersedes", "claim_version", "funding"):
            claims.drop_column(column)
    with op.batch_alter_table("known_cities") as cities:
        cities.drop_column("applied_on")
