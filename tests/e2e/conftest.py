"""End-to-end fixtures: the services, in this process, over the real broker, on a fresh topic namespace."""

from dataclasses import dataclass

import pytest

from services.events.app import build_app as build_events
from services.events.settings import EventsSettings
from services.finance.app import build_app as build_finance
from services.finance.settings import FinanceSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from services.travel.app import build_app as build_travel
from services.travel.settings import TravelSettings
from tests.support import topic_prefix


@dataclass
class Platform:
    """Builds each service's app with the same broker and topic namespace, each with its own database."""

    bootstrap: str
    prefix: str
    databases: object

    def settings(self, service: str) -> dict:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "relay_poll_seconds": 0.2,
            "retry_max_seconds": 1.0,
            **self.databases(service),
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def membership(self, **overrides):
        return build_membership(MembershipSettings(**{**self.settings("membership"), **overrides}))

    def events(self):
        return build_events(EventsSettings(**self.settings("events")))

    def travel(self):
        return build_travel(TravelSettings(**self.settings("travel")))

    def finance(self, **overrides):
        return build_finance(FinanceSettings(**{**self.settings("finance"), **overrides}))


@pytest.fixture
def platform(kafka_bootstrap: str, databases) -> Platform:
    return Platform(kafka_bootstrap, topic_prefix(), databases)


@pytest.fixture
def platform_sqlite(kafka_bootstrap: str, sqlite_only) -> Platform:
    """For fault tests whose point is Kafka, not the database backend."""
    return Platform(kafka_bootstrap, topic_prefix(), sqlite_only)
