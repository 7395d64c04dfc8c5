"""The fault soak: the five services as processes (`python -m services.<name>`, each logged in as
itself, each on PostgreSQL in a schema of its own) on a private broker, with traffic through the
whole flow while things go wrong, then the books are checked.

Traffic (through the public APIs, signed in with the tests' stand-in provider): cities apply and
join (membership), their delegates register for workshops (events), claim their travel (travel),
and about half the cities pay their contribution (finance), fully or in part.

Meanwhile:
- each service is SIGKILLed several times and restarted (a kill lands between two HTTP requests to
  it, never inside one: a client that loses an answer cannot know whether its command was applied,
  and the soak checks the platform, not such a client; its consumers and relay are mid-flight);
- the broker is restarted (stopped cleanly, started again) while the services keep taking writes;
- a share of the records on the input topics is delivered again (copies of sent events);
- ~5% poison records go to the input topics: values that are not an event, a known type with an
  unknown schema version, records that are not CloudEvents at all.

Then, once every consumer group has caught up and every outbox is empty, from the databases and
the topics: every input had exactly one effect (no lost and no doubled invoice, registration,
claim decision, payment); every poison record is in the dead-letter topic of every service that
reads its topic, with its reason; no budget headroom is negative; the reconciliation balances to
the cent. It prints its figures.

By default about 10 000 events and three broker restarts (CI runs it: about 5 minutes here);
`--soak-events N` or SOAK_EVENTS=N for a longer run (e.g. 50 000, four kills per process). Each service runs as `SOAK_PROCESSES` replicas (default 2: one consumer group, one
schema, the relay under its lock), and the kills hit one replica at a time.
"""

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text

from contracts.topics import CONSUMES, SERVICES, Topic, consumer_group, dead_letter_topic
from deploy.kafka.acls import grant
from deploy.kafka.local import LocalKafka
from deploy.kafka.principals import login
from services.common.db import create_engine
from services.common.kafka import client_args
from services.common.retry import Backoff
from services.common.settings import KafkaConnection
from tests.identity import STAND_IN, staff_headers
from tests.support import committed_everything, eventually

