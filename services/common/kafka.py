"""The Kafka connection every service shares: the FastStream broker for consumers, the idempotent
producer for the outbox relay, and topic creation."""

import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from contracts.topics import PARTITIONS
from services.common.settings import ServiceSettings

log = logging.getLogger("icc.kafka")


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"icc-{settings.service}",
        # FastStream logs every batch at INFO; at our rates that halves throughput and drowns the logs.
        log_level=logging.DEBUG,
    )


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """Idempotent producer: acks from all in-sync replicas, broker-side dedupe of retried sends."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"icc-{settings.service}-relay",
        enable_idempotence=True,
        acks="all",
        linger_ms=0,  # the relay queues a whole batch before yielding: waiting adds latency, not batching
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str]) -> None:
    """Create the physical topics this service reads and writes, if the cluster lacks them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        wanted = sorted({settings.physical_topic(t) for t in topics})
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another service created it first
            log.info("topics created", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()
