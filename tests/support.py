"""Test helpers: polling with a deadline, running a service in-process, reading topics."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI

from services.common.kafka import client_args
from services.common.settings import KafkaConnection
from tests.identity import STAND_IN, TEST_KEYS, staff_headers

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds saying what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s (last: {last!r})")


def trust_stand_in(app: FastAPI) -> bool:
    """Let `app` trust the tests' stand-in identity provider, unless the test built it with keys
    of its own (then it signs its own tokens). Whether it now trusts the stand-in."""
    verifier = app.state.auth
    if getattr(verifier.keys, "_source", None) == TEST_KEYS:
        return False
    verifier.keys = STAND_IN.keys()
    return True


@asynccontextmanager
async def running(app: FastAPI, *, signed_in: bool = True, stand_in: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service in this process: its lifespan (migrations, relay, consumers) and an HTTP client.

    The client sends a staff token (every role, so no city scope: tests.identity.staff_headers) from the
    stand-in provider; a test of who may do what sends its own `headers=STAND_IN.bearer(...)`,
    or asks for `signed_in=False`. `stand_in=False`: the app keeps the provider of its settings
    (a real Keycloak), and the client sends no token by default."""
    stand_in = stand_in and trust_stand_in(app)
    headers = staff_headers() if stand_in and signed_in else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", headers=headers) as client:
            yield client


async def consumed(app: FastAPI, timeout: float = 30.0) -> None:
    """Wait until the service's consumer has joined its group and been given partitions."""
    runtime = app.state.runtime

    async def joined() -> bool:
        return runtime.broker_connected.is_set() and any(
            s.consumer is not None and s.consumer.assignment() for s in runtime.broker.subscribers
        )

    await eventually(joined, timeout=timeout, what=f"{runtime.settings.service} consumer joining its group")


def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


async def read_topic(kafka: KafkaConnection, topic: str, *, at_least: int = 0, timeout: float = 20.0) -> list[ConsumerRecord]:
    """Every record on `topic` from the start, waiting until there are `at_least` of them."""
    consumer = AIOKafkaConsumer(topic, **client_args(kafka), auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            if at_least and len(records) >= at_least:
                # one more short read: anything beyond `at_least` (a duplicate) must show too
                for partition_records in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(partition_records)
                break
            if not at_least and not batch and records:
                break
        return records
    finally:
        await consumer.stop()


async def produce(kafka: KafkaConnection, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(**client_args(kafka), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def header(record: ConsumerRecord, name: str) -> str | None:
    return next((v.decode() for k, v in record.headers if k == name), None)


async def committed_everything(kafka: KafkaConnection, group: str, topics: list[str]) -> bool:
    """Whether `group` has committed offsets up to the end of every partition of `topics` (no lag)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**client_args(kafka))
    probe = AIOKafkaConsumer(**client_args(kafka))
    await admin.start()
    await probe.start()
    try:
        described = await admin.describe_topics(topics)
        partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except KafkaError as err:
            if err.retriable:  # e.g. a fresh broker still electing the group coordinator
                return False
            raise
        ends = await probe.end_offsets(partitions)
        return all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items() if end > 0)
    finally:
        await probe.stop()
        await admin.close()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve a service over real HTTP on a free loopback port (for a browser or a stream); yields its
    base URL. Use it inside `running(app)`, which owns the app's lifespan."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off",
                       timeout_graceful_shutdown=1)  # open event streams must not hold the shutdown
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), timeout=30, what="the HTTP server starting")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


async def _started(server) -> bool:
    return server.started


async def password_grant(keycloak_url: str, username: str, password: str) -> str:
    """An access token from a real Keycloak for a demo user (the public client icc-cli)."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{keycloak_url}/realms/icc/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "icc-cli", "username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def metric(text: str, name: str, *, every: bool = False, **labels: str) -> Any:
    """A sample of a Prometheus text exposition: the value of `name` with `labels` (0 if absent),
    or with `every=True` all its series as {sorted (label, value) pairs: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }
    return found if every else sum(found.values())
