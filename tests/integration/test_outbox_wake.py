"""PostgreSQL: a commit that wrote outbox rows notifies the other replicas' relays, and the
notification names the runtime it came from, so that the committing runtime's own relay, woken
directly, does not run a second, empty round on its echo."""

import asyncio
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from contracts.events import CityJoined
from services.common.db import OUTBOX_CHANNEL, normalise_url
from services.common.outbox import woken_by
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.support import running


def test_a_relay_wakes_for_other_replicas_commits_in_its_schema_and_after_a_reconnection() -> None:
    ours, theirs = "0a1b2c3d4e5f", "f5e4d3c2b1a0"
    assert woken_by(f"finance {theirs}", "finance", ours)  # another replica's commit
    assert woken_by("finance", "finance", ours)  # a replica of the version before origins were sent
    assert woken_by(None, "finance", ours)  # the listener reconnected: notifications may have been lost
    assert not woken_by(f"finance {ours}", "finance", ours)  # our own commit: the relay was woken directly
    assert not woken_by(f"travel {theirs}", "finance", ours)  # another schema's outbox


async def test_the_notification_of_a_commit_names_its_schema_and_its_runtimes_relay(postgres_server_url) -> None:
    schema = f"t{uuid.uuid4().hex[:10]}_finance"
    app = build_app(FinanceSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATABASE_URL=postgres_server_url, database_schema=schema))
    heard: asyncio.Queue[str] = asyncio.Queue()
    dsn = make_url(normalise_url(postgres_server_url)).set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener(OUTBOX_CHANNEL, lambda _c, _pid, _channel, payload: heard.put_nowait(payload))
        async with running(app):
            async with app.state.runtime.unit_of_work() as uow:
                uow.emit(CityJoined(city_id=uuid.uuid4(), name="Ghent", country="BE", european=True, joined_on="2026-03-01"))
                await uow.commit()
            async with asyncio.timeout(10):
                while (payload := await heard.get()).split(" ")[0] != schema:
                    pass  # other tests' schemas on the same server
        relay = app.state.runtime.relay
        assert payload == f"{schema} {relay.origin}"
        assert not woken_by(payload, schema, relay.origin)
    finally:
        await listener.close()
