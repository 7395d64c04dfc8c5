"""The Kafka security settings, the client arguments made from them, the ACL rules and the local
broker's secured configuration (no broker needed)."""

import os
import ssl
import stat
from pathlib import Path

import certifi
import pytest
from pydantic import ValidationError

from contracts.events import CityJoined
from contracts.topics import CONSUMES, PRODUCES, SERVICES, Topic, dead_letter_topic, owned_prefix
from deploy.kafka.acls import Grant, service_acls
from deploy.kafka.local import KafkaError, LocalKafka
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS, RESERVED
from services.common.kafka import broker_security, client_args
from services.common.runtime import build_service
from services.common.settings import KafkaConnection
from services.events.handlers import HANDLERS as EVENTS_HANDLERS
from services.finance.handlers import HANDLERS as FINANCE_HANDLERS
from services.finance.settings import FinanceSettings
from services.membership.db import MembershipUnitOfWork
from services.membership.settings import MembershipSettings
from services.travel.handlers import HANDLERS as TRAVEL_HANDLERS


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about what the settings make of what they are given, not of this shell's KAFKA_*."""
    for name in list(os.environ):
        if name.startswith("KAFKA_"):
            monkeypatch.delenv(name)


def test_a_service_logs_in_as_itself_unless_told_otherwise() -> None:
    finance = FinanceSettings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_PASSWORD="s3cret")
    assert (finance.kafka.username, finance.kafka.sasl_mechanism) == ("finance", "SCRAM-SHA-512")
    assert FinanceSettings(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="icc-finance-prod",
                           KAFKA_SASL_PASSWORD="s3cret").kafka.username == "icc-finance-prod"
    assert FinanceSettings().kafka == KafkaConnection(bootstrap_servers="127.0.0.1:9092")  # PLAINTEXT: no login at all


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_PASSWORD": "s3cret"}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "s3cret", "KAFKA_SSL_CAFILE": certifi.where()},
         "only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "s3cret", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"},
         "not a readable file"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_PASSWORD": "x"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_an_incomplete_or_contradictory_combination_fails_at_start(given: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        FinanceSettings(**given)


def test_the_environment_is_read_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD"):
        FinanceSettings()
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    assert FinanceSettings().kafka.password.get_secret_value() == "s3cret"


def test_every_client_gets_the_same_login_arguments() -> None:
    scram = KafkaConnection(bootstrap_servers="k:9092", security_protocol="SASL_PLAINTEXT", username="finance", password="pw")
    assert client_args(scram) == {
        "bootstrap_servers": "k:9092", "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "finance", "sasl_plain_password": "pw", "ssl_context": None,
    }
    assert client_args(KafkaConnection(bootstrap_servers="k:9092")) == {"bootstrap_servers": "k:9092"}
    assert broker_security(KafkaConnection(bootstrap_servers="k:9092")) is None

    tls = KafkaConnection(bootstrap_servers="k:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                          username="finance", password="pw", ssl_cafile=certifi.where())
    args = client_args(tls)
    assert (args["security_protocol"], args["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert isinstance(args["ssl_context"], ssl.SSLContext) and args["ssl_context"].cert_store_stats()["x509_ca"] > 0
    assert broker_security(tls).use_ssl


def test_a_connection_passes_to_a_process_through_its_environment() -> None:
    finance = KafkaConnection(bootstrap_servers="k:9092", security_protocol="SASL_PLAINTEXT", username="finance", password="pw")
    assert FinanceSettings(**finance.env()).kafka == finance
    plain = KafkaConnection(bootstrap_servers="k:9092")
    assert FinanceSettings(**plain.env()).kafka == plain  # the empty SASL variables mean unset


def test_each_service_writes_only_under_its_own_name_and_reads_what_it_consumes() -> None:
    grants = service_acls("t1.")
    assert Grant("membership", "prefixed", ("Write", "Create", "Describe", "Read"), topics=("t1.icc.membership.",)) in grants
    assert [g for g in grants if g.principal == "membership" and g.pattern == "literal"] == []  # it consumes nothing
    [finance_reads] = [g for g in grants if g.principal == "finance" and g.pattern == "literal"]
    assert finance_reads == Grant("finance", "literal", ("Read", "Describe"),
                                  topics=("t1.icc.membership.cities", "t1.icc.travel.claims"), groups=("t1.icc.finance",))
    assert {g.principal for g in grants} == set(SERVICES) and not set(RESERVED) & {g.principal for g in grants}
    assert all("Write" not in g.operations for g in grants if g.pattern == "literal")
    for service, topics in PRODUCES.items():
        assert all(t.startswith(owned_prefix(service)) for t in (*topics, dead_letter_topic(service)))
    assert service_acls("") == [Grant(g.principal, g.pattern, g.operations, tuple(t.removeprefix("t1.") for t in g.topics),
                                      tuple(x.removeprefix("t1.") for x in g.groups)) for g in grants]


def test_the_consumed_topics_are_exactly_those_of_the_handlers() -> None:
    handlers = {"membership": {}, "events": EVENTS_HANDLERS, "travel": TRAVEL_HANDLERS, "finance": FINANCE_HANDLERS}
    for service, registered in handlers.items():
        assert set(CONSUMES[service]) == {event.topic for event in registered}, service


def test_a_service_whose_handlers_read_an_unlisted_topic_refuses_to_start(tmp_path: Path) -> None:
    async def on_city_joined(event, uow) -> None: ...

    settings = MembershipSettings(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/m.db")
    with pytest.raises(RuntimeError, match=f"{Topic.CITIES}.*CONSUMES"):
        build_service(settings, title="t", description="d", uow_class=MembershipUnitOfWork, migrations=tmp_path,
                      routers=[], handlers={CityJoined: on_city_joined})


def test_the_local_broker_takes_only_scram_logins_and_checks_acls(tmp_path: Path) -> None:
    kafka = LocalKafka(home=tmp_path / "kafka", port=19392, controller_port=19393)
    props = kafka.server_properties()
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19392,CONTROLLER://127.0.0.1:19393"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19392"  # what clients are told to use
    assert props["listener.security.protocol.map"] == "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    # the controller's password is nobody's: made afresh for each broker process
    secret = props["listener.name.controller.plain.sasl.jaas.config"]
    assert secret != LocalKafka(home=tmp_path / "other").server_properties()["listener.name.controller.plain.sasl.jaas.config"]
    assert not any(password in secret for password in LOCAL_PASSWORDS.values())
    config = kafka.write_config()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the admin's password
    assert kafka.connection("finance").username == "finance" and kafka.connection().username == ADMIN


def test_a_home_formatted_without_the_scram_users_is_refused_with_what_to_do(tmp_path: Path) -> None:
    kafka = LocalKafka(home=tmp_path / "kafka", port=19392, controller_port=19393)
    kafka.data_dir.mkdir(parents=True)
    (kafka.data_dir / "meta.properties").write_text("node.id=1\n")  # formatted by the earlier PLAINTEXT broker
    with pytest.raises(KafkaError, match=r"without SCRAM users[\s\S]*rm -rf .*kafka; make kafka"):
        kafka.start()
    assert not kafka.is_running()
