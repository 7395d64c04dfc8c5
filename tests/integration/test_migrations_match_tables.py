"""The migrations build exactly the tables the code maps (membership and finance), on SQLite and
PostgreSQL: a migration that drifts from db.py fails here, not in production."""

import importlib
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import MachineryBase, create_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", ["membership", "finance"])
async def test_the_migrated_database_has_the_tables_the_code_maps(databases, service: str) -> None:
    settings = databases(service)
    schema = settings.get("database_schema", service)
    engine = create_engine(settings["DATABASE_URL"], schema)
    try:
        await migrate(engine, schema, ROOT / "services" / service / "migrations")
        metadata = importlib.import_module(f"services.{service}.db").mapper.metadata

        def drift(connection) -> list:
            context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _not_machinery})
            with warnings.catch_warnings():  # SQLite cannot reflect expression indexes: alembic skips them
                warnings.simplefilter("ignore")
                return compare_metadata(context, metadata)

        async with engine.connect() as connection:
            assert await connection.run_sync(drift) == []
    finally:
        await engine.dispose()


def _not_machinery(obj, name, type_, reflected, compare_to) -> bool:
    # The outbox and processed_events are services.common's tables, checked with its own migration.
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name not in MachineryBase.metadata.tables
