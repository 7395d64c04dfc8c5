"""`make bench`: throughput and latency, each against a baseline measured in the same run on the same broker.

1. Baseline: raw aiokafka, idempotent producer (acks=all) then a consumer, on CityJoined-sized
   records (same headers and body size): records/s for produce and for consume.
2. Pipeline: CityJoined -> finance (batch consumer, invoice + outbox in one transaction, ack) ->
   outbox relay -> InvoiceIssued, with finance running as its own process:
   - burst: N CityJoined at once; events/s from the first send to the last InvoiceIssued;
   - paced: a steady rate well under capacity; per-event latency p50/p99 (send -> InvoiceIssued).
Prints the figures and the pipeline/baseline ratio. Options: --events, --paced-rate, --paced-events,
--database sqlite|postgresql (postgresql uses DATABASE_URL or the local server of `make postgres`).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from contracts.topics import CONSUMES, PARTITIONS
from deploy.kafka.acls import grant
from deploy.kafka.local import LocalKafka
from deploy.kafka.principals import login
from services.common.kafka import client_args
from services.common.settings import KafkaConnection, KafkaSettings

ROOT = Path(__file__).resolve().parents[1]


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def city_joined_record() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = CityJoined(city_id=uuid.uuid4(), name="Bench City", country="FR", european=True, joined_on=date(2026, 3, 1))
    envelope = wrap(event, service="membership")
    return envelope.key.encode(), to_value(envelope), to_headers(envelope)


async def create_topics(kafka: KafkaConnection, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**client_args(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


def producer(kafka: KafkaConnection) -> AIOKafkaProducer:
    return AIOKafkaProducer(**client_args(kafka), enable_idempotence=True, acks="all", linger_ms=5)


async def produce_all(kafka: KafkaConnection, topic: str, records: list) -> float:
    """Send every record, wait for every ack; returns the monotonic time the first send started."""
    p = producer(kafka)
    await p.start()
    try:
        started = time.monotonic()
        futures = [await p.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
        return started
    finally:
        await p.stop()


async def baseline(kafka: KafkaConnection, n: int) -> tuple[float, float]:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await create_topics(kafka, [topic])
    records = [city_joined_record() for _ in range(n)]
    started = await produce_all(kafka, topic, records)
    produce_rate = n / (time.monotonic() - started)
    consumer = AIOKafkaConsumer(topic, **client_args(kafka), auto_offset_reset="earliest",
                                group_id=f"bench-{topic}", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, started = 0, time.monotonic()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            seen += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()  # commit per batch, as our consumers do
        consume_rate = n / (time.monotonic() - started)
    finally:
        await consumer.stop()
    return produce_rate, consume_rate


class Finance:
    """The finance service as its own process, logged in as itself, on a fresh database and topic namespace."""

    def __init__(self, kafka: KafkaConnection, prefix: str, database: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="icc-bench-")
        env = {**os.environ, **login(kafka, "finance").env(), "KAFKA_TOPIC_PREFIX": prefix,
               "HTTP_PORT": "18004", "LOG_LEVEL": "WARNING", "RELAY_POLL_SECONDS": "0.2"}
        if database == "postgresql":
            env["DATABASE_URL"] = os.environ.get("DATABASE_URL", "postgresql+asyncpg://icc:icc@127.0.0.1:5432/icc")
            env["DATABASE_SCHEMA"] = f"bench_{uuid.uuid4().hex[:8]}"
        else:
            env["DATABASE_URL"] = f"sqlite+aiosqlite:///{self.tmp}/finance.db"
        self.log = open(f"{self.tmp}/finance.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "services.finance"], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"finance exited ({self.process.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen("http://127.0.0.1:18004/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.2)
        raise SystemExit(f"finance not ready in {timeout}s; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


async def pipeline(kafka: KafkaConnection, n: int, rate: float | None, database: str) -> tuple[float, list[float]]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    cities, invoices = f"{prefix}icc.membership.cities", f"{prefix}icc.finance.invoices"
    # finance as itself may create only its own topics: the ones it reads must be there first
    await create_topics(kafka, [*(f"{prefix}{topic}" for topic in CONSUMES["finance"]), invoices])
    if kafka.secured:
        await asyncio.to_thread(grant, kafka, prefix, ["finance"])
    finance = Finance(kafka, prefix, database)
    try:
        await asyncio.to_thread(finance.wait_ready)
        records = [city_joined_record() for _ in range(n)]
        sent_at: dict[str, float] = {}
        reader = AIOKafkaConsumer(invoices, **client_args(kafka), auto_offset_reset="earliest")
        await reader.start()
        p = producer(kafka)
        await p.start()
        try:
            started = time.monotonic()
            last_report = started

            async def send_all() -> None:
                futures = []
                for i, (k, v, h) in enumerate(records):
                    if rate:
                        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                    sent_at[dict(h)["ce_correlationid"].decode()] = time.monotonic()
                    futures.append(await p.send(cities, value=v, key=k, headers=h))
                await asyncio.gather(*futures)

            sending = asyncio.create_task(send_all())
            latencies: list[float] = []
            finished = started
            deadline = started + 300
            while len(latencies) < n and time.monotonic() < deadline:
                batch = await reader.getmany(timeout_ms=500)
                now = time.monotonic()
                for recs in batch.values():
                    for r in recs:
                        correlation = dict(r.headers)["ce_correlationid"].decode()
                        latencies.append(now - sent_at[correlation])
                        finished = now
                if now - last_report > 2:
                    say(f"  {len(latencies)}/{n} invoices issued")
                    last_report = now
            await sending
            if len(latencies) < n:
                raise SystemExit(f"only {len(latencies)}/{n} invoices within 300s; see {finance.log.name}")
            return n / (finished - started), latencies
        finally:
            await p.stop()
            await reader.stop()
    finally:
        finance.stop()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--paced-rate", type=float, default=200.0)
    parser.add_argument("--paced-events", type=int, default=1000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()

    local = None
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = KafkaSettings().kafka_connection()  # its login must be allowed to create topics and ACLs
    else:
        local = LocalKafka()
        started_here = not local.is_ready()
        local.start()
        kafka = local.connection()
    bootstrap = kafka.bootstrap_servers
    try:
        say(f"baseline: raw aiokafka, {args.events} records ...")
        produce_rate, consume_rate = await baseline(kafka, args.events)
        say(f"pipeline burst: {args.events} CityJoined -> InvoiceIssued on {args.database} ...")
        burst_rate, burst_latency = await pipeline(kafka, args.events, None, args.database)
        say(f"pipeline paced: {args.paced_events} at {args.paced_rate:.0f}/s ...")
        _, paced_latency = await pipeline(kafka, args.paced_events, args.paced_rate, args.database)
    finally:
        if local is not None and started_here:
            local.stop()

    raw = min(produce_rate, consume_rate)
    print(f"\nICC bench ({args.database}, broker {bootstrap}, {os.cpu_count()} cores)")
    print(f"  baseline aiokafka produce (acks=all, idempotent) {produce_rate:10.0f} records/s")
    print(f"  baseline aiokafka consume (commit per batch)     {consume_rate:10.0f} records/s")
    print(f"  pipeline CityJoined -> InvoiceIssued, burst      {burst_rate:10.0f} events/s "
          f"(p50 {percentile(burst_latency, 50)*1000:.0f} ms, p99 {percentile(burst_latency, 99)*1000:.0f} ms, queueing included)")
    print(f"  pipeline paced at {args.paced_rate:.0f}/s: latency p50 {percentile(paced_latency, 50)*1000:.0f} ms, "
          f"p99 {percentile(paced_latency, 99)*1000:.0f} ms")
    print(f"  ratio pipeline / raw aiokafka (slower of produce, consume): {burst_rate / raw:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
