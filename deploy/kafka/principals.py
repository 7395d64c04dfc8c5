"""The Kafka principals (SCRAM-SHA-512 users) of the local stack and their passwords.

This is the one place the local passwords live. They protect nothing but a broker on this
machine's loopback (``make kafka``, ``make up``, the tests' brokers), so they are in the
repository on purpose; a real cluster has its own users and passwords, given to each service
in ``KAFKA_SASL_PASSWORD`` (see the README, "Kafka security").

``admin`` is the super user (operators, the tests' topic admin, the broker's own inter-broker
login). Each service has its own principal, named after it; ``notifications`` and ``portal``
are reserved for services still to come: they can log in but no ACL grants them anything yet.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from contracts.topics import SERVICES

if TYPE_CHECKING:
    from services.common.settings import KafkaConnection

ADMIN = "admin"
RESERVED = ("portal",)

LOCAL_PASSWORDS: dict[str, str] = {
    ADMIN: "icc-local-admin",
    **{name: f"icc-local-{name}" for name in (*SERVICES, *RESERVED)},
}


def login(cluster: KafkaConnection, user: str) -> KafkaConnection:
    """``cluster`` as ``user``: on a secured cluster with the password in ``<USER>_KAFKA_SASL_PASSWORD``
    if set (a real cluster's), else the local one; a PLAINTEXT cluster has no logins."""
    if not cluster.secured:
        return cluster
    return cluster.as_user(user, os.environ.get(f"{user.upper()}_KAFKA_SASL_PASSWORD") or LOCAL_PASSWORDS[user])
