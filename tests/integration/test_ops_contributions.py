"""`python -m deploy.ops contributions` against finance served over HTTP (SQLite and PostgreSQL):
the run invoices every member once, a second run issues nothing, a caller without the finance
role is told so."""

import asyncio
import sys
from datetime import date
from pathlib import Path
from uuid import uuid4

from contracts.events import CityJoined
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.identity import STAND_IN
from tests.integration.test_idempotent_consumer import NO_BROKER, record
from tests.support import running, serving

ROOT = Path(__file__).resolve().parents[2]


async def ops(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.ops", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_the_contribution_run_invoices_each_member_once_and_refuses_a_caller_without_the_role(databases) -> None:
    app = build_app(FinanceSettings(**NO_BROKER, **databases("finance")))
    async with running(app) as finance, serving(app) as url:
        for _ in range(2):  # two members, who joined before 2027
            await app.state.runtime.consumer.apply([record(CityJoined(
                city_id=uuid4(), name="Ghent", country="BE", european=True, joined_on=date(2026, 3, 1)))])
        treasurer = STAND_IN.token("finance", username="treasurer")
        first = await ops("contributions", "--year", "2027", "--finance-url", url, "--token", treasurer)
        again = await ops("contributions", "--year", "2027", "--finance-url", url, "--token", treasurer)
        assert first == (0, "contribution run 2027: 2 invoices issued, 0 members already invoiced\n", "")
        assert again[:2] == (0, "contribution run 2027: 0 invoices issued, 2 members already invoiced\n")
        invoices = (await finance.get("/invoices", params={"year": 2027})).json()
        assert len(invoices) == 2

        code, _, said = await ops("contributions", "--year", "2028", "--finance-url", url,
                                  "--token", STAND_IN.token("delegate", username="someone"))
        assert code == 2 and "finance refused the run (403" in said and "finance role" in said
