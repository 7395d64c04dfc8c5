"""The ACLs of the services' principals: who may write, read and consume what.

One function, ``service_acls(prefix)``, states the rules, from the tables in contracts/topics.py:

- a service may write (and describe, create, read back) every topic whose name starts with
  ``<prefix>icc.<service>.``: its own topics and its dead-letter topic;
- it may read the topics it consumes (``CONSUMES``), and nothing else;
- it may consume in its own group, ``<prefix>icc.<service>``.

The prefix is KAFKA_TOPIC_PREFIX: the broker is started with the rules for unprefixed topics,
and a test grants the same rules to its own prefixed topics. ``grant`` creates them on a cluster
with Kafka's own AclCommand (aiokafka's admin client has no ACL calls), as a super user; adding an
ACL that exists changes nothing, so it can run again. The reserved principals (notifications,
portal) get nothing until their services exist.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from contracts.topics import CONSUMES, SERVICES, consumer_group, owned_prefix
from deploy.kafka.local import LIBS_DIR, KafkaError, LocalKafka, run_kafka_tool

if TYPE_CHECKING:
    from services.common.settings import KafkaConnection

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"


@dataclass(frozen=True)
class Grant:
    """Allow ``principal`` the ``operations`` on these topics and groups (one AclCommand call)."""

    principal: str
    pattern: Literal["literal", "prefixed"]
    operations: tuple[str, ...]
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def service_acls(prefix: str = "", services: Iterable[str] = SERVICES) -> list[Grant]:
    """The rules for ``services`` (default: all of them) on the topics and groups under ``prefix``."""
    grants = []
    for service in services:
        grants.append(Grant(service, "prefixed", ("Write", "Create", "Describe", "Read"), topics=(f"{prefix}{owned_prefix(service)}",)))
        if CONSUMES[service]:
            grants.append(Grant(
                service, "literal", ("Read", "Describe"),
                topics=tuple(f"{prefix}{topic}" for topic in CONSUMES[service]),
                groups=(f"{prefix}{consumer_group(service)}",),
            ))
    return grants


def fingerprint(grants: list[Grant]) -> str:
    return hashlib.sha256(repr(sorted(grants, key=repr)).encode()).hexdigest() + "\n"


def grant(
    admin: KafkaConnection, prefix: str = "", services: Iterable[str] = SERVICES, *, libs_dir: Path = LIBS_DIR
) -> list[Grant]:
    """Create the ACLs of ``service_acls(prefix, services)`` on ``admin``'s cluster, logged in as
    ``admin`` (a super user, or one allowed to alter the cluster's ACLs). Returns what it granted."""
    if not admin.secured:
        raise KafkaError(
            f"{admin.bootstrap_servers} is reached over PLAINTEXT: ACLs need SASL logins "
            "(set KAFKA_SECURITY_PROTOCOL and the admin's KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD)"
        )
    LocalKafka(libs_dir=libs_dir).fetch()
    grants = service_acls(prefix, services)
    with _command_config(admin) as config:

        def add(g: Grant) -> None:
            args = ["--bootstrap-server", admin.bootstrap_servers, "--command-config", str(config),
                    "--add", "--allow-principal", f"User:{g.principal}", "--resource-pattern-type", g.pattern]
            args += [arg for op in g.operations for arg in ("--operation", op)]
            args += [arg for topic in g.topics for arg in ("--topic", topic)]
            args += [arg for group in g.groups for arg in ("--group", group)]
            result = run_kafka_tool(ACL_COMMAND, args, libs_dir=libs_dir)
            if result.returncode != 0:
                output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                raise KafkaError(
                    f"AclCommand could not grant {g} on {admin.bootstrap_servers} as {admin.username} "
                    f"(exit {result.returncode}); check that this user is a super user.\n{output}"
                )

        # One JVM per call (about 2 s each): a few at a time roughly halves the wait.
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(add, grants))
    return grants


class _command_config:
    """A client properties file for Kafka's tools, readable by its owner only, removed afterwards."""

    def __init__(self, kafka: KafkaConnection) -> None:
        module = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule"}.get(
            kafka.sasl_mechanism, "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        jaas = f'{module} required username="{_quoted(kafka.username)}" password="{_quoted(kafka.password.get_secret_value())}";'
        lines = [f"security.protocol={kafka.security_protocol}", f"sasl.mechanism={kafka.sasl_mechanism}",
                 f"sasl.jaas.config={_property(jaas)}"]
        if kafka.ssl_cafile is not None:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={_property(str(kafka.ssl_cafile))}"]
        self.text = "\n".join(lines) + "\n"

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="icc-kafka-admin-", suffix=".properties")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(self.text)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _property(value: str) -> str:
    return value.replace("\\", "\\\\")
