"""CityJoined -> InvoiceIssued, through the raw reference pipeline (bench.raw) and through finance.

Each runs as its own process on a fresh database and topic prefix. A warm-up batch goes through
first (the consumer has joined its group and the first statements are compiled), then:
- burst: N CityJoined at once; events/s from the first send to the last InvoiceIssued, and the
  longest pause between two InvoiceIssued (a relay starved by the consumer shows as seconds);
- paced (finance only): a steady rate; per event, from its send to its InvoiceIssued.
"""

import asyncio
import time
from dataclasses import dataclass, field

from bench.kit import Arrivals, Run, city_joined, correlation, free_port, producer, say
from contracts.topics import Topic

WARM_UP = 50


@dataclass
class Figures:
    rate: float = 0.0  # events/s in the burst
    longest_pause: float = 0.0  # seconds between two InvoiceIssued during the burst
    cpu_per_event: float = 0.0  # seconds of the process's CPU per event in the burst
    burst_latencies: list[float] = field(default_factory=list)
    paced_latencies: list[float] = field(default_factory=list)


async def pipeline(run: Run, kind: str, events: int, paced_rate: float = 0, paced_events: int = 0) -> Figures:
    prefix = run.prefix()
    cities, invoices = f"{prefix}{Topic.CITIES.value}", f"{prefix}{Topic.INVOICES.value}"
    await run.create_topics([cities, invoices])
    if kind == "raw":
        process = run.start("raw", "bench.raw", prefix)
    else:
        process = run.start("finance", "services.finance", prefix, port=free_port())
        await process.ready()
    figures = Figures()
    send = producer(run.bootstrap)
    async with Arrivals(run.bootstrap, invoices) as arrivals:
        await send.start()
        try:
            await _send(send, cities, [city_joined() for _ in range(WARM_UP)], arrivals, timeout=120, what="warm-up InvoiceIssued")
            process.check()

            records = [city_joined() for _ in range(events)]
            cpu = process.cpu_seconds()
            started = time.monotonic()
            ids = await _send(send, cities, records, arrivals, timeout=600, what=f"InvoiceIssued ({kind})")
            figures.cpu_per_event = (process.cpu_seconds() - cpu) / events
            arrived = sorted(arrivals.at[i] for i in ids)
            figures.rate = events / (arrived[-1] - started)
            figures.longest_pause = max((b - a for a, b in zip(arrived, arrived[1:])), default=0.0)
            figures.burst_latencies = [t - started for t in arrived]

            if paced_events:
                say(f"{kind} pipeline paced: {paced_events} CityJoined at {paced_rate:.0f}/s ...")
                figures.paced_latencies = await _paced(send, cities, arrivals, paced_events, paced_rate)
            process.check()
        finally:
            await send.stop()
    process.stop()
    return figures


async def _send(send, topic: str, records: list, arrivals: Arrivals, *, timeout: float, what: str) -> set[str]:
    futures = [await send.send(topic, value=v, key=k, headers=h) for k, v, h in records]
    await asyncio.gather(*futures)
    ids = {correlation(h) for _, _, h in records}
    await arrivals.wait_for(ids, timeout, progress=what)
    return ids


async def _paced(send, topic: str, arrivals: Arrivals, count: int, rate: float) -> list[float]:
    records = [city_joined() for _ in range(count)]
    sent_at: dict[str, float] = {}
    futures = []
    started = time.monotonic()
    for i, (k, v, h) in enumerate(records):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        sent_at[correlation(h)] = time.monotonic()
        futures.append(await send.send(topic, value=v, key=k, headers=h))
    await asyncio.gather(*futures)
    await arrivals.wait_for(set(sent_at), 120, progress="paced InvoiceIssued")
    return [arrivals.at[i] - t for i, t in sent_at.items()]