pytestmark = [pytest.mark.soak, pytest.mark.kafka, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
BOUNDED_EVENTS = 10_000  # the floor; CI runs it (about 5 minutes here)
EVENTS_PER_CITY = 7  # applied, joined, invoiced, registered, claimed, decided, (half) paid
POISON_SHARE = 0.05
REDELIVERED_SHARE = 0.10
INPUTS = (Topic.CITIES, Topic.WORKSHOPS, Topic.CLAIMS)  # the topics services consume from each other
POISON_TYPES = {Topic.CITIES: "CityJoined", Topic.WORKSHOPS: "DelegateRegistered", Topic.CLAIMS: "TravelClaimed"}


_given: set[int] = set()


def _free_port() -> int:
    """A port free now and not handed to another process of this run (the kernel may offer a port
    it just offered again once the probe is closed)."""
    import socket

    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


@pytest.fixture
def events_wanted(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--soak-events") or int(os.environ.get("SOAK_EVENTS") or BOUNDED_EVENTS)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A private broker: the soak restarts it, which no shared one may suffer."""
    kafka = LocalKafka(home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port())
    kafka.start(timeout=120)
    try:
        yield kafka
    finally:
        kafka.stop()


@dataclass
class Figures:
    cities: int = 0
    registrations: int = 0
    claims: int = 0
    payments: int = 0
    paid: Decimal = Decimal("0.00")
    kills: Counter = field(default_factory=Counter)
    broker_restarts: int = 0
    redelivered: int = 0
    poison: dict[str, Topic] = field(default_factory=dict)  # poison key -> the topic it was sent to
    http_retries: int = 0


class Gate:
    """Requests to one process pass while it is open; closing it waits for those in flight."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    @asynccontextmanager
    async def closed(self) -> AsyncIterator[None]:
        self._open.clear()
        await self._idle.wait()
        try:
            yield
        finally:
            self._open.set()


class ServiceProcess:
    def __init__(self, name: str, replica: int, env: dict[str, str], log: Path) -> None:
        self.name, self.replica, self.env, self.log = name, replica, env, log
        self.port = int(env["HTTP_PORT"])
        self.gate = Gate()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", f"services.{self.name}"], cwd=ROOT, env=self.env,
                                            stdout=out, stderr=out)

    async def healthy(self, timeout: float = 120) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            async def answers() -> bool:
                if self.process.poll() is not None and "address already in use" in self.log.read_text()[-3000:]:
                    # The free port picked up front was taken meanwhile by another process: take another.
                    self.port = _free_port()
                    self.env["HTTP_PORT"] = str(self.port)
                    self.start()
                assert self.process.poll() is None, f"{self.name} exited; see {self.log}:\n{self.log.read_text()[-3000:]}"
                try:
                    response = await http.get(f"{self.url}/health")
                except httpx.HTTPError:
                    return False
                # Ours, not some other process that holds the port.
                return response.status_code == 200 and response.json().get("service") == self.name

            await eventually(answers, timeout=timeout, what=f"{self.name}#{self.replica} answering")

    async def kill_and_restart(self) -> None:
        async with self.gate.closed():
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)
            self.start()
            await self.healthy()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Platform:
    def __init__(self, broker: LocalKafka, postgres: str, tmp: Path, jwks_url: str, processes: int) -> None:
        self.broker = broker
        self.admin = broker.connection()
        self.prefix = f"soak{uuid.uuid4().hex[:8]}."
        self.postgres = postgres
        self.schemas = {name: f"soak_{self.prefix[4:12]}_{name}" for name in SERVICES}
        self.processes: dict[str, list[ServiceProcess]] = {}
        for name in SERVICES:
            self.processes[name] = []
            for replica in range(processes):
                env = {**os.environ, **login(self.admin, name).env(), "KAFKA_TOPIC_PREFIX": self.prefix,
                       "DATABASE_URL": postgres, "DATABASE_SCHEMA": self.schemas[name], "HTTP_PORT": str(_free_port()),
                       "OIDC_ISSUER": STAND_IN.issuer, "OIDC_JWKS_URL": jwks_url, "LOG_LEVEL": "WARNING",
                       "RELAY_POLL_SECONDS": "0.2", "RETRY_MAX_SECONDS": "1.0",
                       "SMTP_PORT": "1",  # notifications' mails stay pending: never into a capture server left running
                       "REPLICA_ID": str(replica), "REPLICAS": str(processes)}
                self.processes[name].append(ServiceProcess(name, replica, env, tmp / f"{name}-{replica}.log"))
        self._turn = 0

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def process(self, service: str) -> ServiceProcess:
        self._turn += 1
        candidates = self.processes[service]
        return candidates[self._turn % len(candidates)]

    async def start(self) -> None:
        await asyncio.to_thread(grant, self.admin, self.prefix, SERVICES)
        for name in SERVICES:  # in order: a service creates its topics before its readers look for them
            for process in self.processes[name]:
                process.start()
            for process in self.processes[name]:
                await process.healthy()

    def stop(self) -> None:
        for processes in self.processes.values():
            for process in processes:
                process.stop()

    async def drop(self) -> None:
        engine = create_engine(self.postgres, "public")
        try:
            async with engine.begin() as connection:
                for schema in self.schemas.values():
                    await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()

    async def query(self, service: str, sql: str) -> list:
        engine = create_engine(self.postgres, self.schemas[service])
        try:
            async with engine.connect() as connection:
                return list(await connection.execute(text(sql)))
        finally:
            await engine.dispose()


class Driver:
    """The people: cities join, delegates register and claim, cities pay. Every call passes its
    process's gate; a 409 that says a fact has not arrived yet (or not all of it) is retried."""

    def __init__(self, platform: Platform, figures: Figures, seed: int) -> None:
        self.platform = platform
        self.figures = figures
        self.random = random.Random(seed)
        self.http = httpx.AsyncClient(timeout=60, headers=staff_headers())
        self.today = date.today()
        self.year = self.today.year
        self.workshops: list[str] = []

    async def call(self, service: str, method: str, path: str, *, retry_409_for: float = 0, **kwargs) -> httpx.Response:
        deadline = time.monotonic() + retry_409_for
        delay = 0.1
        while True:
            process = self.platform.process(service)
            async with process.gate.request():
                response = await self.http.request(method, f"{process.url}{path}", **kwargs)
            if response.status_code != 409 or time.monotonic() > deadline:
                assert response.status_code < 500, f"{service} {method} {path}: {response.status_code} {response.text[:500]}"
                return response
            self.figures.http_retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def setup(self) -> None:
        lines = {"administration": "1000.00", "delegate_travel": "40000.00", "expert_visits": "0.00",
                 "index_analysis": "0.00", "events": "0.00"}
        budget = await self.call("finance", "PUT", f"/budgets/{self.year}", json={"lines": lines})
        assert budget.status_code == 200, budget.text
        rate = {"eur_per_night": "120.00", "valid_from": f"{self.year}-01-01"}  # the workshops' host country
        assert (await self.call("travel", "PUT", "/allowance-rates/FR", json=rate)).status_code in (200, 201)
        for n in range(4):
            body = {"title": f"Soak workshop {n}", "kind": "thematic_workshop", "host_city": "Lyon", "host_country": "FR",
                    "starts_on": (self.today - timedelta(days=1)).isoformat(), "ends_on": (self.today + timedelta(days=2)).isoformat(),
                    "capacity": 100_000, "funded_quota_per_city": 1}
            answer = await self.call("events", "POST", "/workshops", json=body)
            assert answer.status_code == 201, answer.text
            self.workshops.append(answer.json()["id"])

    async def city(self, n: int) -> None:
        body = {"name": f"Soak city {n}", "country": self.random.choice(["FR", "DE", "IT", "ES", "PT", "NO"]),
                "population": self.random.randint(20_000, 900_000), "foreign_born_share": "0.20"}
        answer = await self.call("membership", "POST", "/cities", json=body)
        assert answer.status_code == 201, answer.text
        city_id = answer.json()["id"]
        signed = await self.call("membership", "POST", f"/cities/{city_id}/statement-of-intent", json={"signed_on": f"{self.year}-01-10"})
        assert signed.status_code == 200, signed.text
        joined = await self.call("membership", "POST", f"/cities/{city_id}/financial-agreement", json={"signed_on": f"{self.year}-02-01"})
        assert joined.status_code == 200 and joined.json()["status"] == "member", joined.text
        self.figures.cities += 1

        registration = await self.call(
            "events", "POST", f"/workshops/{self.random.choice(self.workshops)}/registrations", retry_409_for=120,
            json={"city_id": city_id, "delegate_name": f"Delegate of city {n}", "delegate_email": f"delegate{n}@soak.example"})
        assert registration.status_code == 201, registration.text
        self.figures.registrations += 1

        amount = f"{self.random.randint(60, 400)}.{self.random.randint(0, 99):02d}"
        claim = await self.call("travel", "POST", "/claims", retry_409_for=120, json={
            "registration_id": registration.json()["id"], "nights": 0, "travel_days_without_night": 0,
            "lines": [{"kind": "transport", "amount": amount, "currency": "EUR",
                       "spent_on": (self.today - timedelta(days=5)).isoformat(), "receipt": "ticket.pdf"}]})
        assert claim.status_code == 201, claim.text
        self.figures.claims += 1

        if self.random.random() < 0.5:
            invoice = await self.invoice_of(city_id)
            paid = self.random.choice([invoice["amount"], "2500.00", "1000.00"])
            body = {"amount": paid, "paid_on": self.today.isoformat(), "reference": f"SOAK-{n}"}
            payment = await self.call("finance", "POST", f"/invoices/{invoice['id']}/payments", json=body)
            assert payment.status_code == 201, payment.text
            self.figures.payments += 1
            self.figures.paid += Decimal(paid)

    async def invoice_of(self, city_id: str) -> dict:
        async def issued():
            answer = await self.call("finance", "GET", "/invoices", params={"city_id": city_id})
            return answer.json() if answer.status_code == 200 else None

        [invoice] = await eventually(issued, timeout=180, what=f"the contribution invoice of {city_id}")
        return invoice

    async def run(self, cities: int, concurrency: int = 12) -> None:
        await self.setup()
        semaphore = asyncio.Semaphore(concurrency)

        async def one(n: int) -> None:
            async with semaphore:
                await self.city(n)

        await asyncio.gather(*(one(n) for n in range(cities)))


class Tap:
    """Reads the input topics as they fill; re-sends a share of what it reads (redelivery) and, for
    about one record in twenty, a poison record to the same topic."""

    def __init__(self, platform: Platform, figures: Figures, seed: int) -> None:
        self.platform, self.figures = platform, figures
        self.random = random.Random(seed)
        self.topics = {platform.topic(t.value): t for t in INPUTS}

    async def run(self, stop: asyncio.Event) -> None:
        kafka = self.platform.admin
        consumer = AIOKafkaConsumer(*self.topics, **client_args(kafka), group_id=None, auto_offset_reset="earliest",
                                    enable_auto_commit=False, metadata_max_age_ms=2000)
        producer = AIOKafkaProducer(**client_args(kafka), enable_idempotence=True, acks="all", request_timeout_ms=60_000)
        await consumer.start()
        await producer.start()
        try:
            backoff = Backoff(cap=1.0)
            while not stop.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=300)
                except Exception:  # the broker restarting: the consumer reconnects by itself
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                for records in batch.values():
                    for record in records:
                        if any(k in ("soak_copy", "soak_poison") for k, _ in record.headers) or record.key is None:
                            continue
                        if self.random.random() < REDELIVERED_SHARE:
                            await self._send(producer, record.topic, record.key, record.value, [*record.headers, ("soak_copy", b"1")])
                            self.figures.redelivered += 1
                        if self.random.random() < POISON_SHARE:
                            await self._poison(producer, record.topic)
        finally:
            await producer.stop()
            await consumer.stop()

    async def _poison(self, producer: AIOKafkaProducer, topic: str) -> None:
        key = f"poison-{uuid.uuid4()}"
        kind = self.random.choice(["unreadable", "unknown-version", "not-an-event"])
        ce_type = POISON_TYPES[self.topics[topic]]
        envelope = [("ce_id", key.encode()), ("ce_type", ce_type.encode()), ("ce_source", b"/soak"),
                    ("ce_time", b"2026-01-01T00:00:00Z")]
        headers, value = {
            "unreadable": (envelope, b"\x00\xff not json"),
            "unknown-version": ([*envelope, ("ce_schemaversion", b"99")], b"{}"),
            "not-an-event": ([], b'{"hello": "world"}'),
        }[kind]
        await self._send(producer, topic, key.encode(), value, [*headers, ("soak_poison", kind.encode())])
        self.figures.poison[key] = self.topics[topic]

    @staticmethod
    async def _send(producer: AIOKafkaProducer, topic: str, key: bytes, value: bytes, headers: list) -> None:
        deadline, backoff = time.monotonic() + 120, Backoff(cap=1.0)
        while True:
            try:
                await producer.send_and_wait(topic, value=value, key=key, headers=headers)
                return
            except Exception:  # the broker restarting
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(backoff.next())


async def chaos(platform: Platform, figures: Figures, kills_per_process: int, broker_restarts: int, seed: int) -> None:
    """Kill each process `kills_per_process` times, restart the broker `broker_restarts` times, in a
    shuffled order, a few seconds apart."""
    rng = random.Random(seed)
    faults: list[object] = [p for processes in platform.processes.values() for p in processes] * kills_per_process
    rng.shuffle(faults)
    for n in range(broker_restarts):
        faults.insert((n + 1) * len(faults) // (broker_restarts + 1), "broker")
    for fault in faults:
        await asyncio.sleep(rng.uniform(1.5, 4.0))
        if fault == "broker":
            await asyncio.to_thread(platform.broker.stop)
            await asyncio.sleep(rng.uniform(2.0, 5.0))  # the services keep taking writes into their outboxes
            await asyncio.to_thread(platform.broker.start, 120)
            figures.broker_restarts += 1
        else:
            await fault.kill_and_restart()
            figures.kills[fault.name] += 1


async def caught_up(platform: Platform) -> bool:
    """Every group has committed up to the end of its topics, and every outbox is empty."""
    for service in SERVICES:
        backlog = (await platform.query(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL"))[0][0]
        if backlog:
            return False
    for service in SERVICES:
        topics = [platform.topic(t.value) for t in CONSUMES[service]]
        if topics and not await committed_everything(platform.admin, f"{platform.prefix}{consumer_group(service)}", topics):
            return False
    return True


async def read_all(kafka: KafkaConnection, topic: str) -> list:
    """Every record of `topic` up to its end offsets now."""
    admin = AIOKafkaAdminClient(**client_args(kafka))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            for tp, batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).items():
                records.extend(r for r in batch if r.offset < ends[tp])
        return records
    finally:
        await consumer.stop()


def _header(record, name: str) -> str | None:
    return next((v.decode(errors="replace") for k, v in record.headers if k == name), None)


def _ids_by_type(records, *types: str) -> dict[str, set[str]]:
    """Distinct event ids (ce_id) of each type: a record delivered twice counts once."""
    found: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if (kind := _header(r, "ce_type")) in types and _header(r, "soak_poison") is None:
            found[kind].add(_header(r, "ce_id"))
    return found


async def test_every_input_has_exactly_one_effect_through_kills_broker_restarts_redeliveries_and_poison(
    broker: LocalKafka, postgres_server_url: str, tmp_path: Path, events_wanted: int
) -> None:
    started = time.monotonic()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the tap's clients complain while the broker restarts
    processes = int(os.environ.get("SOAK_PROCESSES", "2"))
    long_run = events_wanted > BOUNDED_EVENTS
    cities = max(events_wanted // EVENTS_PER_CITY, 20)
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(2**32))
    print(f"\n[soak] seed {seed}: {cities} cities, {processes} process(es) per service; logs in {tmp_path}")
    figures = Figures()
    with STAND_IN.serving_jwks() as jwks_url:
        platform = Platform(broker, postgres_server_url, tmp_path, jwks_url, processes)
        try:
            await platform.start()
            driver, tap, stop_tap = Driver(platform, figures, seed), Tap(platform, figures, seed + 1), asyncio.Event()
            tapping = asyncio.create_task(tap.run(stop_tap))
            faults = asyncio.create_task(chaos(platform, figures, 4 if long_run else 2, 3, seed + 2))
            await driver.run(cities)
            load_seconds = time.monotonic() - started
            await faults
            # The tap stops here: it redelivers a share of what it has seen, whatever that is by now.
            stop_tap.set()
            await tapping
            await driver.http.aclose()
            await eventually(lambda: caught_up(platform), timeout=300, what="every consumer and relay catching up")
            await check(platform, figures, driver, started, load_seconds)
        finally:
            platform.stop()
            await platform.drop()


async def check(platform: Platform, figures: Figures, driver: Driver, started: float, load_seconds: float) -> None:
    kafka, year = platform.admin, driver.year
    topics = {t: await read_all(kafka, platform.topic(t.value)) for t in Topic}
    events = sum(len(records) for records in topics.values())
    lost: Counter = Counter()
    doubled: Counter = Counter()

    # Cities: membership published one CityJoined per city that joined; finance invoiced each once.
    joined = {r.key.decode() for r in topics[Topic.CITIES] if _header(r, "ce_type") == "CityJoined" and _header(r, "soak_poison") is None}
    assert len(_ids_by_type(topics[Topic.CITIES], "CityJoined")["CityJoined"]) == len(joined) == figures.cities
    invoices = {str(city): n for city, n in await platform.query(
        "finance", f"SELECT city_id, count(*) FROM invoices WHERE kind = 'contribution' AND year = {year} GROUP BY city_id")}
    lost["invoice"] = len(joined - invoices.keys())
    doubled["invoice"] = sum(n - 1 for n in invoices.values() if n > 1)
    issued = _ids_by_type(topics[Topic.INVOICES], "InvoiceIssued")["InvoiceIssued"]
    assert len(issued) == sum(invoices.values())  # each invoice published once (by event id)
    for service, table in (("events", "member_cities"), ("travel", "known_cities")):
        known = {str(c) for (c,) in await platform.query(service, f"SELECT city_id FROM {table}")}
        lost[f"{service} member"] = len(joined - known)

    # Registrations: events recorded each, published each once, travel learnt each once.
    registered = (await platform.query("events", "SELECT count(*) FROM registrations"))[0][0]
    published = _ids_by_type(topics[Topic.WORKSHOPS], "DelegateRegistered")["DelegateRegistered"]
    known = (await platform.query("travel", "SELECT count(*) FROM registrations"))[0][0]
    lost["registration"] = figures.registrations - min(registered, len(published), known)
    doubled["registration"] = max(registered, len(published), known) - figures.registrations

    # Claims: travel recorded and published each; finance decided each exactly once.
    claimed = (await platform.query("travel", "SELECT count(*) FROM travel_claims"))[0][0]
    published = _ids_by_type(topics[Topic.CLAIMS], "TravelClaimed")["TravelClaimed"]
    decided = (await platform.query("finance", "SELECT count(*) FROM claims"))[0][0]
    lost["claim"] = figures.claims - min(claimed, len(published), decided)
    doubled["claim"] = max(claimed, len(published), decided) - figures.claims
    decisions = {(r.key, _header(r, "ce_type"), _header(r, "ce_id")) for r in topics[Topic.REIMBURSEMENTS]
                 if _header(r, "ce_type") in ("ReimbursementApproved", "ReimbursementHeld")}  # distinct event ids
    per_claim = Counter((key, kind) for key, kind, _ in decisions)  # held, then approved once released: fine
    doubled["claim decision"] = sum(n - 1 for n in per_claim.values() if n > 1)
    lost["claim decision"] = figures.claims - len({key for key, _ in per_claim})

    # Payments: exactly the ones the driver was told were recorded, published once each.
    [(payments, paid)] = await platform.query("finance", "SELECT count(*), coalesce(sum(amount), 0) FROM payments")
    published = _ids_by_type(topics[Topic.INVOICES], "PaymentReceived")["PaymentReceived"]
    lost["payment"] = figures.payments - min(payments, len(published))
    doubled["payment"] = max(payments, len(published)) - figures.payments
    assert Decimal(paid).scaleb(-2) == figures.paid  # stored as cents

    # Poison: in the dead letters of every service that reads its topic, with a reason.
    dead_letters = {s: {r.key.decode(): _header(r, "dlq_reason") for r in await read_all(kafka, platform.topic(dead_letter_topic(s)))}
                    for s in SERVICES}  # notifications produces no facts but dead-letters poison it reads
    missing = [(key, s) for key, topic in figures.poison.items() for s in SERVICES
               if topic in CONSUMES[s] and not dead_letters[s].get(key)]
    assert not missing, f"poison not dead-lettered: {missing[:10]}"
    stray = {s: [k for k in letters if not k.startswith("poison-")] for s, letters in dead_letters.items()}
    assert not any(stray.values()), f"good records dead-lettered: {stray}"

    # The books: no headroom below zero, the reconciliation balances to the cent.
    async with httpx.AsyncClient(base_url=platform.processes["finance"][0].url, headers=staff_headers(), timeout=60) as http:
        lines = (await http.get(f"/budgets/{year}")).json()
        reconciliation = (await http.get(f"/reconciliation/{year}")).json()
    negative = [line for line in _lines(lines) if Decimal(line["headroom"]) < 0]
    assert not negative, negative
    rows = reconciliation["contributions"]["cities"]
    for row in rows:
        assert Decimal(row["invoiced"]) - Decimal(row["credited"]) - Decimal(row["received"]) == Decimal(row["outstanding"]), row
    total = reconciliation["contributions"]["total"]
    for figure in ("invoiced", "credited", "received", "outstanding"):
        assert Decimal(total[figure]) == sum((Decimal(row[figure]) for row in rows), Decimal("0.00")), figure
    assert len(rows) == figures.cities

    seconds = time.monotonic() - started
    kills = sum(figures.kills.values())
    print(f"[soak] events {events} in all topics ({figures.cities} cities joined, {figures.registrations} registrations, "
          f"{figures.claims} claims, {figures.payments} payments of {figures.paid} EUR), redelivered {figures.redelivered}, "
          f"poison {len(figures.poison)}; kills {kills} ({dict(figures.kills)}), broker restarts {figures.broker_restarts}, "
          f"restarts {kills + figures.broker_restarts}; load {load_seconds:.0f} s, {seconds:.0f} s in all; "
          f"lost {sum(lost.values())}, doubled {sum(doubled.values())}; 409 retries {figures.http_retries}")
    assert not +lost and not +doubled, f"lost {dict(+lost)}, doubled {dict(+doubled)}"


def _lines(budget: dict) -> list[dict]:
    lines = budget.get("lines", budget)
    return list(lines.values()) if isinstance(lines, dict) else lines
