"""`python -m services.<name> migrate` (what a deployment's migration job runs) and MIGRATE_ON_START=false
(a service that leaves its schema to that job), on SQLite and PostgreSQL."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from services.common.db import alembic_config
from services.common.serve import SERVICES_DIR, _missing, apply_migrations, main, wait_migrated
from services.membership.app import build_app
from services.membership.settings import MembershipSettings
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
MIGRATIONS = SERVICES_DIR / "membership" / "migrations"
OSLO = {"name": "Oslo", "country": "NO", "population": 709_000}


def test_migrate_applies_the_migrations_once_and_check_says_whether_they_are(databases, monkeypatch) -> None:
    for name, value in {**NO_BROKER, **databases("membership")}.items():
        monkeypatch.setenv(name.upper(), value)

    assert main(build_app, MembershipSettings, ["migrate", "--check"]) == 1  # a fresh database
    assert main(build_app, MembershipSettings, ["migrate"]) == 0
    assert main(build_app, MembershipSettings, ["migrate", "--check"]) == 0
    assert main(build_app, MembershipSettings, ["migrate"]) == 0  # again: nothing left to do


async def test_a_service_with_migrate_on_start_false_leaves_its_schema_to_the_migration_job(databases) -> None:
    settings = MembershipSettings(**NO_BROKER, **databases("membership"), migrate_on_start=False)
    waiting = asyncio.create_task(wait_migrated(settings, MIGRATIONS, timeout=120))  # a deployment's process, held back

    async with running(build_app(settings)):
        assert not await wait_migrated(settings, MIGRATIONS, timeout=0)  # it started without touching the schema
    assert not waiting.done()

    await apply_migrations(settings, MIGRATIONS)  # the job
    assert await waiting
    async with running(build_app(settings)) as membership:
        assert (await membership.post("/cities", json=OSLO)).status_code == 201


def test_the_command_line_migrates_and_logs_json(tmp_path: Path) -> None:
    env = {**os.environ, **NO_BROKER, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/membership.db"}
    done = subprocess.run([sys.executable, "-m", "services.membership", "migrate"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    [migrated] = [entry for entry in logged if entry["msg"] == "database migrated"]
    assert migrated["from"] == [] and _missing(ScriptDirectory.from_config(alembic_config(MIGRATIONS)), set(migrated["to"])) == []

    check = subprocess.run([sys.executable, "-m", "services.membership", "migrate", "--check"], env=env, capture_output=True,
                           text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("argv", [["migrate", "--wait", "x"], ["unknown"]])
def test_a_wrong_command_line_is_refused_with_usage(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(build_app, MembershipSettings, argv)
    assert exited.value.code == 2 and "usage: python -m services.membership" in capsys.readouterr().err
