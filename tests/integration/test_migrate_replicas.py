"""Replicas that start together on a fresh PostgreSQL schema (MIGRATE_ON_START, as without a
migration job) migrate one at a time: all of them start, none trips over the other's tables."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

from services.common.serve import SERVICES_DIR, wait_migrated
from services.membership.settings import MembershipSettings

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
ROOT = Path(__file__).resolve().parents[2]


async def test_replicas_migrating_one_schema_at_once_all_succeed(postgres_server_url) -> None:
    schema = f"t{uuid.uuid4().hex[:10]}_membership"
    env = {**os.environ, **NO_BROKER, "DATABASE_URL": postgres_server_url, "DATABASE_SCHEMA": schema}
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "services.membership", "migrate", env=env, cwd=ROOT,
                                             stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        for _ in range(4)
    ]
    outcomes = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (_, stderr) in zip(processes, outcomes):
        assert process.returncode == 0, stderr.decode()[-3000:]
    settings = MembershipSettings(**NO_BROKER, DATABASE_URL=postgres_server_url, database_schema=schema)
    assert await wait_migrated(settings, SERVICES_DIR / "membership" / "migrations", timeout=0)
