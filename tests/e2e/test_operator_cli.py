"""`python -m deploy.ops` as an operator runs it (a process, logged in from the environment), over
the real broker, against a finance service running in this process."""

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from sqlalchemy import insert

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined, TravelClaimAmended, TravelClaimed
from contracts.topics import Topic, dead_letter_topic
from services.common.api import today
from services.common.db import OutboxMessage
from tests.e2e.test_finance_over_kafka import budget
from tests.support import committed_everything, consumed, eventually, produce, read_topic, running

ROOT = Path(__file__).resolve().parents[2]


async def ops(platform, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the command line; its output, or fail with what it said."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.ops", *args, cwd=ROOT,
        env={**_base_env(), **platform.kafka.env(), "KAFKA_TOPIC_PREFIX": platform.prefix, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"deploy.ops {' '.join(args)} exited {process.returncode}: {err.decode()[-2000:]}"
    return out.decode()


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))}


def record(event, service: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    envelope = wrap(event, service=service)
    return envelope.key.encode(), to_value(envelope), to_headers(envelope)


async def test_an_amendment_finance_could_not_place_yet_is_dead_lettered_listed_and_replayed_once(platform) -> None:
    year = today().year
    claim = TravelClaimed(
        claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(), delegate_email="ana@porto.pt",
        european=True, budget_line="delegate_travel", coe_funded="100.00", city_borne="0.00", submitted_on=today(), event_year=year,
    )
    amended = TravelClaimAmended(
        claim_id=claim.claim_id, registration_id=claim.registration_id, workshop_id=claim.workshop_id, city_id=claim.city_id,
        european=True, budget_line="delegate_travel", coe_funded="150.00", city_borne="0.00", previous_coe_funded="100.00",
        event_year=year, amended_on=today(), amendment=1,
    )
    claims, dlq = platform.topic(Topic.CLAIMS.value), platform.topic(dead_letter_topic("finance"))
    app = platform.finance()
    async with running(app) as finance:
        await consumed(app)
        assert (await finance.put(f"/budgets/{year}", json=budget("600.00"))).status_code == 200
        # The amendment overtakes its claim (another partition, a slow producer): finance cannot place it.
        amendment = wrap(amended, service="travel")
        await produce(platform.kafka, claims, [(amendment.key.encode(), to_value(amendment), to_headers(amendment)),
                                               (b"junk", b"\x00 not an event", [])])
        await read_topic(platform.kafka, dlq, at_least=2)

        listed = await ops(platform, "dead-letters", "list", "--service", "finance")
        [amendment_line] = [line for line in listed.splitlines() if "TravelClaimAmended" in line]
        assert f"id={amendment.id}" in amendment_line and "never received it" in amendment_line
        assert claims in amendment_line
        assert any("not a CloudEvent" in line for line in listed.splitlines())
        at = amendment_line.split()[0]  # partition:offset in the dead-letter topic

        await produce(platform.kafka, claims, [record(claim, "travel")])  # what finance did not know yet

        async def decided():
            answer = await finance.get(f"/reimbursements/{claim.claim_id}")
            return answer.status_code == 200 and answer.json()

        assert (await eventually(decided, what="the claim decided"))["amount"] == "100.00"
        dry = await ops(platform, "dead-letters", "replay", "--service", "finance", "--offset", at, "--dry-run")
        assert f"would replay {at} -> {claims}" in dry

        replayed = await ops(platform, "dead-letters", "replay", "--service", "finance", "--offset", at)
        assert f"replayed {at} -> {claims}  TravelClaimAmended" in replayed

        async def amended_applied():
            return (await decided())["amount"] == "150.00"

        await eventually(amended_applied, what="the replayed amendment applied")
        # Replayed again by mistake: a duplicate the consumer skips.
        await ops(platform, "dead-letters", "replay", "--service", "finance", "--offset", at)
        await eventually(lambda: committed_everything(platform.kafka, f"{platform.prefix}icc.finance", [claims]),
                         what="finance consuming the second replay")
        reimbursements = await read_topic(platform.kafka, platform.topic(Topic.REIMBURSEMENTS.value))
        about_claim = [r for r in reimbursements if str(claim.claim_id).encode() in r.value]
        kinds = [dict(r.headers)["ce_type"].decode() for r in about_claim]
        assert kinds.count("ReimbursementReopened") == 1, kinds  # one re-decision, not two
        assert (await decided())["amount"] == "150.00"
        # Only the two records were ever dead-lettered (the replays were applied or skipped, not parked again).
        assert len(await read_topic(platform.kafka, dlq, at_least=2)) == 2


async def test_status_shows_the_outbox_backlog_and_the_lag_of_a_stopped_consumer(platform) -> None:
    cities = platform.topic(Topic.CITIES.value)
    app = platform.finance()
    async with running(app):
        await consumed(app)
        await produce(platform.kafka, cities, [record(_joined(), "membership")])
        await eventually(lambda: committed_everything(platform.kafka, f"{platform.prefix}icc.finance", [cities]),
                         what="finance consuming the first city")
    # Two rows its relay has not published: written while it is stopped, so nothing publishes them.
    now = datetime.now(UTC)
    await _write_after(app, [{"message_id": f"stuck-{i}", "topic": "nowhere", "key": None, "value": b"", "headers": [],
                              "created_at": now} for i in range(2)])
    # Finance is stopped: what arrives now waits, as lag.
    await produce(platform.kafka, cities, [record(_joined(), "membership") for _ in range(3)])
    database = platform.databases("finance")
    env = {"FINANCE_DATABASE_URL": database["DATABASE_URL"], **({"FINANCE_DATABASE_SCHEMA": database["database_schema"]}
                                                               if "database_schema" in database else {})}
    shown = await ops(platform, "status", "--service", "finance", env=env)
    head, *partitions = shown.splitlines()
    assert "outbox backlog 2" in head and f"group {platform.prefix}icc.finance lag 3" in head, shown
    lags = {line.split()[0]: int(line.split()[-1]) for line in partitions}
    assert len(lags) == 12  # six partitions each of cities and claims
    assert sum(lag for p, lag in lags.items() if p.startswith(cities)) == 3


async def _write_after(app, rows) -> None:
    from services.common.db import create_engine

    settings = app.state.runtime.settings
    engine = create_engine(settings.db_url, settings.db_schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(OutboxMessage), rows)
    finally:
        await engine.dispose()


def _joined() -> CityJoined:
    return CityJoined(city_id=uuid4(), name="Porto", country="PT", european=True, joined_on=today().replace(month=1, day=1))

