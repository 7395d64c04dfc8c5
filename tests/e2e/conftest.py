"""End-to-end fixtures: the services, in this process, over the real broker, on a fresh topic namespace;
a browser (Debian's chromium driven by Playwright); the portal over the whole stack."""

import shutil
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from deploy.keycloak.admin import KeycloakAdmin

from contracts.topics import SERVICES
from deploy.kafka.acls import grant
from deploy.kafka.principals import login
from services.common.settings import KafkaConnection
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
from services.portal.app import build_app as build_portal
from services.portal.settings import PortalSettings
from tests.support import eventually, password_grant, running, serving, topic_prefix


@dataclass
class Platform:
    """Builds each service's app with the same broker and topic namespace, each with its own database.

    `kafka` is the tests' own login (the admin on a secured cluster). The services in `themselves`
    log in as their own principals, with the ACLs `as_themselves` granted for this prefix;
    the others log in as the admin too."""

    kafka: KafkaConnection
    prefix: str
    databases: object
    themselves: tuple[str, ...] = field(default=())

    def as_themselves(self, *services: str) -> "Platform":
        grant(self.kafka, self.prefix, services)
        self.themselves = services
        return self

    def login(self, service: str) -> KafkaConnection:
        return login(self.kafka, service) if service in self.themselves else self.kafka

    def settings(self, service: str) -> dict:
        return {
            **self.login(service).env(),
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "relay_poll_seconds": 0.2,
            "retry_max_seconds": 1.0,
            **self.databases(service),
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def membership(self, **overrides):
        return build_membership(MembershipSettings(**{**self.settings("membership"), **overrides}))

    def events(self, **overrides):
        return build_events(EventsSettings(**{**self.settings("events"), **overrides}))

    def travel(self, **overrides):
        return build_travel(TravelSettings(**{**self.settings("travel"), **overrides}))

    def finance(self, **overrides):
        return build_finance(FinanceSettings(**{**self.settings("finance"), **overrides}))

    def notifications(self, **overrides):
        return build_notifications(NotificationsSettings(**{**self.settings("notifications"), "mail_poll_seconds": 0.2, **overrides}))


@pytest.fixture
def platform(kafka: KafkaConnection, databases) -> Platform:
    return Platform(kafka, topic_prefix(), databases)


@pytest.fixture
def platform_sqlite(kafka: KafkaConnection, sqlite_only) -> Platform:
    """For fault tests whose point is Kafka, not the database backend."""
    return Platform(kafka, topic_prefix(), sqlite_only)


@pytest.fixture
def secured_platform(secured_kafka: KafkaConnection, databases) -> Platform:
    """Every service logged in as itself, on a cluster that checks logins and ACLs."""
    return Platform(secured_kafka, topic_prefix(), databases).as_themselves(*SERVICES)


# --- a browser -------------------------------------------------------------------------------------

SCREENSHOTS = Path(__file__).parents[2] / ".local" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-quic", "--disable-sync"]


@pytest.fixture
async def browser():
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: run `make chromium` (apt-get install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()


@pytest.fixture
def sign_in_back_to(keycloak_url):
    """Lets the realm's `icc-web` client send the browser back to a page served on a test port."""
    allowed: list[str] = []

    def allow(base_url: str) -> None:
        with KeycloakAdmin(keycloak_url) as admin:
            admin.allow_redirect(base_url)
        allowed.append(base_url)

    yield allow
    with KeycloakAdmin(keycloak_url) as admin:
        for base_url in allowed:
            admin.allow_redirect(base_url, allowed=False)


async def sign_in(page: Page, start_url: str, keycloak_url: str, username: str, password: str) -> None:
    """Open `start_url` signed out: Keycloak's own login page, then back to it."""
    await page.goto(start_url)
    await page.wait_for_url(f"{keycloak_url}/realms/icc/protocol/openid-connect/auth*", timeout=15_000)
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#kc-login")
    await page.wait_for_url(f"{start_url.split('?')[0]}*", timeout=15_000)


async def accessible(page: Page, what: str) -> None:
    """axe-core (bundled by axe-playwright-python) finds no serious or critical violation on the page."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    serious = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not serious, f"{what}: accessibility violations: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in serious)


async def screenshot(page: Page, name: str) -> Path:
    """Saved under .local/screenshots (the README's pictures are copied from there into docs/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path


# --- the portal over the whole stack --------------------------------------------------------------


@dataclass
class PortalStack:
    """The four services and the portal over real HTTP, everyone trusting the real Keycloak.
    `staff[service]` is a client of that service signed in as the realm's demo-loader (every role),
    for setting the scene through the APIs; `person(...)` creates someone who signs in on the page."""

    url: str
    keycloak_url: str
    services: dict[str, str]
    staff: dict[str, httpx.AsyncClient]

    def person(self, username: str, *roles: str, city_id=None, email: str | None = None) -> tuple[str, str]:
        """A person in the realm (created or updated): their user name and password."""
        password = f"{username}-pass"
        with KeycloakAdmin(self.keycloak_url) as admin:
            admin.upsert_user(username, email or f"{username}@icc.example", list(roles), city_id=city_id, password=password)
        return username, password


@pytest.fixture
async def portal_stack(platform_sqlite: Platform, keycloak_url: str, sign_in_back_to) -> PortalStack:
    platform = platform_sqlite
    apps = {
        "membership": platform.membership(keycloak_url=keycloak_url),
        "events": platform.events(keycloak_url=keycloak_url),
        "travel": platform.travel(keycloak_url=keycloak_url),
        "finance": platform.finance(keycloak_url=keycloak_url),
    }
    async with AsyncExitStack() as stack:
        staff = {name: await stack.enter_async_context(running(app, stand_in=False)) for name, app in apps.items()}
        urls = {name: await stack.enter_async_context(serving(app)) for name, app in apps.items()}
        portal = build_portal(PortalSettings(
            **{f"{name}_url": url for name, url in urls.items()}, keycloak_url=keycloak_url,
            dashboard_url=f"{urls['finance']}/dashboard",
        ))
        await stack.enter_async_context(portal.router.lifespan_context(portal))
        portal_url = await stack.enter_async_context(serving(portal))
        sign_in_back_to(portal_url)
        sign_in_back_to(urls["finance"])
        token = await password_grant(keycloak_url, "demo-loader", "demo-loader-pass")
        for client in staff.values():
            client.headers["authorization"] = f"Bearer {token}"
        yield PortalStack(portal_url, keycloak_url, urls, staff)
