"""Where the real parts come from.

Kafka: KAFKA_BOOTSTRAP_SERVERS if set, logged in as KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* say
(on a secured cluster: a super user, who creates the tests' topics and grants their ACLs; the
services' own passwords come from <SERVICE>_KAFKA_SASL_PASSWORD, else the local ones); else
testcontainers' Kafka (PLAINTEXT) when a Docker engine answers; else the project's own broker
(deploy/kafka, fetched from Maven Central, SASL/SCRAM and ACLs), started if needed, as admin.
The tests of authentication and authorisation need a secured cluster: the session's if it is
one, else a private broker of the project's on free ports (`secured_kafka`).
Keycloak (the identity provider): KEYCLOAK_URL if set; else the project's own (deploy/keycloak,
fetched from Maven Central), started if needed. Most tests sign their own tokens (tests/identity.py);
only the sign-in tests need the real provider.
PostgreSQL: DATABASE_URL (a postgresql URL) if set; else testcontainers when Docker answers;
else the local server that `make postgres` / `.ci/run` start (ICC_TEST_POSTGRES_URL).
Every test that touches a database runs on SQLite and on PostgreSQL (the `database_url` fixture).
"""

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.kafka.local import LocalKafka
from services.common.settings import KafkaConnection, KafkaSettings
from deploy.keycloak.local import KeycloakError, LocalKeycloak

LOCAL_POSTGRES = "postgresql+asyncpg://icc:icc@127.0.0.1:5432/icc"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-events", type=int, default=None,
                     help="events the fault soak (tests/soak) pushes through the platform; default: SOAK_EVENTS, else a bounded run")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaConnection]:
    """The session's cluster, logged in as the tests' admin (super user where there are logins)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield KafkaSettings().kafka_connection()
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield KafkaConnection(bootstrap_servers=container.get_bootstrap_server())
        return
    broker = LocalKafka()
    started_here = not broker.is_ready()
    broker.start()
    yield broker.connection()
    if started_here:
        broker.stop()


@pytest.fixture(scope="session")
def project_broker(kafka: KafkaConnection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The project's own (secured) broker: the session's when it runs on it, else a private one."""
    default = LocalKafka()
    if kafka.bootstrap_servers == default.bootstrap_servers and default.is_running():
        yield default
        return
    private = LocalKafka(home=tmp_path_factory.mktemp("kafka"), port=_free_port(), controller_port=_free_port())
    private.start(timeout=120)
    try:
        yield private
    finally:
        private.stop()


@pytest.fixture(scope="session")
def secured_kafka(kafka: KafkaConnection, request: pytest.FixtureRequest) -> KafkaConnection:
    """A cluster with logins and ACLs, as its admin: the session's if it has them, else the project's broker."""
    return kafka if kafka.secured else request.getfixturevalue("project_broker").connection()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def identity():
    """A stand-in identity provider with its own key: `build_app(settings, keys=identity.keys())`,
    then `headers=identity.bearer("finance", city_id=...)` (tests/identity.py)."""
    from tests.identity import TestIdentity

    return TestIdentity()


@pytest.fixture(scope="session")
def keycloak_url() -> Iterator[str]:
    """Base URL of a Keycloak serving the realm icc (issuer: <url>/realms/icc)."""
    if url := os.environ.get("KEYCLOAK_URL"):
        yield url.rstrip("/")
        return
    keycloak = LocalKeycloak()
    started_here = not keycloak.is_ready()
    try:
        keycloak.start()
    except KeycloakError as err:
        pytest.fail(f"the local Keycloak did not start: {err}\nStart it with 'make keycloak' or set KEYCLOAK_URL.", pytrace=False)
    yield keycloak.url
    if started_here:
        keycloak.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql", "postgres:")):
        if _docker_answers():
            from testcontainers.postgres import PostgresContainer

            with PostgresContainer("postgres:16", driver="asyncpg") as container:
                yield container.get_connection_url()
            return
        url = os.environ.get("ICC_TEST_POSTGRES_URL", LOCAL_POSTGRES)
    _require_reachable(url)
    yield url


def _require_reachable(url: str) -> None:
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)

    async def probe() -> None:
        connection = await asyncpg.connect(
            host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password,
            database=parsed.database, timeout=5,
        )
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as err:
        pytest.fail(
            f"PostgreSQL is not reachable at {parsed.render_as_string()} ({err!r}). "
            "Run 'make postgres' (installs and starts Debian's server) or set DATABASE_URL.",
            pytrace=False,
        )


Databases = Callable[[str], dict[str, str]]


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Databases:
    """Settings for each service's own database: a fresh SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        return lambda service: {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/{service}.db"}
    url = request.getfixturevalue("postgres_server_url")
    run = uuid.uuid4().hex[:10]
    return lambda service: {"DATABASE_URL": url, "database_schema": f"t{run}_{service}"}


@pytest.fixture
def sqlite_only(tmp_path: Path) -> Databases:
    return lambda service: {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/{service}.db"}
