"""Cities join while one of the three brokers stops and comes back: every city gets exactly one
invoice. Writes are acknowledged by all in-sync replicas (acks=all) and a partition takes writes
while two of its three replicas are in sync (min.insync.replicas=2), so the two live nodes carry
the platform through the outage."""

import asyncio
import json
from collections import Counter
from contextlib import asynccontextmanager

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from sqlalchemy import func, select

from contracts.topics import PARTITIONS, Topic
from deploy.cluster import NODES, REPLICAS, LocalCluster
from deploy.cluster.__main__ import main as cluster_cli
from services.common.kafka import client_args
from services.common.settings import KafkaConnection
from services.finance.db import StoredInvoice
from tests.e2e.conftest import Platform
from tests.e2e.test_join_to_invoice import join
from tests.support import consumed, eventually, header, read_topic, running, topic_prefix

pytestmark = pytest.mark.cluster

PER_PHASE = 8  # cities joining in each phase: all nodes up, one stopping, one down, one coming back


async def test_a_broker_stopped_mid_stream_loses_and_doubles_no_invoice(kafka_cluster: LocalCluster, sqlite_only) -> None:
    cluster = kafka_cluster
    platform = Platform(cluster.connection(), topic_prefix(), sqlite_only).as_themselves("membership", "finance")
    on_cluster = {"KAFKA_REPLICATION_FACTOR": str(REPLICAS)}
    membership_app, finance_app = platform.membership(**on_cluster), platform.finance(**on_cluster)
    topics = [platform.topic(Topic.CITIES), platform.topic(Topic.INVOICES)]
    joined: list[str] = []

    async def join_cities(count: int) -> None:
        for _ in range(count):
            n = len(joined) + 1
            city = await join(membership, {"name": f"Ville {n}", "country": "FR", "population": 10_000 + n})
            joined.append(city["id"])

    async def everyone_invoiced() -> bool:
        return set(await invoices_per_city(finance_app)) == set(joined)

    async with admin(platform.kafka) as client:  # travel writes claims, which finance reads; travel is not in this flow
        await client.create_topics([NewTopic(platform.topic(Topic.CLAIMS), PARTITIONS, REPLICAS)])

    async with running(membership_app) as membership, running(finance_app):
        await consumed(finance_app)
        async with admin(platform.kafka) as client:
            # the services created their topics with the cluster's durability settings
            for topic in await client.describe_topics(topics):
                assert len(topic["partitions"]) == PARTITIONS
                assert all(len(p["replicas"]) == REPLICAS for p in topic["partitions"])
            assert await min_insync(client, topics) == {topic: "2" for topic in topics}
            # the node coordinating finance's group (where its offsets are committed) is the one to go
            group = finance_app.state.runtime.settings.consumer_group
            victim = await eventually(lambda: coordinator(client, group), what="finance's group coordinator")

        await join_cities(PER_PHASE)
        stopping = asyncio.create_task(asyncio.to_thread(cluster.stop_node, victim))
        await join_cities(PER_PHASE)  # while it shuts down
        await stopping
        alive = set(range(1, NODES + 1)) - {victim}
        async with admin(platform.kafka) as client:
            partitions = await eventually(lambda: partitions_in_sync_on(client, topics, alive), what=f"node {victim} leaving every ISR")
            assert all(p["leader"] in alive for p in partitions)
        await join_cities(PER_PHASE)  # with one node down: acknowledged by the two in-sync replicas
        await eventually(everyone_invoiced, timeout=90, what="every city invoiced while a node is down")

        starting = asyncio.create_task(asyncio.to_thread(cluster.start_node, victim))
        await join_cities(PER_PHASE)  # while it comes back
        await starting
        async with admin(platform.kafka) as client:
            await eventually(lambda: partitions_in_sync_on(client, topics, alive | {victim}), timeout=90,
                             what=f"node {victim} back in every ISR")
        await eventually(everyone_invoiced, timeout=90, what="every city invoiced")

        assert len(joined) == 4 * PER_PHASE
        assert await invoices_per_city(finance_app) == {city: 1 for city in joined}
        # on the wire (CityApplied and CityJoined per city): one CityJoined and one InvoiceIssued per city. Counted by
        # event id: a record the relay sent again after a lost acknowledgement repeats its id, and consumers skip it.
        facts = await read_topic(platform.kafka, platform.topic(Topic.CITIES), at_least=2 * len(joined), timeout=60)
        cities = {header(record, "ce_id"): record.key.decode() for record in facts if header(record, "ce_type") == "CityJoined"}
        assert Counter(cities.values()) == {city: 1 for city in joined}
        issued = await read_topic(platform.kafka, platform.topic(Topic.INVOICES), at_least=len(joined), timeout=60)
        invoices = {header(record, "ce_id"): json.loads(record.value)["city_id"] for record in issued}
        assert Counter(invoices.values()) == {city: 1 for city in joined}


async def test_the_cluster_commands_report_each_node(kafka_cluster: LocalCluster, capsys) -> None:
    assert await asyncio.to_thread(cluster_cli, ["status", "--home", str(kafka_cluster.home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"node {n}" for n in range(1, NODES + 1)]
    assert all(": ready, pid " in line for line in lines)
    assert cluster_cli(["env", "--user", "finance", "--home", str(kafka_cluster.home)]) == 0
    env = capsys.readouterr().out
    assert f"export KAFKA_BOOTSTRAP_SERVERS={kafka_cluster.bootstrap_servers}" in env
    assert "export KAFKA_SASL_USERNAME=finance" in env and f"export KAFKA_REPLICATION_FACTOR={REPLICAS}" in env
    assert "export MEMBERSHIP_KAFKA_SASL_PASSWORD=icc-local-membership" in env  # what `make up` gives membership


async def invoices_per_city(finance_app) -> dict[str, int]:
    async with finance_app.state.runtime.sessions() as session:
        rows = await session.execute(select(StoredInvoice.city_id, func.count()).group_by(StoredInvoice.city_id))
        return {str(city): count for city, count in rows}


@asynccontextmanager
async def admin(kafka: KafkaConnection):
    client = AIOKafkaAdminClient(**client_args(kafka), request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def coordinator(client: AIOKafkaAdminClient, group: str) -> int | None:
    try:
        return await client.find_coordinator(group)
    except KafkaError:  # not elected yet
        return None


async def partitions_in_sync_on(client: AIOKafkaAdminClient, topics: list[str], nodes: set[int]) -> list[dict] | None:
    """Every partition of `topics`, if each one's in-sync replicas are exactly `nodes` (else None)."""
    try:
        partitions = [p for topic in await client.describe_topics(topics) for p in topic["partitions"]]
    except KafkaError:  # metadata from a node going away
        return None
    return partitions if all(set(p["isr"]) == nodes for p in partitions) else None


async def min_insync(client: AIOKafkaAdminClient, topics: list[str]) -> dict[str, str]:
    responses = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics])
    return {
        resource["resource_name"]: entry["config_value"]
        for response in responses
        for resource in response.to_object()["resources"]
        for entry in resource["config_entries"]
        if entry["config_names"] == "min.insync.replicas"
    }
