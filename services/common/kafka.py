"""The Kafka connection every service shares: the FastStream broker for consumers, the idempotent
producer for the outbox relay, and topic creation. `client_args` is the one place that turns a
KafkaConnection (cluster, security protocol, SASL login) into a client's arguments: every aiokafka
client in the project, tools and tests included, is built with it."""

import logging
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, TopicAuthorizationFailedError
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts.topics import PARTITIONS, owned_prefix
from services.common.settings import KafkaConnection, ServiceSettings

log = logging.getLogger("icc.kafka")

_SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


def broker_security(kafka: KafkaConnection) -> BaseSecurity | None:
    """The login, as FastStream's broker takes it (`security=`); None on a PLAINTEXT cluster."""
    if not kafka.secured:
        return None
    tls = ssl.create_default_context(cafile=kafka.ssl_cafile) if kafka.security_protocol == "SASL_SSL" else None
    return _SASL[kafka.sasl_mechanism](
        kafka.username, kafka.password.get_secret_value(), ssl_context=tls, use_ssl=tls is not None
    )


def client_args(kafka: KafkaConnection) -> dict[str, Any]:
    """`bootstrap_servers` and the security arguments of an aiokafka producer, consumer or admin
    client: the same translation FastStream applies to `broker_security`, so every client logs in alike."""
    return {"bootstrap_servers": kafka.bootstrap_servers, **parse_security(broker_security(kafka))}


def create_broker(settings: ServiceSettings, middlewares: Sequence[Any] = ()) -> KafkaBroker:
    return KafkaBroker(
        # A list: FastStream takes a string for one host, where aiokafka splits "a:9092,b:9092" itself.
        [server.strip() for server in settings.kafka_bootstrap_servers.split(",")],
        security=broker_security(settings.kafka),
        client_id=f"icc-{settings.service}",
        # FastStream logs every batch at INFO; at our rates that halves throughput and drowns the logs.
        log_level=logging.DEBUG,
        middlewares=tuple(middlewares),  # the service's metrics (services.common.metrics)
    )


def create_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """Idempotent producer: acks from all in-sync replicas, broker-side dedupe of retried sends."""
    return AIOKafkaProducer(
        **client_args(settings.kafka),
        client_id=f"icc-{settings.service}-relay",
        enable_idempotence=True,
        acks="all",
        linger_ms=0,  # the relay queues a whole batch before yielding: waiting adds latency, not batching
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


class TopicsNotCreatedYet(Exception):
    """Topics this service consumes do not exist, and its principal may not create them: the
    service that writes them creates them when it first starts."""


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str]) -> None:
    """Create the physical topics this service reads and writes, if the cluster lacks them: PARTITIONS
    partitions, KAFKA_REPLICATION_FACTOR replicas (the cluster's min.insync.replicas applies).

    On a secured cluster a service may create only its own topics; one it consumes but may not
    create raises TopicsNotCreatedYet (the caller retries), so consumers never subscribe to a
    topic that is not there."""
    admin = AIOKafkaAdminClient(**client_args(settings.kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        wanted = sorted({settings.physical_topic(t) for t in topics})
        existing = set(await admin.list_topics())
        replicas = settings.kafka_replication_factor
        missing = [NewTopic(t, num_partitions=PARTITIONS, replication_factor=replicas) for t in wanted if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
        failed = {topic: (code, message) for topic, code, message, *_ in response.topic_errors
                  if code not in (0, TopicAlreadyExistsError.errno)}  # already there: another service was first
        created = sorted({t.name for t in missing} - set(failed))
        if created:
            log.info("topics created", extra={"topics": created})
        if others := {t: f"error {code}: {message}" for t, (code, message) in failed.items() if code != TopicAuthorizationFailedError.errno}:
            raise RuntimeError(f"could not create topics {others}")
        own = settings.physical_topic(owned_prefix(settings.service))
        if denied := sorted(t for t in failed if t.startswith(own)):
            raise PermissionError(
                f"principal {settings.kafka.username!r} may not create its own topics {denied}: the cluster lacks this "
                f"service's ACLs; grant them as a super user: python -m deploy.kafka grant --prefix '{settings.kafka_topic_prefix}'"
            )
        if failed:
            raise TopicsNotCreatedYet(f"waiting for {sorted(failed)} to be created by the service that writes them")
    finally:
        await admin.close()
