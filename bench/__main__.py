"""`make bench`: the platform's throughput and latency, each against a baseline measured in the same
run, on the same broker and the same kind of database (SQLite files, or PostgreSQL schemas).

1. pipeline: CityJoined -> InvoiceIssued. The baseline is the raw reference pipeline (bench.raw:
   aiokafka consume -> executemany INSERT of the same rows -> commit -> produce -> commit offsets,
   no ORM); then finance itself: bursts of --events, alternating with the raw pipeline's, the best
   of --repeat each (events/s, CPU per event, and the longest pause between two InvoiceIssued: the
   relay must publish while the consumer works), and --paced-events at --paced-rate (latency from
   send to InvoiceIssued).
2. claims: POST /claims -> TravelClaimed -> finance's decision -> visible in GET /claims/{id}, at
   --claims-rate (latency p50/p99), and POST /claims throughput against a bare FastAPI endpoint
   served the same way (bench.bare).
3. rebuild: python -m services.finance.rebuild over --rebuild-events (--long: 1 000 000).
4. replicas (PostgreSQL only; SQLite is single-process): finance as 1 process and as 2 replicas of
   one consumer group on one schema, bursts of --events alternating, the best of --repeat each.
5. batch (not run unless asked): finance's consumer batch in the bench's own process, no broker,
   against the raw pipeline's database work on the same records (CPU per event; bench.batch).

Every process under test is its own (finance, travel, the raw pipeline, the bare endpoint). The
last two lines are the figures the goals are about: the pipeline ratio and the paced latency.
"""

import argparse
import asyncio
import os
import sys

from bench.batch import batches
from bench.claims import claims_pipeline
from bench.kit import Run, percentile, say
from bench.pipeline import compare, replicas
from bench.rebuild import rebuild
from deploy.kafka.local import LocalKafka
from services.common.settings import KafkaConnection, KafkaSettings

