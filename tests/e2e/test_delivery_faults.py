"""Fault injection over the real broker: duplicates, poison, a crash between commit and ack,
and a broker that is down while a service restarts."""

import asyncio
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from uuid import uuid4

from sqlalchemy import func, select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from deploy.kafka.local import LocalKafka
from services.common.db import ProcessedEvent
from services.finance.db import StoredInvoice
from tests.e2e.test_join_to_invoice import join
from tests.support import committed_everything, consumed, eventually, header, produce, read_topic, running

CITIES = "icc.membership.cities"


def city_joined() -> tuple[bytes, bytes, list]:
    envelope = wrap(
        CityJoined(city_id=uuid4(), name="Lublin", country="PL", european=True, joined_on=date(2026, 4, 1)),
        service="membership",
    )
    return envelope.key.encode(), to_value(envelope), to_headers(envelope)


async def invoices(app) -> int:
    async with app.state.runtime.sessions() as session:
        return await session.scalar(select(func.count()).select_from(StoredInvoice))


async def test_the_same_city_joined_delivered_twice_gives_one_invoice(platform) -> None:
    app = platform.finance()
    async with running(app):
        duplicate = city_joined()
        await produce(platform.kafka, platform.topic(CITIES), [duplicate, duplicate])
        group, topics = app.state.runtime.settings.consumer_group, [platform.topic(CITIES)]
        await eventually(lambda: committed_everything(platform.kafka, group, topics), what="both copies consumed")
        assert await invoices(app) == 1
        issued = await read_topic(platform.kafka, platform.topic("icc.finance.invoices"), at_least=1)
        assert len(issued) == 1


async def test_a_malformed_message_is_dead_lettered_and_the_next_good_one_still_processed(platform_sqlite) -> None:
    platform = platform_sqlite
    app = platform.finance()
    async with running(app):
        good = city_joined()
        await produce(
            platform.kafka,
            platform.topic(CITIES),
            [
                (b"k", b"\xde\xad\xbe\xef", []),  # not a CloudEvent at all
                (b"k", b'{"city_id": "not-a-uuid"}', good[2]),  # right headers, wrong payload
                good,
            ],
        )
        letters = await read_topic(platform.kafka, platform.topic("icc.finance.dead-letter"), at_least=2)
        assert len(letters) == 2
        reasons = sorted(header(letter, "dlq_reason") for letter in letters)
        assert reasons[0].startswith("invalid CityJoined v1: city_id") and reasons[1].startswith("not a CloudEvent")
        assert {header(letter, "dlq_topic") for letter in letters} == {platform.topic(CITIES)}
        assert b"\xde\xad\xbe\xef" in {letter.value for letter in letters}
        await eventually(lambda: invoices(app), what="the good CityJoined being invoiced")
        group = app.state.runtime.settings.consumer_group
        await eventually(lambda: committed_everything(platform.kafka, group, [platform.topic(CITIES)]), what="offsets committed past the poison")


async def test_a_consumer_killed_between_commit_and_ack_gives_no_second_invoice(platform_sqlite) -> None:
    platform = platform_sqlite
    env = {**os.environ, **{name.upper(): str(value) for name, value in platform.settings("finance").items()}}
    crashing = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crashing_finance.py"))],
        env=env, cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        await produce(platform.kafka, platform.topic(CITIES), [city_joined()])
        exit_code = await eventually(lambda: _exited(crashing), timeout=60, what="the crashing consumer dying after its commit")
        assert exit_code == 86, crashing.stderr.read().decode()[-2000:]
    finally:
        if crashing.poll() is None:
            crashing.kill()
    # The effect is committed, the offset is not: Kafka will deliver the same CityJoined again.
    app = platform.finance()
    group, topics = app.state.runtime.settings.consumer_group, [platform.topic(CITIES)]
    assert not await committed_everything(platform.kafka, group, topics)
    async with running(app):
        assert await invoices(app) == 1
        await eventually(lambda: committed_everything(platform.kafka, group, topics), what="the redelivery being acked")
        assert app.state.runtime.consumer.totals["duplicates"] == 1  # it did come again, and was recognised
        assert await invoices(app) == 1
        async with app.state.runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 1


async def _exited(process: subprocess.Popen) -> int | None:
    return process.poll()


async def test_a_service_restarted_while_the_broker_is_down_publishes_its_outbox_once_it_is_back(tmp_path, sqlite_only) -> None:
    broker = LocalKafka(home=tmp_path / "kafka", port=19092, controller_port=19093)
    broker.start()
    try:
        from tests.e2e.conftest import Platform
        from tests.support import topic_prefix

        platform = Platform(broker.connection(), topic_prefix(), sqlite_only)
        async with running(platform.membership()) as membership:  # first life: topics made, broker up
            await eventually(lambda: _ready(membership), what="membership ready")
        broker.stop()

        app = platform.membership()  # restarted while the broker is down
        async with running(app) as membership:
            city = await join(membership)
            assert await app.state.runtime.relay.pending() == 2  # CityApplied, CityJoined wait in the outbox
            not_ready = await membership.get("/ready")
            assert not_ready.status_code == 503 and not_ready.json()["checks"]["outbox_pending"] == "2"

            await asyncio.to_thread(broker.start)
            await eventually(lambda: _drained(app), timeout=60, what="the outbox draining after the broker came back")
            records = await read_topic(broker.connection(), platform.topic(CITIES), at_least=2)
            assert [header(r, "ce_type") for r in records] == ["CityApplied", "CityJoined"]
            assert {r.key.decode() for r in records} == {city["id"]}
    finally:
        broker.stop()


async def _ready(client):
    return (await client.get("/ready")).status_code == 200


async def _drained(app) -> bool:
    return await app.state.runtime.relay.pending() == 0
