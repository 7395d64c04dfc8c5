"""What the bench's parts share: processes under test, databases, topics, records, figures."""

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined, Event
from contracts.topics import PARTITIONS
from deploy.kafka.acls import grant
from deploy.kafka.principals import login
from services.common.consumer import FETCH_MAX_WAIT_MS
from services.common.kafka import client_args
from services.common.settings import KafkaConnection
from tests.identity import STAND_IN

ROOT = Path(__file__).resolve().parents[1]
LOCAL_POSTGRES = "postgresql+asyncpg://icc:icc@127.0.0.1:5432/icc"
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


class Run:
    """One bench run: a topic prefix, a scratch directory, and the databases it creates (dropped at the end)."""

    def __init__(self, kafka: KafkaConnection, database: str) -> None:
        self.kafka = kafka  # the bench's own login: an admin on a secured cluster
        self.database = database
        self.tmp = Path(tempfile.mkdtemp(prefix="icc-bench-"))
        self.schemas: list[str] = []
        self.topics: set[str] = set()
        self.processes: list[Process] = []
        # The services under test trust a stand-in identity provider whose keys this run serves;
        # the bench's requests carry its token (verified per request, as in production).
        self._jwks = STAND_IN.serving_jwks()
        self.jwks_url = self._jwks.__enter__()

    def prefix(self) -> str:
        return f"bench{uuid.uuid4().hex[:8]}."

    def database_env(self, name: str) -> dict[str, str]:
        """A fresh database for one process: a SQLite file here, or a schema of its own on PostgreSQL."""
        if self.database == "postgresql":
            schema = f"bench_{uuid.uuid4().hex[:8]}_{name}"
            self.schemas.append(schema)
            return {"DATABASE_URL": os.environ.get("DATABASE_URL", LOCAL_POSTGRES), "DATABASE_SCHEMA": schema}
        return {"DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp}/{name}-{uuid.uuid4().hex[:6]}.db"}

    async def grant(self, prefix: str, services: Iterable[str]) -> None:
        """On a secured cluster, the services' ACLs for this prefix (they log in as themselves)."""
        if self.kafka.secured:
            await asyncio.to_thread(grant, self.kafka, prefix, list(services))

    def start(
        self, name: str, module: str, prefix: str, *, port: int | None = None, database: bool = True, principal: str = "finance",
        env: dict[str, str] | None = None,
    ) -> "Process":
        """`env`: more settings (replicas of one service share a `database_env` and get REPLICA_ID)."""
        extra = env or {}
        env = {**os.environ, **login(self.kafka, principal).env(), "KAFKA_TOPIC_PREFIX": prefix, "LOG_LEVEL": "WARNING",
               "OIDC_ISSUER": STAND_IN.issuer, "OIDC_JWKS_URL": self.jwks_url}
        env.pop("DATABASE_SCHEMA", None)
        if port:
            env["HTTP_PORT"] = str(port)
        if database:
            env.update(self.database_env(name))
        env.update(extra)
        process = Process(name, module, env, self.tmp / f"{name}.log", port)
        self.processes.append(process)
        return process

    async def create_topics(self, names: Iterable[str]) -> None:
        names = sorted(set(names) - self.topics)
        admin = AIOKafkaAdminClient(**client_args(self.kafka))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [NewTopic(n, PARTITIONS, 1) for n in names if n not in existing]
            if missing:
                await admin.create_topics(missing)
        finally:
            await admin.close()
        self.topics.update(names)

    async def close(self, *, keep: bool) -> None:
        self._jwks.__exit__(None, None, None)
        for process in self.processes:
            process.stop()
        await self._drop_topics()
        await self._drop_schemas()
        if keep:
            say(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def _drop_topics(self) -> None:
        admin = AIOKafkaAdminClient(**client_args(self.kafka))
        await admin.start()
        try:
            # The services create theirs (dead letters too): everything under this run's prefixes goes.
            prefixes = {t.split(".", 1)[0] + "." for t in self.topics}
            mine = [t for t in await admin.list_topics() if any(t.startswith(p) for p in prefixes)]
            if mine:
                await admin.delete_topics(mine)
        except Exception as err:  # a leftover topic is untidy, not a failed bench
            say(f"could not delete the bench topics ({err!r})")
        finally:
            await admin.close()

    async def _drop_schemas(self) -> None:
        if not self.schemas:
            return
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        from services.common.db import normalise_url

        engine = create_async_engine(normalise_url(os.environ.get("DATABASE_URL", LOCAL_POSTGRES)))
        try:
            async with engine.begin() as connection:
                for schema in self.schemas:
                    await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()


class Process:
    """A process under test (a service, the raw pipeline, the bare endpoint), logging to a file."""

    def __init__(self, name: str, module: str, env: dict[str, str], log: Path, port: int | None) -> None:
        self.name, self.port, self.log = name, port, log
        self._log = log.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=self._log, stderr=self._log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far, all threads (0 where /proc is not there)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def check(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"{self.name} exited ({self.process.returncode}); see {self.log}")

    async def ready(self, timeout: float = 90) -> None:
        """Wait for GET /ready to answer 200 (database and broker reachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if await asyncio.to_thread(self._answers):
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"{self.name} not ready in {timeout:.0f}s; see {self.log}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                return response.status == 200
        except Exception:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


def producer(kafka: KafkaConnection, **overrides) -> AIOKafkaProducer:
    """Configured like the services' outbox relay (idempotent, acks=all)."""
    return AIOKafkaProducer(**client_args(kafka), **{"enable_idempotence": True, "acks": "all", "linger_ms": 0, **overrides})


def record(event: Event, service: str) -> Record:
    envelope = wrap(event, service=service)
    return envelope.key.encode(), to_value(envelope), to_headers(envelope)


def city_joined() -> Record:
    return record(CityJoined(city_id=uuid.uuid4(), name="Bench City", country="FR", european=True, joined_on=date(2026, 3, 1)), "membership")


def correlation(headers: Iterable[tuple[str, bytes]]) -> str:
    return next(value.decode() for name, value in headers if name == "ce_correlationid")


class Arrivals:
    """Reads a topic from the start in the background and notes when each record arrives, by its
    correlation id (or by its key, with by_key=True)."""

    def __init__(self, kafka: KafkaConnection, topic: str, *, by_key: bool = False) -> None:
        # fetch_max_wait_ms as the services' consumers (services.common.consumer): with aiokafka's
        # default 500 ms, a record could reach the bench up to 500 ms after it was on the topic, and
        # every stage measured from its arrival (and the GETs started on it) was that much late.
        self._consumer = AIOKafkaConsumer(topic, **client_args(kafka), auto_offset_reset="earliest", enable_auto_commit=False,
                                          fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        self._by_key = by_key
        self.at: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Arrivals":
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    id_ = r.key.decode() if self._by_key else correlation(r.headers)
                    self.at.setdefault(id_, now)
                    if (waiter := self._waiters.pop(id_, None)) and not waiter.done():
                        waiter.set_result(None)
            if batch:
                self._changed.set()

    async def arrived(self, id_: str, timeout: float) -> None:
        if id_ in self.at:
            return
        waiter = self._waiters.setdefault(id_, asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise SystemExit(f"{id_} did not arrive within {timeout:.0f}s") from None

    async def wait_for(self, ids: set[str], timeout: float, progress: str | None = None) -> None:
        """Until every id in `ids` has arrived; says how far it got every two seconds if `progress`."""
        deadline = time.monotonic() + timeout
        last_said = time.monotonic()
        while True:
            done = sum(1 for i in ids if i in self.at)
            if done == len(ids):
                return
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"only {done}/{len(ids)} {progress or 'records'} within {timeout:.0f}s")
            if progress and now - last_said >= 2:
                say(f"  {done}/{len(ids)} {progress}")
                last_said = now
            self._changed.clear()
            try:
                async with asyncio.timeout(0.5):
                    await self._changed.wait()
            except TimeoutError:
                pass
