"""Running N replicas: what the settings accept and refuse, and what a replica's id is used for."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.common.outbox import relay_lock_key
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.integration.test_finance_budget import NO_BROKER

POSTGRES = "postgresql+asyncpg://icc:icc@127.0.0.1:5432/icc"  # only parsed: nothing connects


def test_sqlite_refuses_more_than_one_replica_at_start(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPLICAS", "2")
    with pytest.raises(ValidationError, match="REPLICAS=2 on SQLite: SQLite is the single-process embedded default.*PostgreSQL"):
        FinanceSettings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db")
    assert FinanceSettings(DATABASE_URL=POSTGRES).replicas == 2
    monkeypatch.setenv("REPLICAS", "1")
    assert FinanceSettings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db").replicas == 1


def test_the_service_process_does_not_start_with_replicas_on_sqlite(tmp_path) -> None:
    env = {**os.environ, "REPLICAS": "2", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/f.db", **NO_BROKER}
    done = subprocess.run([sys.executable, "-m", "services.finance"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "SQLite is the single-process embedded default" in done.stderr and not (tmp_path / "f.db").exists()


def test_a_replica_joins_its_consumer_group_as_a_static_member_named_after_it() -> None:
    def instance_id(**settings) -> str | None:
        app = build_app(FinanceSettings(**NO_BROKER, DATABASE_URL=POSTGRES, KAFKA_TOPIC_PREFIX="p.", **settings))
        [subscriber] = app.state.runtime.broker.subscribers
        return subscriber._connection_args["group_instance_id"]

    assert instance_id(replica_id="finance-5d8f-x2k", replicas=2) == "p.icc.finance-finance-5d8f-x2k"
    assert instance_id() is None  # one process without an id: dynamic membership, as before


def test_the_relay_lock_is_the_same_in_every_process_and_release_and_per_schema() -> None:
    # An old and a new version run side by side during a rolling update: they must contend for one
    # lock, so the key is a fixed function of the schema (not hash(), which varies per process).
    assert relay_lock_key("finance") == 4245288546671500885
    assert relay_lock_key("membership") != relay_lock_key("finance")
    assert -(2**63) <= relay_lock_key("t0123456789_travel") < 2**63
