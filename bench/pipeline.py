"""CityJoined -> InvoiceIssued, through the raw reference pipeline (bench.raw) and through finance.

Each runs as its own process on a fresh database and topic prefix, both started up front. A
warm-up batch goes through each first (its consumer has joined its group, its first statements
are compiled). Then bursts alternate, raw then finance, --repeat times, and each side keeps its
best: on a machine shared with other work the slowest runs measure the neighbours, not us.
- burst: N CityJoined at once; events/s from the first send to the last InvoiceIssued, the CPU
  the process spent per event, and the longest pause between two InvoiceIssued (a relay starved
  by the consumer shows as seconds);
- paced (finance only): a steady rate; per event, from its send to its InvoiceIssued.
"""

import asyncio
import time
from dataclasses import dataclass, field

from bench.kit import Arrivals, Process, Run, city_joined, correlation, free_port, producer, say
from contracts.topics import CONSUMES, Topic

WARM_UP = 50


@dataclass
class Burst:
    rate: float  # events/s
    cpu_per_event: float  # seconds of the process's CPU (all threads) per event
    longest_pause: float  # seconds between two InvoiceIssued
    last_after: float  # seconds from the first send to the last InvoiceIssued


@dataclass
class Figures:
    bursts: list[Burst] = field(default_factory=list)
    paced_latencies: list[float] = field(default_factory=list)

    @property
    def best(self) -> Burst:
        return max(self.bursts, key=lambda b: b.rate)

    @property
    def longest_pause(self) -> float:
        return max(b.longest_pause for b in self.bursts)


class Processes:
    """A service's replicas (one consumer group, one database), seen as one process: CPU summed."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.processes)

    def check(self) -> None:
        for p in self.processes:
            p.check()

    async def ready(self) -> None:
        await asyncio.gather(*(p.ready() for p in self.processes))

    def stop(self) -> None:
        for p in self.processes:
            p.stop()


class Pipeline:
    def __init__(self, run: Run, kind: str, replicas: int = 1) -> None:
        self.run, self.kind, self.replicas = run, kind, replicas
        self.prefix = run.prefix()
        self.cities = f"{self.prefix}{Topic.CITIES.value}"
        self.invoices = f"{self.prefix}{Topic.INVOICES.value}"
        self.process: Process | Processes | None = None
        self.arrivals: Arrivals | None = None
        self.send = None
        self.figures = Figures()

    async def start(self) -> None:
        # What finance consumes is created by its producers, here the bench (finance may not create them).
        await self.run.create_topics([*(f"{self.prefix}{t.value}" for t in CONSUMES["finance"]), self.invoices])
        await self.run.grant(self.prefix, ["finance"])
        if self.kind == "raw":
            self.process = self.run.start("raw", "bench.raw", self.prefix)
        elif self.replicas == 1:
            self.process = self.run.start("finance", "services.finance", self.prefix, port=free_port())
            await self.process.ready()
        else:  # one schema, one group, a stable id each (static membership)
            shared = {**self.run.database_env(f"finance-x{self.replicas}"), "REPLICAS": str(self.replicas)}
            self.process = Processes([
                self.run.start(f"finance-x{self.replicas}-{i}", "services.finance", self.prefix, port=free_port(), database=False,
                               env={**shared, "REPLICA_ID": str(i)})
                for i in range(self.replicas)
            ])
            await self.process.ready()
        self.arrivals = await Arrivals(self.run.kafka, self.invoices).__aenter__()
        self.send = producer(self.run.kafka)
        await self.send.start()
        await self._send([city_joined() for _ in range(WARM_UP)], timeout=120, what=f"warm-up InvoiceIssued ({self.kind})")

    async def stop(self) -> None:
        if self.send is not None:
            await self.send.stop()
        if self.arrivals is not None:
            await self.arrivals.__aexit__(None, None, None)
        if self.process is not None:
            self.process.stop()

    async def burst(self, events: int) -> Burst:
        records = [city_joined() for _ in range(events)]
        cpu = self.process.cpu_seconds()
        started = time.monotonic()
        ids = await self._send(records, timeout=600, what=f"InvoiceIssued ({self.kind})")
        arrived = sorted(self.arrivals.at[i] for i in ids)
        burst = Burst(
            rate=events / (arrived[-1] - started),
            cpu_per_event=(self.process.cpu_seconds() - cpu) / events,
            longest_pause=max((b - a for a, b in zip(arrived, arrived[1:])), default=0.0),
            last_after=arrived[-1] - started,
        )
        self.figures.bursts.append(burst)
        return burst

    async def paced(self, count: int, rate: float) -> None:
        records = [city_joined() for _ in range(count)]
        sent_at: dict[str, float] = {}
        futures = []
        started = time.monotonic()
        for i, (k, v, h) in enumerate(records):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            sent_at[correlation(h)] = time.monotonic()
            futures.append(await self.send.send(self.cities, value=v, key=k, headers=h))
        await asyncio.gather(*futures)
        await self.arrivals.wait_for(set(sent_at), 120, progress="paced InvoiceIssued")
        self.figures.paced_latencies = [self.arrivals.at[i] - t for i, t in sent_at.items()]
        self.process.check()

    async def _send(self, records: list, *, timeout: float, what: str) -> set[str]:
        futures = [await self.send.send(self.cities, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
        ids = {correlation(h) for _, _, h in records}
        await self.arrivals.wait_for(ids, timeout, progress=what)
        self.process.check()
        return ids


async def _alternate(pipelines: dict[str, Pipeline], events: int, repeat: int) -> None:
    """Bursts through each pipeline in turn, `repeat` rounds (each keeps its best)."""
    for round_ in range(1, repeat + 1):
        for name, pipeline in pipelines.items():
            say(f"burst {round_}/{repeat}: {events} CityJoined -> InvoiceIssued through {name} ...")
            burst = await pipeline.burst(events)
            say(f"  {burst.rate:.0f} events/s, {burst.cpu_per_event * 1e6:.0f} us CPU per event")


async def compare(run: Run, events: int, repeat: int, paced_rate: float, paced_events: int) -> tuple[Figures, Figures]:
    """The raw reference pipeline and finance, burst for burst; then finance paced."""
    raw, finance = Pipeline(run, "raw"), Pipeline(run, "service")
    try:
        say("starting the raw reference pipeline and finance, each with its own database ...")
        await asyncio.gather(raw.start(), finance.start())
        await _alternate({"the raw pipeline": raw, "finance": finance}, events, repeat)
        say(f"finance paced: {paced_events} CityJoined at {paced_rate:.0f}/s ...")
        await finance.paced(paced_events, paced_rate)
    finally:
        for pipeline in (raw, finance):
            await pipeline.stop()
    return raw.figures, finance.figures


async def replicas(run: Run, events: int, repeat: int) -> tuple[Figures, Figures]:
    """Finance as one process, then as two replicas of one consumer group on one PostgreSQL schema:
    bursts alternating, the best of each kept (CPU counted over all replicas)."""
    one, two = Pipeline(run, "service"), Pipeline(run, "service", replicas=2)
    try:
        say("starting finance as 1 process and as 2 replicas (one group, one schema) ...")
        await asyncio.gather(one.start(), two.start())
        await _alternate({"finance x1": one, "finance x2 replicas": two}, events, repeat)
    finally:
        for pipeline in (one, two):
            await pipeline.stop()
    return one.figures, two.figures
