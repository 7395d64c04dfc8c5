"""The three-node cluster (deploy/cluster): one private cluster per test session, on free ports."""

import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from deploy.cluster import NODES, LocalCluster


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Always a private cluster (its tests stop nodes), whatever KAFKA_BOOTSTRAP_SERVERS names."""
    ports = _free_ports(2 * NODES)
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), ports=ports[:NODES], controller_ports=ports[NODES:])
    cluster.start(timeout=180)
    try:
        yield cluster
    finally:
        cluster.stop()


def _free_ports(count: int) -> list[int]:
    """Distinct free ports: all held open at once while the OS picks them."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
