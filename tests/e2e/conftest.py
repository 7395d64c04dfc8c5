"""End-to-end fixtures: the services, in this process, over the real broker, on a fresh topic namespace."""

from dataclasses import dataclass, field

import pytest

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
from tests.support import topic_prefix


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

    def events(self):
        return build_events(EventsSettings(**self.settings("events")))

    def travel(self):
        return build_travel(TravelSettings(**self.settings("travel")))

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