PARTS = ("pipeline", "claims", "rebuild", "replicas")  # what `make bench` runs
ON_REQUEST = ("batch",)  # parts run only when named in --parts
LONG_REBUILD = 1_000_000


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def bench(args: argparse.Namespace, kafka: KafkaConnection) -> list[str]:
    run = Run(kafka, args.database)
    lines, last = [f"ICC bench ({args.database}, broker {kafka.bootstrap_servers}, {os.cpu_count()} cores, load average {load()} at start)"], []
    failed = True
    try:
        if "pipeline" in args.parts:
            raw, service = await compare(run, args.events, args.repeat, args.paced_rate, args.paced_events)
            best_raw, best = raw.best, service.best
            lines += [
                f"  raw reference pipeline, burst of {args.events} (best of {args.repeat}): {best_raw.rate:6.0f} events/s, "
                f"{best_raw.cpu_per_event * 1e6:4.0f} us CPU per event",
                f"  finance pipeline, burst of {args.events} (best of {args.repeat}):       {best.rate:6.0f} events/s, "
                f"{best.cpu_per_event * 1e6:4.0f} us CPU per event",
                f"  longest pause between two InvoiceIssued in a burst: finance {ms(service.longest_pause)} ms, "
                f"raw {ms(raw.longest_pause)} ms",
            ]
            last = [
                f"ratio pipeline / raw pipeline: {best.rate / best_raw.rate:.2f}",
                f"paced {args.paced_rate:.0f}/s latency ms: p50 {ms(percentile(service.paced_latencies, 50))} "
                f"p99 {ms(percentile(service.paced_latencies, 99))}",
            ]
        if "claims" in args.parts:
            say(f"claims pipeline: travel and finance on {args.database} ...")
            claims = await claims_pipeline(run, args.claims_rate, args.claims, args.claims_throughput)
            lines += [
                f"  claims POST -> decision visible in GET, {args.claims} at {args.claims_rate:.0f}/s: "
                f"p50 {ms(percentile(claims.latencies, 50))} ms, p99 {ms(percentile(claims.latencies, 99))} ms",
                f"    of which (p50 / p99 from each claim's start): POST answered {ms(percentile(claims.answered, 50))} / "
                f"{ms(percentile(claims.answered, 99))} ms, TravelClaimed on Kafka {ms(percentile(claims.claimed, 50))} / "
                f"{ms(percentile(claims.claimed, 99))} ms, decision on Kafka {ms(percentile(claims.decided, 50))} / "
                f"{ms(percentile(claims.decided, 99))} ms",
                f"  POST /claims {claims.claims_per_s:.0f}/s ({claims.claim_cpu * 1e3:.1f} ms CPU each in travel), "
                f"bare FastAPI endpoint {claims.bare_per_s:.0f}/s ({claims.bare_cpu * 1e3:.2f} ms): "
                f"ratio {claims.claims_per_s / claims.bare_per_s:.2f}",
            ]
        if "rebuild" in args.parts:
            events = LONG_REBUILD if args.long else args.rebuild_events
            applied, seconds = await rebuild(run, events)
            lines.append(f"  rebuild over {applied} events: {seconds:.1f} s ({applied / seconds:.0f} events/s)")
        if "replicas" in args.parts:
            if args.database != "postgresql":
                lines.append("  replicas: PostgreSQL only (SQLite is the single-process default); run with --database postgresql")
            else:
                one, two = await replicas(run, args.events, args.repeat)
                lines.append(f"  finance x1: {one.best.rate:6.0f} events/s; x2 replicas: {two.best.rate:6.0f} events/s "
                             f"({two.best.rate / one.best.rate:.2f}x), {two.best.cpu_per_event * 1e6:.0f} us CPU per event in all")
        if "batch" in args.parts:
            figures = await batches(run, args.batches, args.repeat)
            lines.append(f"  finance's batch in-process: {figures.finance * 1e6:.0f} us CPU per event; the raw pipeline's "
                         f"database work: {figures.raw * 1e6:.0f} us (best of {args.repeat}, {args.batches} x 500 CityJoined)")
        failed = False
    finally:
        await run.close(keep=failed)
    lines.append(f"  load average {load()} at the end")
    return lines + last


async def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                        help="postgresql: DATABASE_URL, or the local server of `make postgres`")
    parser.add_argument("--events", type=int, default=5000, help="CityJoined in the burst")
    parser.add_argument("--repeat", type=int, default=2, help="bursts per pipeline, alternating; the best counts")
    parser.add_argument("--paced-rate", type=float, default=200.0)
    parser.add_argument("--paced-events", type=int, default=1000)
    parser.add_argument("--claims-rate", type=float, default=200.0)
    parser.add_argument("--claims", type=int, default=1000, help="claims at --claims-rate, for the latency")
    parser.add_argument("--claims-throughput", type=int, default=2000, help="POST /claims for the throughput")
    parser.add_argument("--rebuild-events", type=int, default=20_000)
    parser.add_argument("--long", action="store_true", help=f"rebuild over {LONG_REBUILD:,} events (a few minutes)")
    parser.add_argument("--batches", type=int, default=10, help="batches of 500 per round in the batch part")
    parser.add_argument("--parts", type=lambda s: s.split(","), default=list(PARTS), help=f"any of {','.join(PARTS + ON_REQUEST)}")
    args = parser.parse_args()
    if unknown := set(args.parts) - set(PARTS + ON_REQUEST):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}: choose among {', '.join(PARTS + ON_REQUEST)}")

    local, started_here = None, False
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = KafkaSettings().kafka_connection()  # on a secured cluster: a user that may create topics and grant ACLs
    else:
        local = LocalKafka()
        started_here = not local.is_ready()
        local.start()
        kafka = local.connection()  # the project's broker, as admin
    try:
        lines = await bench(args, kafka)
    finally:
        if local is not None and started_here:
            local.stop()
    print("\n" + "\n".join(lines), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
