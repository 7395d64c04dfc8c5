"""The HTTP pipeline: POST /claims (travel) -> TravelClaimed -> finance decides -> the decision is
visible in GET /claims/{id} (travel), with travel and finance each its own process.

The member city, the event and one registration per claim are produced to Kafka as membership
and events would publish them; the budget and the allowance rate go through the services' APIs.
- latency: claims at a steady rate; per claim, from the start of its POST to the first GET that
  shows finance's decision (the bench reads TravelClaimed and finance's decisions from Kafka, to say
  where the time goes and to know when to start asking, then asks every few milliseconds);
- throughput: claims POSTed by a fixed number of concurrent clients, against the same number of
  requests to a bare FastAPI endpoint (bench.bare) served the same way in the same run.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from aiokafka.admin import AIOKafkaAdminClient

from bench.http import HttpClient, Response
from bench.kit import Arrivals, Run, free_port, producer, record, say
from contracts.events import CityJoined, DelegateRegistered, WorkshopScheduled
from contracts.topics import CONSUMES, Topic
from services.common.kafka import client_args
from services.common.settings import KafkaConnection
from services.common.api import today
from tests.identity import staff_headers

WARM_UP = 20
CONCURRENCY = 8  # clients posting claims in the throughput run
IN_FLIGHT = 64  # requests under way at once in the latency run
# After finance's decision shows on Kafka, GET /claims/{id} until travel shows it: at once, then
# after 5, 10, 20, 40, 50, 50... ms. A fixed 5 ms had every decided claim asking 200 times a second,
# and those GETs (travel's CPU) delayed the very decisions they waited for.
POLL_FIRST_SECONDS, POLL_MAX_SECONDS = 0.005, 0.05


def http_client(base_url: str) -> HttpClient:
    """Every request the bench makes goes through a client built here (the place for credentials)."""
    return HttpClient(base_url, headers={"content-type": "application/json", **staff_headers()})


def claim_body(registration_id: str, on: date) -> dict:
    return {
        "registration_id": registration_id,
        "nights": 2,
        "lines": [{"kind": "transport", "amount": "300.00", "currency": "EUR", "spent_on": on.isoformat(), "receipt": "BENCH-1"}],
    }


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    # per claim, from its scheduled start: POST answered, TravelClaimed on Kafka, finance's decision on
    # Kafka (where the latency goes)
    answered: list[float] = field(default_factory=list)
    claimed: list[float] = field(default_factory=list)
    decided: list[float] = field(default_factory=list)
    claims_per_s: float = 0.0
    bare_per_s: float = 0.0
    claim_cpu: float = 0.0  # seconds of travel's CPU per POST /claims in the throughput run
    bare_cpu: float = 0.0  # seconds of the bare endpoint's CPU per request


async def claims_pipeline(run: Run, rate: float, count: int, throughput_count: int) -> Figures:
    prefix = run.prefix()
    await run.grant(prefix, ["finance", "travel"])
    # Topics travel and finance consume but may not create (the bench plays membership and events).
    await run.create_topics(f"{prefix}{t.value}" for t in {*CONSUMES["finance"], *CONSUMES["travel"]} - {Topic.CLAIMS, Topic.REIMBURSEMENTS})
    finance = run.start("finance-claims", "services.finance", prefix, port=free_port())
    travel = run.start("travel", "services.travel", prefix, port=free_port(), principal="travel")
    bare = run.start("bare", "bench.bare", prefix, port=free_port(), database=False)
    await asyncio.gather(finance.ready(), travel.ready(), bare.ready())
    run.topics.add(f"{prefix}{Topic.CLAIMS.value}")  # created by the services; dropped with the run

    on = today()
    registrations = [str(uuid.uuid4()) for _ in range(WARM_UP + count + throughput_count)]
    async with http_client(travel.url) as client, http_client(finance.url) as finance_client:
        response = await client.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2020-01-01"})
        _expect(response, 200)
        lines = {"administration": "0.00", "delegate_travel": "100000000.00", "expert_visits": "0.00", "index_analysis": "0.00", "events": "0.00"}
        _expect(await finance_client.put(f"/budgets/{on.year}", json={"lines": lines}), 200)
        await _publish_registrations(run, prefix, registrations, on)
        say(f"  waiting for travel to learn {len(registrations)} registrations ...")
        await _consumed(run.kafka, f"{prefix}icc.travel", f"{prefix}{Topic.WORKSHOPS.value}", timeout=180)

        figures = Figures()
        async with (Arrivals(run.kafka, f"{prefix}{Topic.CLAIMS.value}", by_key=True) as claims,
                    Arrivals(run.kafka, f"{prefix}{Topic.REIMBURSEMENTS.value}", by_key=True) as decisions):
            await _paced(client, claims, decisions, registrations[:WARM_UP], on, rate)
            say(f"claims pipeline paced: {count} claims at {rate:.0f}/s ...")
            stages = await _paced(client, claims, decisions, registrations[WARM_UP:WARM_UP + count], on, rate)
            figures.answered, figures.claimed, figures.decided, figures.latencies = (list(s) for s in zip(*stages))
            finance.check()
            travel.check()
            say(f"claims throughput: {throughput_count} POST /claims, then the bare endpoint, {CONCURRENCY} clients ...")
            cpu = travel.cpu_seconds()
            figures.claims_per_s = await _closed_loop(client, registrations[WARM_UP + count:], on)
            figures.claim_cpu = (travel.cpu_seconds() - cpu) / throughput_count
        async with http_client(bare.url) as bare_client:
            cpu = bare.cpu_seconds()
            figures.bare_per_s = await _closed_loop(bare_client, [str(uuid.uuid4()) for _ in range(throughput_count)], on)
            figures.bare_cpu = (bare.cpu_seconds() - cpu) / throughput_count
    return figures


def _expect(response: Response, status: int) -> None:
    if response.status_code != status:
        raise SystemExit(f"{response.method} {response.path}: {response.status_code} {response.text}")


async def _publish_registrations(run: Run, prefix: str, registrations: list[str], on: date) -> None:
    city, workshop = uuid.uuid4(), uuid.uuid4()
    send = producer(run.kafka, linger_ms=20)
    await send.start()
    try:
        k, v, h = record(CityJoined(city_id=city, name="Bench City", country="FR", european=True, joined_on=date(2020, 1, 1)), "membership")
        await send.send_and_wait(f"{prefix}{Topic.CITIES.value}", value=v, key=k, headers=h)
        scheduled = WorkshopScheduled(
            workshop_id=workshop, title="Bench workshop", kind="thematic_workshop", host_city="Lisbon", host_country="PT",
            starts_on=on - timedelta(days=1), ends_on=on, capacity=len(registrations), funded_quota_per_city=len(registrations),
        )
        events = [scheduled] + [
            DelegateRegistered(registration_id=uuid.UUID(r), workshop_id=workshop, city_id=city, delegate_name="Bench Delegate",
                               delegate_email=f"delegate-{i}@bench.example", status="registered", funded=True)
            for i, r in enumerate(registrations)
        ]
        futures = []
        for event in events:
            k, v, h = record(event, "events")
            futures.append(await send.send(f"{prefix}{Topic.WORKSHOPS.value}", value=v, key=k, headers=h))
        await asyncio.gather(*futures)
    finally:
        await send.stop()


async def _consumed(kafka: KafkaConnection, group: str, topic: str, timeout: float) -> None:
    """Until `group` has committed offsets up to the end of every partition of `topic`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    admin = AIOKafkaAdminClient(**client_args(kafka))
    probe = AIOKafkaConsumer(**client_args(kafka))
    await admin.start()
    await probe.start()
    try:
        partitions = [TopicPartition(topic, p["partition"]) for t in await admin.describe_topics([topic]) for p in t["partitions"]]
        ends = await probe.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                committed = await admin.list_consumer_group_offsets(group)
            except Exception:  # a young group's coordinator may not answer yet
                committed = {}
            if all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items()):
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"{group} did not consume {topic} within {timeout:.0f}s")
    finally:
        await probe.stop()
        await admin.close()


