"""Rebuild finance's figures from the topics into a fresh database.

    python -m services.finance.rebuild --into sqlite+aiosqlite:///.local/data/finance-rebuilt.db
    python -m services.finance.rebuild --into postgresql://icc:icc@127.0.0.1:5432/icc --schema finance_rebuilt

Reads every partition of the topics finance consumes (membership's cities, travel's claims) and
of its own output topics (invoices, reimbursements, budgets: finance's decisions and commands are
recorded there) from offset 0 up to the end offsets taken at the start, without a consumer
group, and applies each event once through the same projections the live service uses. It does
not decide anything again: the figures come from the decisions as they were made. Kafka comes
from KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX and the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_*
login, like the service's: it reads as the finance principal, which may read these topics.

Invoices and credit notes keep the legal numbers their events carry, and the number counters go
on after the highest (numbers given by the finance_0004 migration to invoices issued before
numbering are not in their events: a rebuild leaves those without one). Budget thresholds
already told are recorded from their events, so a rebuilt service does not tell them again.

The input events it replays are recorded as processed by the live consumer, so a finance service
started on the rebuilt database does not decide them a second time."""

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts.envelope import Envelope, UnreadableEvent, from_record
from contracts.topics import CONSUMES, PRODUCES
from services.common.db import ProcessedEvent, create_engine, migrate, utcnow
from services.common.kafka import client_args
from services.finance.db import FinanceUnitOfWork, Numbers, ledger, members
from services.finance.handlers import HANDLERS
from services.finance.projections import PROJECTIONS, Fact, project
from services.finance.settings import FinanceSettings

log = logging.getLogger("icc.finance.rebuild")

TOPICS = [*CONSUMES[FinanceSettings.service], *PRODUCES[FinanceSettings.service]]
MIGRATIONS = Path(__file__).parent / "migrations"


class NotEmpty(RuntimeError):
    """The target database already holds finance figures: a rebuild goes into a fresh one."""


@dataclass
class RebuildOutcome:
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    unreadable: list[str] = field(default_factory=list)
    end_offsets: dict[str, int] = field(default_factory=dict)


Progress = Callable[[int, int], None]  # (records read so far, records to read)


async def rebuild(
    settings: FinanceSettings, *, batch_size: int = 2000, stall_seconds: float = 30.0, progress: Progress | None = None
) -> RebuildOutcome:
    engine = create_engine(settings.db_url, settings.db_schema)
    try:
        await migrate(engine, settings.db_schema, MIGRATIONS)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            if await session.scalar(select(func.count()).select_from(members)) or await session.scalar(
                select(func.count()).select_from(ledger)
            ):
                raise NotEmpty(f"{engine.url.render_as_string()} (schema {settings.db_schema}) already holds finance data")
        consumer = AIOKafkaConsumer(
            **client_args(settings.kafka), enable_auto_commit=False, group_id=None, client_id="icc-finance-rebuild"
        )
        await consumer.start()
        try:
            outcome = await _replay(consumer, settings, sessions, batch_size, stall_seconds, progress or (lambda done, total: None))
        finally:
            await consumer.stop()
        async with sessions.begin() as session:  # legal numbers came with the events: the counters go on after them
            await Numbers(session).restore()
        return outcome
    finally:
        await engine.dispose()


async def _replay(
    consumer: AIOKafkaConsumer, settings: FinanceSettings, sessions, batch_size: int, stall_seconds: float, progress: Progress
) -> RebuildOutcome:
    outcome = RebuildOutcome()
    partitions = await _partitions(settings)
    if not partitions:
        return outcome
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)  # stop here: what is published later is the live service's
    starts = await consumer.beginning_offsets(partitions)
    outcome.end_offsets = {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()}
    total, done = sum(ends[tp] - starts[tp] for tp in partitions), 0
    remaining = {tp for tp, end in ends.items() if end > 0}
    seen: set[str] = set()  # the relay publishes at least once: a re-sent event must count once
    deadline = time.monotonic() + stall_seconds
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
        records = [r for tp, batch in fetched.items() for r in batch if r.offset < ends[tp]]
        if records:
            await _apply(sessions, records, seen, outcome)
            done += len(records)
            progress(done, total)
            deadline = time.monotonic() + stall_seconds
        elif time.monotonic() > deadline:
            raise TimeoutError(f"no progress for {stall_seconds}s; still to read: {sorted(map(str, remaining))}")
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return outcome


