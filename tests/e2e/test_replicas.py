"""Two replicas of a service on one PostgreSQL schema, over the real broker: one outbox relay
publishes at a time, every row once and in order per key; when the holder dies mid-batch the
other takes over by itself."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts.topics import Topic
from services.common.db import OutboxMessage, migrate
from services.common.kafka import create_producer
from tests.e2e.conftest import Platform
from tests.e2e.test_outbox_relay import KEYS, drained, write_outbox
from tests.support import consumed, eventually, header, read_topic, running, topic_prefix

FINANCE_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "finance" / "migrations"


@pytest.fixture
def postgres_platform(kafka, postgres_server_url) -> Platform:
    """PostgreSQL only: the lock and its takeover are PostgreSQL's (SQLite runs one process)."""
    run = uuid.uuid4().hex[:10]
    return Platform(kafka, topic_prefix(), lambda service: {"DATABASE_URL": postgres_server_url, "database_schema": f"t{run}_{service}"})


def replica(platform: Platform, name: str):
    return platform.finance(replica_id=name, replicas=2)


async def positions(app) -> dict[int, int]:
    """Each row's place in the outbox (its number n -> position): the order a key's rows must keep."""
    async with app.state.runtime.sessions() as session:
        return {int(m.removeprefix("m-")): p for m, p in await session.execute(select(OutboxMessage.message_id, OutboxMessage.position))}


def first_copies_in_outbox_order(records, position: dict[int, int]) -> dict[str, list[int]]:
    """Per key, the outbox positions of the rows in the order their FIRST copies are on the topic
    (what a deduping consumer applies); a later copy is a duplicate it skips."""
    by_key: dict[str, list[int]] = {}
    seen: set[int] = set()
    for r in records:
        n = int(header(r, "n"))
        if n not in seen:
            seen.add(n)
            by_key.setdefault(r.key.decode(), []).append(position[n])
    return by_key


async def test_two_replicas_publish_every_row_exactly_once_and_in_order_per_key(postgres_platform) -> None:
    a, b = replica(postgres_platform, "finance-a"), replica(postgres_platform, "finance-b")
    async with running(a), running(b):
        # both write, each waking its own relay: they contend for the lock all along. Each writes its
        # own keys, as writers of one aggregate serialise on its row (so a key's outbox positions
        # follow its commits); the two writers' positions interleave.
        await asyncio.gather(write_outbox(a, 0, 1500, per_transaction=50, keys="a"),
                             write_outbox(b, 1500, 1500, per_transaction=50, keys="b"))
        await eventually(lambda: drained(a), timeout=90, what="3000 rows published")
        await consumed(a)  # static members (REPLICA_ID) of one group, on the real broker
        await consumed(b)
        place = await positions(a)
    published_by = (a.state.runtime.relay.published_total, b.state.runtime.relay.published_total)

    records = await read_topic(postgres_platform.kafka, postgres_platform.topic(Topic.INVOICES.value), at_least=3000, timeout=60)
    numbers = [int(header(r, "n")) for r in records]
    assert sorted(numbers) == list(range(3000)), f"lost or duplicated (published by a, b: {published_by})"
    assert sum(published_by) == 3000
    for key, seen in first_copies_in_outbox_order(records, place).items():
        assert seen == sorted(seen), f"{key}: published out of order"


async def test_when_the_publishing_replica_dies_mid_batch_the_other_takes_over(postgres_platform) -> None:
    a, b = replica(postgres_platform, "finance-a"), replica(postgres_platform, "finance-b")
    settings, sent, stuck = a.state.runtime.settings, [0], asyncio.Event()

    def stalling_producer():
        """A's producer: 100 records go out, then the next send hangs (a relay stuck or dying mid-batch)."""
        producer = create_producer(settings)
        send = producer.send

        async def stalling_send(*args, **kwargs):
            if sent[0] == 100:
                stuck.set()
                await asyncio.Event().wait()
            sent[0] += 1
            return await send(*args, **kwargs)

        producer.send = stalling_send
        return producer

    a.state.runtime.relay._producer_factory = stalling_producer
    async with running(a):
        await write_outbox(a, 0, 1200)  # more than two batches
        await eventually(lambda: _set(stuck), timeout=30, what="A's relay holding the lock, stuck mid-batch")
        async with running(b):
            await consumed(b)  # a few seconds, B's relay polling every 0.2 s all along
            assert b.state.runtime.relay.published_total == 0, "B published while A held the lock"
            assert await b.state.runtime.relay.pending() == 1200

            [relay_a] = [t for t in a.state.runtime.tasks if t.get_name() == "finance-outbox-relay"]
            relay_a.cancel()  # A dies: its transaction ends, and the lock with it
            died = time.monotonic()
            await eventually(lambda: drained(b), timeout=30, what="B taking over and publishing everything")
            took_over_in = time.monotonic() - died
            place = await positions(b)
    assert took_over_in < 10, f"B took {took_over_in:.1f}s to take over"
    assert a.state.runtime.relay.published_total == 0 and b.state.runtime.relay.published_total == 1200

    records = await read_topic(postgres_platform.kafka, postgres_platform.topic(Topic.INVOICES.value), at_least=1300, timeout=60)
    numbers = [int(header(r, "n")) for r in records]
    assert sorted(set(numbers)) == list(range(1200))  # nothing lost
    # A's 100 records went out before it died unmarked: B re-sent them, and only them
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == list(range(100))
    for key, seen in first_copies_in_outbox_order(records, place).items():
        assert seen == sorted(seen), f"{key}: published out of order"
    assert {r.key.decode() for r in records} == set(KEYS)


