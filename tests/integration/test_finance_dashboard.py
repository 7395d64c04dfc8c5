"""The finance dashboard's data: the JSON snapshot and the Server-Sent Events stream (over a real
HTTP server: an in-process ASGI client would buffer the endless stream)."""

import asyncio
import json
import time
from datetime import date
from urllib.parse import parse_qs, urlparse
from uuid import uuid4

import httpx
import pytest

from contracts.events import CityJoined
from services.common.api import today
from services.common.login import WebSessions
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.identity import TestIdentity
from tests.integration.test_finance_budget import (  # noqa: F401, F811 (fixture)
    NO_BROKER, YEAR, claimed, deliver, finance, set_budget,
)
from tests.support import running, serving


async def test_the_snapshot_shows_budget_contributions_held_claims_spending_and_recent_events(finance) -> None:
    client, runtime = finance
    city = CityJoined(city_id=uuid4(), name="Oslo", country="NO", european=True, joined_on=date(YEAR, 3, 1))
    await deliver(runtime, city)
    [invoice] = (await client.get("/invoices")).json()
    await client.post(f"/invoices/{invoice['id']}/payments", json={"amount": "2500.00", "paid_on": today().isoformat(), "reference": "B-1"})
    await set_budget(client, administration="5000.00", delegate_travel="100.00")
    european, too_big = claimed("80.00", city_id=city.city_id), claimed("50.00")
    await deliver(runtime, european, too_big)

    snapshot = (await client.get("/dashboard/snapshot", params={"year": YEAR})).json()
    assert snapshot["year"] == YEAR and snapshot["as_of"].endswith("Z")
    assert [line["line"] for line in snapshot["budget"]] == ["administration", "delegate_travel", "expert_visits", "index_analysis", "events"]
    assert snapshot["budget"][0] == {"line": "administration", "allocation": "5000.00", "available": "2500.00", "committed": "0.00",
                                     "spent": "0.00", "headroom": "2500.00", "used_pct": "0.0", "warning": None}
    assert snapshot["budget"][1]["used_pct"] == "80.0" and snapshot["budget"][1]["warning"] == "80"
    assert snapshot["contributions"]["invoiced"] == "5000.00" and snapshot["contributions"]["received"] == "2500.00"
    assert snapshot["contributions"]["outstanding"] == "2500.00" and snapshot["contributions"]["ageing"]["0-30"] == "2500.00"
    assert set(snapshot["contributions"]) == {"invoiced", "received", "outstanding", "overdue", "credit", "ageing"}
    [held] = snapshot["held_claims"]
    assert (held["claim_id"], held["amount"], held["budget_line"]) == (str(too_big.claim_id), "50.00", "delegate_travel")
    assert snapshot["spending"] == {"european": "80.00", "non_european": "0.00"}
    recent = snapshot["recent_events"]
    assert recent[0]["type"] == "ReimbursementHeld" and recent[0]["id"]
    assert [e["type"] for e in recent].count("PaymentReceived") == 1
    assert any(e["summary"].startswith("Payment of 2500.00 EUR on invoice") for e in recent)
    types = [e["type"] for e in recent]  # newest applied first; each shows when its event happened
    assert types.index("ReimbursementHeld") < types.index("BudgetSet") < types.index("PaymentReceived")
    assert (await client.get("/dashboard/snapshot")).json()["year"] == today().year
    assert (await client.get("/dashboard/snapshot", params={"year": 12})).status_code == 422


