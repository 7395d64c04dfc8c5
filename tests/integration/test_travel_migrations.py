"""Travel's migrations on a database that has lived: what travel_0003 keeps and what it removes."""

from datetime import date
from pathlib import Path
from uuid import uuid4

from sqlalchemy import Uuid, bindparam, text

from services.common.db import create_engine, migrate
from services.travel.settings import TravelSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "travel" / "migrations"


async def test_the_illustrative_seeded_rates_go_and_the_rates_finance_staff_set_stay(databases) -> None:
    settings = TravelSettings(**databases("travel"))
    engine = create_engine(settings.db_url, settings.db_schema)
    try:
        await migrate(engine, settings.db_schema, MIGRATIONS, target="travel_0002")  # the release that seeded them
        async with engine.begin() as db:
            assert await db.scalar(text("SELECT count(*) FROM exchange_rates")) == 612
            assert await db.scalar(text("SELECT count(*) FROM allowance_rates")) == 54
            # finance staff corrected one seeded rate and added another; a claim was decided meanwhile
            await db.execute(text("UPDATE exchange_rates SET units_per_eur = 11450000 WHERE currency = 'NOK' AND quoted_on = '2026-03-01'"))
            await db.execute(text("INSERT INTO exchange_rates VALUES ('NOK', '2026-03-15', 11500000)"))
            await db.execute(text("INSERT INTO allowance_rates VALUES ('PT', '2026-01-01', 16000)"))
            await db.execute(
                text("INSERT INTO travel_claims (id, registration_id, workshop_id, city_id, delegate_name, delegate_email, european, "
                     "funded, submitted_on, event_year, nights, travel_days_without_night, coe_funded, city_borne, status) VALUES "
                     "(:id, :r, :w, :c, 'Ana', 'ana@ghent.be', :european, :funded, :on, 2026, 1, 0, 15500, 0, 'approved')")
                .bindparams(*(bindparam(name, type_=Uuid) for name in ("id", "r", "w", "c"))),
                {"id": uuid4(), "r": uuid4(), "w": uuid4(), "c": uuid4(), "european": True, "funded": True, "on": date(2026, 3, 12)},
            )

        await migrate(engine, settings.db_schema, MIGRATIONS)
        async with engine.begin() as db:
            kept = (await db.execute(text("SELECT currency, quoted_on, units_per_eur FROM exchange_rates ORDER BY quoted_on"))).all()
            assert [(c, str(on), units) for c, on, units in kept] == [("NOK", "2026-03-01", 11450000), ("NOK", "2026-03-15", 11500000)]
            assert (await db.execute(text("SELECT country, eur_per_night FROM allowance_rates"))).all() == [("PT", 16000)]
            claim = (await db.execute(text("SELECT funding, claim_version, amendments, supersedes FROM travel_claims"))).one()
            assert tuple(claim) == ("european_member_coe_funded", 1, 0, None)
    finally:
        await engine.dispose()
