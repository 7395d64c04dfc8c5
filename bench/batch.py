"""Finance's consumer batch on its own, in the bench's process: no broker, no relay, no other process.

Batches of 500 CityJoined go through `EventConsumer.apply` (dedupe, rules, projections, outbox rows,
commit), and the same records through the raw reference pipeline's database work (bench.raw:
`write`, one transaction per batch), alternating, each on a fresh database. The
figure is CPU time per event, the best of --repeat rounds each: what the pipeline ratio's
difference is made of once Kafka, which both pay alike, and the neighbours are out of the picture.
"""

import gc
import time
import uuid
from collections import namedtuple
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from bench import raw
from bench.kit import Run, city_joined, say
from services.common.consumer import EventConsumer
from services.common.db import create_engine, migrate
from services.finance.db import FinanceUnitOfWork
from services.finance.handlers import HANDLERS

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "finance" / "migrations"
BATCH = 500
Record = namedtuple("Record", "topic partition offset key value headers timestamp")  # what apply reads of a ConsumerRecord
Apply = Callable[[list[Record]], Awaitable[None]]


@dataclass
class Batches:
    finance: float  # seconds of CPU per event, best round
    raw: float


async def batches(run: Run, count: int, repeat: int) -> Batches:
    """`count` batches per round through each side, `repeat` rounds alternating."""
    offsets = iter(range(10**9))
    rounds = [[[Record("cities", 0, next(offsets), *city_joined(), 0) for _ in range(BATCH)] for _ in range(count)]
              for _ in range(2 * repeat + 2)]  # made up front: building records is not what is measured
    finance, finance_engine = await _finance(run)
    raw_batch, raw_engine = await _raw(run)
    best = {"finance": float("inf"), "raw": float("inf")}
    threshold = gc.get_threshold()
    gc.freeze()  # as the services do (services.common.serve): the records and tables are not garbage
    gc.set_threshold(10_000, 20, 50)
    try:
        await finance(rounds.pop()[0])  # warm-up: statements compiled, tables created
        await raw_batch(rounds.pop()[0])
        for round_ in range(1, repeat + 1):
            for name, apply in (("finance", finance), ("raw", raw_batch)):
                say(f"batch {round_}/{repeat}: {count} x {BATCH} CityJoined through {name}'s database work, in-process ...")
                work = rounds.pop()
                started = time.process_time()
                for batch in work:
                    await apply(batch)
                best[name] = min(best[name], (time.process_time() - started) / (count * BATCH))
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        await finance_engine.dispose()
        await raw_engine.dispose()
    return Batches(finance=best["finance"], raw=best["raw"])


def _engine(run: Run, name: str):
    settings = run.database_env(name)
    schema = settings.get("DATABASE_SCHEMA", "public")
    return create_engine(settings["DATABASE_URL"], schema), schema


async def _finance(run: Run) -> tuple[Apply, object]:
    engine, schema = _engine(run, "batch-finance")
    await migrate(engine, schema, MIGRATIONS)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    consumer = EventConsumer("finance", HANDLERS, lambda: FinanceUnitOfWork(sessions, "finance", lambda: None, uuid.uuid4().hex[:12]))

    async def apply(batch: list[Record]) -> None:
        outcome = await consumer.apply(batch)
        if outcome.applied != len(batch):
            raise SystemExit(f"finance applied {outcome.applied} of {len(batch)} CityJoined: {outcome.dead_lettered[:3]}")

    return apply, engine


async def _raw(run: Run) -> tuple[Apply, object]:
    engine, schema = _engine(run, "batch-raw")
    await migrate(engine, schema, MIGRATIONS)
    sent: list[str] = []  # the previous batch's outbox rows, marked published in the next transaction as bench.raw does

    async def apply(batch: list[Record]) -> None:
        rows = await raw.write(engine, batch, sent)
        sent[:] = [r[5]["message_id"] for r in rows]

    return apply, engine