async def _set(event: asyncio.Event) -> bool:
    return event.is_set()


async def test_when_the_publishing_process_is_killed_mid_batch_the_other_takes_over(postgres_platform, tmp_path) -> None:
    b = replica(postgres_platform, "finance-b")
    await migrate(b.state.runtime.engine, b.state.runtime.settings.db_schema, FINANCE_MIGRATIONS)
    await write_outbox(b, 0, 1200)  # committed before either relay runs
    stalled = tmp_path / "stalled"
    env = {**os.environ, **{name.upper(): str(value) for name, value in postgres_platform.settings("finance").items()},
           "REPLICA_ID": "finance-a", "REPLICAS": "2", "STALLED_FILE": str(stalled)}
    a = subprocess.Popen([sys.executable, "-m", "tests.e2e.stalling_relay_finance"],  # -m: this checkout's code
                         env=env, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL, stderr=(tmp_path / "a.log").open("w"))
    try:
        try:
            await eventually(lambda: _exists(stalled), timeout=60, what="process A's relay holding the lock, stalled mid-batch")
        except AssertionError as err:
            raise AssertionError(f"{err}\nA's log:\n{(tmp_path / 'a.log').read_text()[-3000:]}") from None
        async with running(b):
            await consumed(b)
            assert b.state.runtime.relay.published_total == 0, "B published while A held the lock"
            a.kill()  # SIGKILL: no rollback, no goodbye; PostgreSQL ends A's transaction when its connection drops
            died = time.monotonic()
            await eventually(lambda: drained(b), timeout=30, what="B taking over and publishing everything")
            took_over_in = time.monotonic() - died
            place = await positions(b)
    finally:
        if a.poll() is None:
            a.kill()
        a.wait()
    assert took_over_in < 10, f"B took {took_over_in:.1f}s to take over"

    records = await read_topic(postgres_platform.kafka, postgres_platform.topic(Topic.INVOICES.value), at_least=1300, timeout=60)
    numbers = [int(header(r, "n")) for r in records]
    assert sorted(set(numbers)) == list(range(1200))
    assert {n for n in set(numbers) if numbers.count(n) > 1} <= set(range(100))  # only what A sent can come twice
    for key, seen in first_copies_in_outbox_order(records, place).items():
        assert seen == sorted(seen), f"{key}: published out of order"


async def _exists(path: Path) -> bool:
    return path.exists()


async def test_an_event_committed_on_one_replica_is_published_at_once_by_the_others_relay(postgres_platform) -> None:
    slow_poll = {"relay_poll_seconds": 30}  # only a wake-up can make it go out in time
    a = postgres_platform.finance(replica_id="finance-a", replicas=2, **slow_poll)
    b = postgres_platform.finance(replica_id="finance-b", replicas=2, **slow_poll)
    async with running(a), running(b):
        [relay_b] = [t for t in b.state.runtime.tasks if t.get_name() == "finance-outbox-relay"]
        relay_b.cancel()  # B's commits can only go out through A's relay
        await eventually(lambda: _listening(a), timeout=15, what="both replicas listening for outbox commits")
        committed = time.monotonic()
        await write_outbox(b, 0, 10)
        await eventually(lambda: drained(a), timeout=10, what="B's rows published by A's relay")
        waited = time.monotonic() - committed
    assert waited < 5, f"{waited:.1f}s: A's relay was not woken by B's commit"
    assert a.state.runtime.relay.published_total == 10


async def _listening(app) -> bool:
    """Whether both replicas' outbox listeners are connected (their connections show in pg_stat_activity)."""
    from sqlalchemy import text

    settings = app.state.runtime.settings
    async with app.state.runtime.sessions() as session:
        return await session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                                    {"name": f"icc-outbox:{settings.db_schema}"}) == 2
