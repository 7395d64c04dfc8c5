"""Run one service as a process: `python -m services.<name> [serve | migrate [--check] [--wait SECONDS]]`.

`serve` (the default) runs the service's API, relay and consumers; it applies the migrations first
unless MIGRATE_ON_START=false. `migrate` applies the service's migrations to its database and exits:
what a deployment runs once, before the new version's processes start (deploy/k8s: a Job).
`migrate --check` changes nothing: it exits 0 if the database is at the newest revision, 1 if
not; with `--wait` it waits up to that many seconds for another process (the Job) to get it there,
which is how each process of a deployment holds its start until the migration is done."""

import argparse
import gc
import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import FastAPI

from services.common.db import alembic_config, create_engine, migrate
from services.common.logs import configure_logging
from services.common.settings import ServiceSettings

log = logging.getLogger("icc.migrate")

SERVICES_DIR = Path(__file__).resolve().parents[1]


def main(build_app: Callable[[ServiceSettings], FastAPI], settings_class: type[ServiceSettings], argv: list[str] | None = None) -> int:
    service = settings_class.service
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    migrating = commands.add_parser("migrate", help="apply the database migrations and exit")
    migrating.add_argument("--check", action="store_true", help="change nothing: exit 0 if the database is at the newest revision, else 1")
    migrating.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                           help="with --check: wait up to SECONDS for the database to get there")
    args = parser.parse_args(argv)
    settings = settings_class()
    if args.command in (None, "serve"):
        serve(build_app, settings)
        return 0
    configure_logging(settings.log_level, service)
    migrations = SERVICES_DIR / service / "migrations"
    if args.check:
        return 0 if asyncio.run(wait_migrated(settings, migrations, args.wait)) else 1
    asyncio.run(apply_migrations(settings, migrations))
    return 0


def settle_collector() -> None:
    """What the process has built so far (modules, the app, its tables) is here for its life:
    frozen, the collector stops re-scanning it, and a larger first generation makes it run less
    often under load (a batch of 500 events allocates tens of thousands of objects). Together ~15%
    of a batch. The bench's raw reference pipeline does the same, so that the ratio compares the
    work and not the collector's settings."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)


def serve(build_app: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    app = build_app(settings)
    settle_collector()
    # log_config=None: our JSON logging (set up in the lifespan) is the only format.
    uvicorn.run(app, host=settings.http_host, port=settings.port, log_config=None, access_log=False)


async def apply_migrations(settings: ServiceSettings, migrations: Path) -> None:
    engine = create_engine(settings.db_url, settings.db_schema)
    try:
        before = await _applied(engine)
        await migrate(engine, settings.db_schema, migrations)
        log.info("database migrated", extra={"schema": settings.db_schema, "from": sorted(before), "to": sorted(await _applied(engine))})
    finally:
        await engine.dispose()


async def wait_migrated(settings: ServiceSettings, migrations: Path, timeout: float) -> bool:
    """Whether the database is at the newest revision, polling up to `timeout` seconds for it."""
    script = ScriptDirectory.from_config(alembic_config(migrations))
    engine = create_engine(settings.db_url, settings.db_schema)
    deadline = time.monotonic() + timeout
    said = None
    try:
        while True:
            try:
                missing = _missing(script, await _applied(engine))
                state = f"without revisions {missing}" if missing else None
            except Exception as err:  # not reachable yet, or migrated by a newer version
                state = f"not usable ({type(err).__name__}: {err})"
            if state is None:
                log.info("database at the newest revision", extra={"schema": settings.db_schema})
                return True
            if state != said:
                log.warning(
                    f"database {state}: run `python -m services.{settings.service} migrate` (a deployment's migration job)",
                    extra={"schema": settings.db_schema, "waiting_seconds": timeout},
                )
                said = state
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    finally:
        await engine.dispose()


async def _applied(engine: Any) -> set[str]:
    """The revisions the database records (the newest of each branch: their ancestors are implied)."""
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads()))


def _missing(script: ScriptDirectory, applied: set[str]) -> list[str]:
    done = {revision.revision for head in applied for revision in script.revision_map.iterate_revisions(head, "base")}
    return sorted({revision.revision for revision in script.walk_revisions()} - done)
