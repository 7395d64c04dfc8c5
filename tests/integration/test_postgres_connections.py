"""PostgreSQL connections of services.common.db.create_engine: a connection the server closed while
it sat in the pool is replaced before use, without a ping per transaction; no TLS over loopback
unless the URL asks for it. (PostgreSQL only: SQLite has no server to lose or to talk TLS to.)"""

from datetime import date

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.common import db
from services.common.db import _on_this_machine, create_engine


@pytest.fixture
async def engine(postgres_server_url):
    engine = create_engine(postgres_server_url, "public")
    yield engine
    await engine.dispose()


async def _backend(engine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(text("SELECT pg_backend_pid()"))


def _pings(engine, monkeypatch) -> list[object]:
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(connection) or ping(connection))
    return pings


async def test_a_connection_back_in_the_pool_within_the_second_is_used_without_a_ping(engine, monkeypatch) -> None:
    pings = _pings(engine, monkeypatch)
    first = await _backend(engine)
    assert [await _backend(engine) for _ in range(3)] == [first] * 3
    assert pings == []


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(engine, postgres_server_url, monkeypatch) -> None:
    pings = _pings(engine, monkeypatch)
    closed = await _backend(engine)
    url = make_url(postgres_server_url)
    admin = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", closed)
    finally:
        await admin.close()
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # as after a second in the pool
    fresh = await _backend(engine)  # no error: the pool found it closed and opened another
    assert fresh != closed and len(pings) == 1


async def test_no_tls_to_a_server_on_this_machine_unless_the_url_asks(engine, postgres_server_url) -> None:
    if _on_this_machine(make_url(postgres_server_url).host):
        async with engine.connect() as connection:
            ssl = await connection.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        assert ssl is False
    assert [_on_this_machine(h) for h in ("127.0.0.1", "::1", "localhost", None, "/run/postgresql", "db.example.org", "10.0.0.5")] == [
        True, True, True, True, True, False, False]


async def test_a_commit_that_writes_outbox_rows_notifies_the_relays_of_its_schema(postgres_server_url) -> None:
    """The NOTIFY rides on the outbox INSERT (no statement of its own): replicas' relays still hear it,
    and it names the runtime's relay (services.common.outbox.woken_by)."""
    import asyncio
    import uuid

    from contracts.events import CityJoined
    from services.common.outbox import woken_by
    from services.travel.app import build_app
    from services.travel.settings import TravelSettings
    from tests.support import running

    schema = f"t{uuid.uuid4().hex[:10]}_travel"
    app = build_app(TravelSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATABASE_URL=postgres_server_url, database_schema=schema))
    url = make_url(postgres_server_url)
    listener = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(db.OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
    try:
        async with running(app):
            async with app.state.runtime.unit_of_work() as uow:
                for _ in range(3):
                    uow.emit(CityJoined(city_id=uuid.uuid4(), name="Ghent", country="BE", european=True, joined_on=date(2024, 5, 1)))
                await uow.commit()
            async with asyncio.timeout(5):
                while (payload := await heard.get()).split(" ")[0] != schema:
                    pass  # other tests' schemas on the same server
        relay = app.state.runtime.relay
        assert payload == f"{schema} {relay.origin}"  # names its relay, which the echo does not wake again
        assert not woken_by(payload, schema, relay.origin)
    finally:
        await listener.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await listener.close()
