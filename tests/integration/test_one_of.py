"""`one_of`: a repository's bulk lookup by key, one bound parameter on both databases."""

from datetime import date
from uuid import uuid4

from sqlalchemy import insert, select

from services.common.db import one_of
from services.finance.app import build_app
from services.finance.db import members
from services.finance.settings import FinanceSettings
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}


async def test_one_of_finds_exactly_the_rows_whose_key_is_listed(databases) -> None:
    app = build_app(FinanceSettings(**NO_BROKER, **databases("finance")))
    ghent, lyon, oslo = uuid4(), uuid4(), uuid4()
    async with running(app):
        async with app.state.runtime.sessions() as session, session.begin():
            await session.execute(insert(members), [
                {"city_id": city, "name": name, "european": True, "joined_on": date(2026, 1, 1)}
                for city, name in ((ghent, "Ghent"), (lyon, "Lyon"), (oslo, "Oslo"))
            ])
        async with app.state.runtime.sessions() as session:
            async def found(column, values) -> set:
                return set(await session.scalars(select(members.c.name).where(one_of(session, column, values))))

            assert await found(members.c.city_id, {ghent, oslo, uuid4()}) == {"Ghent", "Oslo"}
            assert await found(members.c.city_id, [lyon]) == {"Lyon"}
            assert await found(members.c.city_id, set()) == set()
            assert await found(members.c.name, ["Lyon", "Paris", "Oslo"]) == {"Lyon", "Oslo"}