class Stream:
    """Reads Server-Sent Events: (event name or None for a comment, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> tuple[str | None, str]:
        name, data, comment = None, [], None
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if name or data or comment is not None:
                        return name, "\n".join(data) if data else (comment or "")
                    continue
                if line.startswith(":"):
                    comment = line[1:].strip()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        raise AssertionError("stream ended")

    async def snapshot(self, timeout: float = 5.0) -> dict:
        while True:
            name, data = await self.next(timeout)
            if name == "snapshot":
                return json.loads(data)


async def test_the_stream_sends_a_snapshot_on_connect_and_after_every_committed_change(tmp_path) -> None:
    identity = TestIdentity()
    app = build_app(FinanceSettings(**NO_BROKER, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db", dashboard_ping_seconds=30),
                    keys=identity.keys())
    async with running(app), serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=identity.bearer("finance")) as client:
        runtime = app.state.runtime
        async with client.stream("GET", "/dashboard/stream", params={"year": YEAR}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            stream = Stream(response)
            first = await stream.snapshot()
            assert first["year"] == YEAR and first["contributions"]["invoiced"] == "0.00"

            # a consumer batch (CityJoined -> contribution invoice)
            await deliver(runtime, CityJoined(city_id=uuid4(), name="Oslo", country="NO", european=True, joined_on=date(YEAR, 3, 1)))
            started = time.monotonic()
            after_join = await stream.snapshot()
            assert after_join["contributions"]["invoiced"] == "5000.00"
            assert time.monotonic() - started < 1.0  # pushed, not polled

            # an API command
            await set_budget(client, delegate_travel="1000.00")
            started = time.monotonic()
            after_budget = await stream.snapshot()
            assert time.monotonic() - started < 1.0
            assert after_budget["budget"][1]["allocation"] == "1000.00"
            assert after_budget["recent_events"][0]["type"] == "BudgetSet"


async def test_an_idle_stream_gets_comment_pings(tmp_path) -> None:
    identity = TestIdentity()
    app = build_app(FinanceSettings(**NO_BROKER, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db", dashboard_ping_seconds=0.2),
                    keys=identity.keys())
    async with running(app), serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=identity.bearer("auditor")) as client:
        async with client.stream("GET", "/dashboard/stream") as response:
            stream = Stream(response)
            assert (await stream.next())[0] == "snapshot"
            name, comment = await stream.next(timeout=3)
            assert name is None and comment.startswith("ping")


async def test_the_stream_is_for_finance_and_auditors_only(tmp_path) -> None:
    identity = TestIdentity()
    app = build_app(FinanceSettings(**NO_BROKER, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db"), keys=identity.keys())
    async with running(app) as client:
        signed_out = await client.get("/dashboard/stream")
        assert signed_out.status_code == 401 and signed_out.headers["www-authenticate"] == 'Bearer realm="icc"'
        delegate = await client.get("/dashboard/stream", headers=identity.bearer("delegate", username="ana"))
        assert delegate.status_code == 403 and "finance, auditor" in delegate.json()["detail"]
        # the JSON snapshot too: finance and the auditor, with a token
        assert (await client.get("/dashboard/snapshot")).status_code == 401
        assert (await client.get("/dashboard/snapshot", headers=identity.bearer("delegate"))).status_code == 403
        assert (await client.get("/dashboard/snapshot", headers=identity.bearer("auditor"))).status_code == 200


async def test_a_stream_opened_with_the_browser_session_ends_when_that_session_ends(tmp_path) -> None:
    identity = TestIdentity()
    provider = identity.transport({"username": "fran", "roles": ["finance"]})
    app = build_app(FinanceSettings(**NO_BROKER, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/f.db", dashboard_ping_seconds=30),
                    keys=identity.keys())
    app.state.web_sessions = WebSessions(app.state.runtime.settings, app.state.auth, transport=provider)
    async with running(app) as api, serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as browser:
        api.headers.update(identity.bearer("finance"))  # changes go through the API with a token
        to_provider = (await browser.get("/login", params={"next": "/dashboard"})).headers["location"]
        state = parse_qs(urlparse(to_provider).query)["state"][0]
        back = await browser.get("/auth/callback", params={"state": state, "code": provider.authorize(to_provider)})
        assert back.headers["location"] == "/dashboard" and "icc_session" in browser.cookies
        async with browser.stream("GET", "/dashboard/stream", params={"year": YEAR}) as response:
            assert response.status_code == 200
            stream = Stream(response)
            await stream.snapshot()
            await set_budget(api, delegate_travel="1000.00")  # still signed in: pushed
            assert (await stream.snapshot())["budget"][1]["allocation"] == "1000.00"

            async with httpx.AsyncClient(base_url=url, timeout=10, cookies=browser.cookies) as other_tab:
                assert (await other_tab.get("/logout")).status_code == 303
            await set_budget(api, delegate_travel="2000.00")  # the next change finds the session gone
            with pytest.raises(AssertionError, match="stream ended"):
                await stream.next(timeout=5)
        assert (await browser.get("/dashboard/stream")).status_code == 401