async def _partitions(settings: FinanceSettings) -> list[TopicPartition]:
    """Every partition of the topics that exist (a topic nobody has written to yet is simply empty)."""
    admin = AIOKafkaAdminClient(**client_args(settings.kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.physical_topic(t) for t in TOPICS if settings.physical_topic(t) in existing]
        described = await admin.describe_topics(wanted) if wanted else []
        return sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"])
    finally:
        await admin.close()


async def _apply(sessions, records: list[ConsumerRecord], seen: set[str], outcome: RebuildOutcome) -> None:
    envelopes: list[Envelope] = []
    for record in records:
        try:
            envelope = from_record(record.headers or (), record.value)
        except UnreadableEvent as err:
            outcome.unreadable.append(f"{record.topic}:{record.partition}:{record.offset}: {err}")
            continue
        if type(envelope.data) not in PROJECTIONS:
            outcome.skipped += 1
        elif envelope.ce_id in seen:
            outcome.duplicates += 1
        else:
            seen.add(envelope.ce_id)
            envelopes.append(envelope)
    uow = FinanceUnitOfWork(sessions, FinanceSettings.service, lambda: None)
    async with uow:
        await uow.prefetch([envelope.data for envelope in envelopes])
        inputs = []
        for envelope in envelopes:
            await project(uow, envelope.data, Fact(envelope.ce_id, envelope.occurred_at, envelope.ce_correlationid))
            if type(envelope.data) in HANDLERS:
                inputs.append({"consumer": FinanceSettings.service, "event_id": envelope.ce_id, "processed_at": utcnow()})
        if inputs:
            await uow.session.execute(insert(ProcessedEvent), inputs)
        await uow.commit()
    outcome.applied += len(envelopes)


class ProgressBar:
    """`rebuild [#######.............] 35%  350 000/1 000 000 events  8 950/s  73 s left` on a
    terminal (redrawn in place), one such line every 10 s otherwise (a log)."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = self.last = time.monotonic()
        self.line = ""

    def show(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < (0.25 if self.tty else 10) and done < total:
            return
        self.last = now
        share = done / total if total else 1.0
        rate = done / max(now - self.started, 1e-9)
        left = f"{(total - done) / rate:.0f} s left" if rate and done < total else "done"
        filled = round(share * self.WIDTH)
        self.line = (f"rebuild [{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%}  "
                     f"{done:,}/{total:,} events  {rate:,.0f}/s  {left}".replace(",", " "))
        self.stream.write(("\r" + self.line) if self.tty else self.line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.line:
            self.stream.write("\n")
            self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.finance.rebuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("--into", required=True, help="DATABASE_URL of the fresh database to rebuild into")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (default: finance)")
    parser.add_argument("--batch-size", type=int, default=2000, help="events per transaction")
    args = parser.parse_args(argv)
    overrides = {"DATABASE_URL": args.into, **({"database_schema": args.schema} if args.schema else {})}
    settings = FinanceSettings(**overrides)
    # A batch job that allocates millions of short-lived objects: the modules and tables loaded by
    # now stay for its whole life (frozen: never re-scanned), and the collector runs less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)
    bar = ProgressBar(sys.stderr)
    try:
        outcome = asyncio.run(rebuild(settings, batch_size=args.batch_size, progress=bar.show))
    except NotEmpty as err:
        print(f"refused: {err}; rebuild into a fresh database or schema", file=sys.stderr)
        return 2
    bar.finish()
    print(
        f"rebuilt from {len(outcome.end_offsets)} partitions: {outcome.applied} events applied, "
        f"{outcome.duplicates} duplicates ignored, {outcome.skipped} not finance's, {len(outcome.unreadable)} unreadable"
    )
    for reason in outcome.unreadable[:10]:
        print(f"  unreadable: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
