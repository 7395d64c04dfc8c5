"""The finance dashboard with two replicas on one PostgreSQL schema: a stream served by replica B
moves when replica A commits (NOTIFY with the commit, every process LISTENs), also after the
listening connections were cut."""

import asyncio
import uuid
from datetime import date
from uuid import uuid4

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from contracts.events import CityJoined
from services.common.api import today
from services.finance.app import build_app, listener_name
from services.finance.settings import FinanceSettings
from tests.identity import TestIdentity
from tests.integration.test_finance_budget import NO_BROKER, YEAR, deliver
from tests.integration.test_finance_dashboard import Stream
from tests.support import eventually, running, serving


@pytest.fixture
def replicas(postgres_server_url):
    identity = TestIdentity()
    shared = {**NO_BROKER, "DATABASE_URL": postgres_server_url, "database_schema": f"t{uuid.uuid4().hex[:10]}_finance",
              "replicas": 2, "dashboard_ping_seconds": 30}  # no ping: what arrives was pushed
    a = build_app(FinanceSettings(**shared, replica_id="finance-a"), keys=identity.keys())
    b = build_app(FinanceSettings(**shared, replica_id="finance-b"), keys=identity.keys())
    return a, b, identity


async def next_snapshot_with(stream: Stream, wanted, what: str) -> dict:
    """Snapshots until one shows `wanted` (a listener's reconnection sends one of its own first)."""
    try:
        async with asyncio.timeout(5):
            while not wanted(snapshot := await stream.snapshot()):
                pass
    except TimeoutError:
        raise AssertionError(f"{what}: no such snapshot within 5s") from None
    return snapshot


async def test_the_stream_of_replica_b_moves_when_replica_a_commits_a_payment(replicas, postgres_server_url) -> None:
    a, b, identity = replicas
    async with running(a) as api_a, running(b), serving(b) as url_b, \
            httpx.AsyncClient(base_url=url_b, timeout=10, headers=identity.bearer("finance")) as client_b:
        api_a.headers.update(identity.bearer("finance"))
        async with client_b.stream("GET", "/dashboard/stream", params={"year": YEAR}) as response:
            stream = Stream(response)
            await next_snapshot_with(stream, lambda s: s["contributions"]["invoiced"] == "0.00", "the first snapshot")

            # A's consumer commits a batch (CityJoined -> a contribution invoice)
            await deliver(a.state.runtime, CityJoined(city_id=uuid4(), name="Oslo", country="NO", european=True, joined_on=date(YEAR, 3, 1)))
            await next_snapshot_with(stream, lambda s: s["contributions"]["invoiced"] == "5000.00", "B seeing A's invoice")

            # A's API commits a payment
            [invoice] = (await api_a.get("/invoices")).json()
            paid = await api_a.post(f"/invoices/{invoice['id']}/payments",
                                    json={"amount": "2500.00", "paid_on": today().isoformat(), "reference": "B-1"})
            assert paid.status_code == 201, paid.text
            await next_snapshot_with(stream, lambda s: s["contributions"]["received"] == "2500.00", "B seeing A's payment")

            # The listening connections are cut (a database restart, a proxy's idle timeout): they come back
            schema = a.state.runtime.settings.db_schema
            cut = await _terminate_listeners(postgres_server_url, listener_name(a.state.runtime.settings))
            assert len(cut) == 2  # one per replica
            await eventually(lambda: _listeners_other_than(postgres_server_url, listener_name(a.state.runtime.settings), cut),
                             timeout=15, what=f"both replicas listening again on {schema}")
            paid = await api_a.post(f"/invoices/{invoice['id']}/payments",
                                    json={"amount": "1000.00", "paid_on": today().isoformat(), "reference": "B-2"})
            assert paid.status_code == 201, paid.text
            await next_snapshot_with(stream, lambda s: s["contributions"]["received"] == "3500.00", "B seeing A's second payment")


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


async def _terminate_listeners(url: str, name: str) -> list[int]:
    connection = await _connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name)
        return [row["pid"] for row in rows]
    finally:
        await connection.close()


async def _listeners_other_than(url: str, name: str, gone: list[int]) -> bool:
    connection = await _connect(url)
    try:
        pids = {row["pid"] for row in await connection.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)}
        return len(pids - set(gone)) == 2
    finally:
        await connection.close()
