"""Who may do what, route by route: docs/roles.md is the table, the services' route rules must match it.

Every route of the five services is called with no token and with a token of each role alone (a
delegate and a coordinator of some city). The answer must be 401 without a token (but on the public
routes), 403 for a role the table refuses, and neither for a role it allows (then the input decides:
a made-up id is 404, an empty body 422). A route missing from the table, or without a rule of its
own, fails; so does a row of the table no service serves.
"""

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.auth import ROLES, Public, rules
from services.events.app import build_app as build_events
from services.events.settings import EventsSettings
from services.finance.app import build_app as build_finance
from services.finance.settings import FinanceSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from services.notifications.app import build_app as build_notifications
from services.notifications.settings import NotificationsSettings
from services.travel.app import build_app as build_travel
from services.travel.settings import TravelSettings
from tests.identity import STAND_IN
from tests.support import running

TABLE = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ROW = re.compile(r"^\| (\w+) \| `([A-Z,]+) (\S+)` \| (.+) \|$")
BUILDERS = {
    "membership": (build_membership, MembershipSettings),
    "events": (build_events, EventsSettings),
    "travel": (build_travel, TravelSettings),
    "finance": (build_finance, FinanceSettings),
    "notifications": (build_notifications, NotificationsSettings),
}
# Path parameters: well-formed values nobody has (an allowed caller gets 404, or 422 for the body).
PARAMETERS = {"year": "2027", "country": "PT", "currency": "CHF"}
# Never ends for an allowed caller (Server-Sent Events): its rule is checked, not its answer.
ENDLESS = {("finance", "GET /dashboard/stream")}


def table() -> dict[tuple[str, str], dict[str, str]]:
    """(service, 'METHOD /path') -> {role: 'yes' | 'city' | 'own' | '-' | 'public'}."""
    found = {}
    for line in TABLE.read_text().splitlines():
        if match := ROW.match(line):
            service, methods, path, cells = match.groups()
            marks = [cell.strip() for cell in cells.split("|")]
            assert len(marks) == len(ROLES), f"docs/roles.md: {line!r} has {len(marks)} role columns, not {len(ROLES)}"
            found[(service, f"{methods} {path}")] = dict(zip(ROLES, marks, strict=True))
    return found


TABLE_ROWS = table()


def test_the_table_covers_every_route_and_names_only_real_ones(tmp_path) -> None:
    served = set()
    for service, (build, settings) in BUILDERS.items():
        app = build(settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/{service}.db"))
        for methods, path, rule in rules(app):
            route = f"{methods} {path}"
            assert rule is not None, f"{service} {route} declares no rule: add require(...), page(...) or public"
            assert (service, route) in TABLE_ROWS, f"{service} {route} is not in docs/roles.md: add its row"
            marks = TABLE_ROWS[(service, route)]
            if isinstance(rule, Public):
                assert set(marks.values()) == {"public"}, f"{service} {route} is public in the code, not in docs/roles.md"
            else:
                allowed = {role for role, mark in marks.items() if mark != "-"}
                declared = set(rule.roles or ROLES)
                assert declared == allowed, f"{service} {route}: the code allows {sorted(declared)}, docs/roles.md {sorted(allowed)}"
            served.add((service, route))
    assert not set(TABLE_ROWS) - served, f"docs/roles.md names routes no service serves: {sorted(set(TABLE_ROWS) - served)}"


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMETERS.get(m.group(1), str(uuid.uuid4())), path)


@pytest.fixture(params=list(BUILDERS))
async def service(request, tmp_path) -> AsyncIterator[tuple[str, object]]:
    name = request.param
    build, settings = BUILDERS[name]
    app = build(settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/{name}.db"))
    async with running(app, signed_in=False) as client:
        yield name, client


async def test_each_role_gets_exactly_what_the_table_says(service) -> None:
    name, client = service
    city = uuid.uuid4()
    tokens = {
        role: STAND_IN.bearer(role, username=f"matrix-{role}", email=f"{role}@city.example", city_id=city)
        for role in ROLES
    }
    wrong: list[str] = []
    for (service_name, route), marks in TABLE_ROWS.items():
        if service_name != name or "public" in marks.values():
            continue
        methods, path = route.split(" ", 1)
        for method in methods.split(","):
            url = _url(path)
            body = {} if method in ("POST", "PUT") else None

            async def call(headers: dict[str, str]):
                return await client.request(method, url, json=body, headers=headers, follow_redirects=False)

            signed_out = await call({})
            # A page sends a signed-out browser to the login (303); an API answers 401.
            if signed_out.status_code not in (401, 303):
                wrong.append(f"{route} without a token: {signed_out.status_code}, not 401")
            elif signed_out.status_code == 401 and not signed_out.headers.get("www-authenticate", "").startswith("Bearer"):
                wrong.append(f"{route} without a token: 401 without WWW-Authenticate: Bearer")
            for role, mark in marks.items():
                if mark != "-" and (name, route) in ENDLESS:
                    continue
                status = (await call(tokens[role])).status_code
                if mark == "-" and status != 403:
                    wrong.append(f"{route} as {role}: {status}, not 403")
                elif mark != "-" and status in (401, 403):
                    wrong.append(f"{route} as {role}: {status}, but docs/roles.md says {mark!r}")
    assert not wrong, "\n".join(wrong)


async def test_a_refusal_names_the_roles_needed(service) -> None:
    name, client = service
    refused = await client.get("/audit", headers=STAND_IN.bearer("delegate", username="dana"))
    assert refused.status_code == 403
    assert "this needs" in refused.json()["detail"] and "dana has delegate" in refused.json()["detail"]