async def _paced(
    client: HttpClient, claims: Arrivals, decisions: Arrivals, registrations: list[str], on: date, rate: float,
) -> list[tuple[float, float, float, float]]:
    """Latency from each claim's scheduled start, so that a claim that waited for a free client
    (travel slower than the rate) counts its wait. At most IN_FLIGHT requests at once, as a
    service's callers would, rather than one per claim until travel's connection pool runs dry; a
    claim waiting for its decision holds none (delegates who sent a claim do not block others')."""
    started = time.monotonic()
    free = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int, registration: str) -> tuple[float, float, float, float]:
        scheduled = started + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        async with free:
            response = await client.post("/claims", json=claim_body(registration, on))
        _expect(response, 201)
        answered = time.monotonic() - scheduled
        claim_id = response.json()["id"]
        await claims.arrived(claim_id, timeout=300)
        await decisions.arrived(claim_id, timeout=300)
        claimed, decided = claims.at[claim_id] - scheduled, decisions.at[claim_id] - scheduled
        pause = POLL_FIRST_SECONDS
        while True:
            async with free:
                shown = await client.get(f"/claims/{claim_id}")
            _expect(shown, 200)
            if shown.json()["status"] != "submitted":
                return answered, claimed, decided, time.monotonic() - scheduled
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX_SECONDS)

    return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(registrations))))


async def _closed_loop(client: HttpClient, registrations: list[str], on: date) -> float:
    queue = list(reversed(registrations))

    async def worker() -> None:
        while queue:
            _expect(await client.post("/claims", json=claim_body(queue.pop(), on)), 201)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(registrations) / (time.monotonic() - started)
