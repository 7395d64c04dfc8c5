"""Authentication and authorisation on a real secured broker: who gets in, and what each may do."""

import logging

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from contracts.topics import PARTITIONS, Topic
from deploy.kafka.acls import grant
from deploy.kafka.local import LocalKafka
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS, login
from services.common.kafka import client_args
from services.common.settings import KafkaConnection
from tests.e2e.conftest import Platform
from tests.support import consumed, eventually, read_topic, running, topic_prefix


async def _topics(kafka: KafkaConnection) -> list[str]:
    admin = AIOKafkaAdminClient(**client_args(kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def _create(kafka: KafkaConnection, *topics: str) -> None:
    admin = AIOKafkaAdminClient(**client_args(kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()


async def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(secured_kafka, caplog) -> None:
    assert isinstance(await _topics(secured_kafka), list)  # the admin gets in: the broker is up and answering
    anonymous = KafkaConnection(bootstrap_servers=secured_kafka.bootstrap_servers)
    with pytest.raises(KafkaConnectionError):
        await _topics(anonymous)

    caplog.set_level(logging.ERROR, logger="aiokafka")
    for stranger in (secured_kafka.as_user("finance", "not-the-password"), secured_kafka.as_user("mallory", "guess")):
        caplog.clear()
        with pytest.raises(KafkaConnectionError):
            await _topics(stranger)
        assert "SaslAuthenticationFailed" in caplog.text  # refused at login, not a broker that is down


async def test_membership_may_write_its_own_topics_only_and_read_none_it_does_not_consume(secured_kafka) -> None:
    prefix = topic_prefix()
    invoices, workshops, cities = (f"{prefix}{t}" for t in (Topic.INVOICES, Topic.WORKSHOPS, Topic.CITIES))
    await _create(secured_kafka, invoices, workshops)  # they exist: what follows is about rights, not absence
    grant(secured_kafka, prefix, ["membership"])
    membership = login(secured_kafka, "membership")

    producer = AIOKafkaProducer(**client_args(membership), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(cities, b"its own topic", key=b"city")  # created on first write: its prefix
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(invoices, b"a forged invoice", key=b"invoice")
    finally:
        await producer.stop()
    assert len(await read_topic(secured_kafka, cities, at_least=1)) == 1
    assert await read_topic(secured_kafka, invoices, timeout=2) == []  # nothing got through

    # it consumes nothing, so it may read nothing it did not write, nor join another service's group
    reader = AIOKafkaConsumer(workshops, **client_args(membership), auto_offset_reset="earliest", enable_auto_commit=False)
    with pytest.raises(TopicAuthorizationFailedError):
        await reader.start()
    await reader.stop()
    in_finance_group = AIOKafkaConsumer(cities, **client_args(membership), group_id=f"{prefix}icc.finance")
    with pytest.raises(GroupAuthorizationFailedError):
        await in_finance_group.start()
        await in_finance_group.getmany(timeout_ms=5_000)
    await in_finance_group.stop()


async def test_a_service_may_not_create_a_topic_of_another_service(secured_kafka) -> None:
    prefix = topic_prefix()
    grant(secured_kafka, prefix, ["membership"])
    admin = AIOKafkaAdminClient(**client_args(login(secured_kafka, "membership")), request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"{prefix}{Topic.BUDGETS}", PARTITIONS, 1),
                                              NewTopic(f"{prefix}icc.membership.dead-letter", PARTITIONS, 1)])
    finally:
        await admin.close()
    errors = {topic: code for topic, code, *_ in response.topic_errors}
    assert errors == {f"{prefix}{Topic.BUDGETS}": TopicAuthorizationFailedError.errno, f"{prefix}icc.membership.dead-letter": 0}


async def test_nobody_gets_in_through_the_controller_listener(project_broker: LocalKafka, caplog) -> None:
    # The broker is a super user on its own controller listener; that listener must not let a client in.
    controller = f"127.0.0.1:{project_broker.controller_port}"
    caplog.set_level(logging.ERROR, logger="aiokafka")
    for how in ({}, {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                     "sasl_plain_username": ADMIN, "sasl_plain_password": LOCAL_PASSWORDS[ADMIN]}):
        admin = AIOKafkaAdminClient(bootstrap_servers=controller, request_timeout_ms=5_000, **how)
        with pytest.raises(KafkaConnectionError):
            await admin.start()
        await admin.close()
    assert "SaslAuthenticationFailed" in caplog.text


async def test_a_service_waits_for_the_topics_it_consumes_but_may_not_create(secured_kafka, sqlite_only) -> None:
    platform = Platform(secured_kafka, topic_prefix(), sqlite_only).as_themselves("finance")
    app = platform.finance()
    async with running(app) as finance:
        reason = await _eventually_waiting(finance)
        assert platform.topic(Topic.CITIES) in reason and platform.topic(Topic.CLAIMS) in reason
        assert platform.topic(Topic.INVOICES) in await _topics(secured_kafka)  # its own: it made them itself
        await _create(secured_kafka, platform.topic(Topic.CITIES), platform.topic(Topic.CLAIMS))  # their writers' job
        await consumed(app)


async def _eventually_waiting(finance) -> str:
    async def waiting_for_topics() -> str | None:
        response = await finance.get("/ready")
        broker = response.json()["checks"]["broker"]
        return broker if response.status_code == 503 and "waiting for" in broker else None

    return await eventually(waiting_for_topics, what="finance saying which topics it waits for")
