"""A migration that drifts from the tables the code maps is caught here: after every migration, the
database has exactly the service's tables, columns, indexes and constraints (SQLite and PostgreSQL)."""

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import MachineryBase, create_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", ["membership", "events", "travel", "finance", "notifications"])
async def test_the_migrated_database_is_what_the_code_maps(service: str, databases) -> None:
    settings = databases(service)
    engine = create_engine(settings["DATABASE_URL"], settings.get("database_schema", service))
    try:
        await migrate(engine, settings.get("database_schema", service), ROOT / "services" / service / "migrations")
        mapped = importlib.import_module(f"services.{service}.db").mapper.metadata
        machinery = set(MachineryBase.metadata.tables)

        def drift(connection) -> list:
            differences = compare_metadata(MigrationContext.configure(connection), mapped)
            # the machinery's tables (outbox, processed events) are mapped elsewhere, once for every service
            return [d for d in differences if not _machinery(d, machinery)]

        async with engine.connect() as connection:
            assert await connection.run_sync(drift) == []
    finally:
        await engine.dispose()


def _machinery(difference, machinery: set[str]) -> bool:
    _, thing = difference[0], difference[1]
    table = getattr(thing, "table", thing)
    return getattr(table, "name", None) in machinery or getattr(thing, "name", None) == "alembic_version"
