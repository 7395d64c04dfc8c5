"""Per service: the outbox backlog (rows not yet published) and its consumer group's lag per partition.

The database of each service comes from its settings (DATABASE_URL, DATABASE_SCHEMA; default: the
local SQLite file, schema named after the service); `<SERVICE>_DATABASE_URL` and
`<SERVICE>_DATABASE_SCHEMA` override them for one service, where each has a database of its own."""

import asyncio
import os
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from contracts.topics import CONSUMES, SERVICES
from deploy.ops.dead_letters import partitions, physical_dead_letter_topic
from services.common.db import OutboxMessage, create_engine, is_sqlite
from services.common.kafka import client_args
from services.common.settings import KafkaConnection, ServiceSettings
from services.events.settings import EventsSettings
from services.finance.settings import FinanceSettings
from services.membership.settings import MembershipSettings
from services.notifications.settings import NotificationsSettings
from services.travel.settings import TravelSettings

SETTINGS: dict[str, type[ServiceSettings]] = {
    "membership": MembershipSettings, "events": EventsSettings, "travel": TravelSettings, "finance": FinanceSettings,
    "notifications": NotificationsSettings,
}


@dataclass
class ServiceStatus:
    service: str
    database: str
    backlog: int | None = None  # outbox rows not yet published; None: could not read (see `problem`)
    oldest_unpublished: str | None = None
    problem: str | None = None
    group: str | None = None
    lag: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> end offset - committed offset
    dead_letters: int = 0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def lines(self) -> list[str]:
        outbox = (f"outbox backlog {self.backlog}" + (f" (oldest {self.oldest_unpublished})" if self.oldest_unpublished else "")
                  if self.backlog is not None else f"outbox: {self.problem}")
        head = f"{self.service:<11} {outbox}; dead letters {self.dead_letters}"
        if self.group is None:
            return [head + "; consumes nothing"]
        lines = [head + f"; group {self.group} lag {self.total_lag}"]
        lines += [f"    {partition:<40} lag {lag}" for partition, lag in sorted(self.lag.items())]
        return lines


def service_settings(service: str, prefix: str) -> ServiceSettings:
    overrides: dict[str, str] = {"KAFKA_TOPIC_PREFIX": prefix}
    if url := os.environ.get(f"{service.upper()}_DATABASE_URL"):
        overrides["DATABASE_URL"] = url
    if schema := os.environ.get(f"{service.upper()}_DATABASE_SCHEMA"):
        overrides["database_schema"] = schema
    return SETTINGS[service](**overrides)


async def outbox_backlog(settings: ServiceSettings, status: ServiceStatus) -> None:
    if is_sqlite(settings.db_url):
        path = settings.db_url.split(":///", 1)[-1]
        if not os.path.exists(path):
            status.problem = f"no database at {path} (set DATABASE_URL or {settings.service.upper()}_DATABASE_URL)"
            return
    engine = create_engine(settings.db_url, settings.db_schema)
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.published_at.is_(None))
            )).one()
        status.backlog = row[0]
        status.oldest_unpublished = row[1].isoformat(timespec="seconds") if row[1] else None
    except ProgrammingError as err:
        status.problem = f"no outbox table in schema {settings.db_schema} (not migrated yet?): {err.orig}"
    except (OperationalError, DBAPIError, OSError) as err:
        status.problem = f"database unreachable: {getattr(err, 'orig', err)}"
    finally:
        await engine.dispose()


async def consumer_lag(kafka: KafkaConnection, settings: ServiceSettings, status: ServiceStatus) -> None:
    topics = [settings.physical_topic(t) for t in CONSUMES[settings.service]]
    dead = await partitions(kafka, [physical_dead_letter_topic(settings.service, settings.kafka_topic_prefix)])
    wanted = await partitions(kafka, topics) if topics else []
    admin = AIOKafkaAdminClient(**client_args(kafka), client_id="icc-ops", request_timeout_ms=15_000)
    probe = AIOKafkaConsumer(**client_args(kafka), group_id=None, client_id="icc-ops")
    await admin.start()
    await probe.start()
    await asyncio.sleep(0)  # aiokafka: a consumer stopped before its tasks first ran raises CancelledError
    try:
        if dead:
            ends, starts = await probe.end_offsets(dead), await probe.beginning_offsets(dead)
            status.dead_letters = sum(ends[tp] - starts[tp] for tp in dead)
        if not topics:
            return
        status.group = settings.consumer_group
        committed = await _committed(admin, settings.consumer_group)
        ends = await probe.end_offsets(wanted) if wanted else {}
        for tp, end in ends.items():
            done = committed.get(tp)
            status.lag[f"{tp.topic}:{tp.partition}"] = end - (done.offset if done is not None and done.offset >= 0 else 0)
    finally:
        await probe.stop()
        await admin.close()


async def _committed(admin: AIOKafkaAdminClient, group: str, timeout: float = 15.0) -> dict:
    """The group's committed offsets; a broker may need a moment to name the group's coordinator."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await admin.list_consumer_group_offsets(group)
        except KafkaError as err:
            if not err.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def status(kafka: KafkaConnection, prefix: str, services: list[str] | None = None) -> list[ServiceStatus]:
    found = []
    for service in services or SERVICES:
        settings = service_settings(service, prefix)
        where = settings.db_url if is_sqlite(settings.db_url) else f"{_safe(settings.db_url)} schema {settings.db_schema}"
        one = ServiceStatus(service, where)
        await outbox_backlog(settings, one)
        await consumer_lag(kafka, settings, one)
        found.append(one)
    return found


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

