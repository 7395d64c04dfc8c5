"""A local three-node Apache Kafka cluster (KRaft), for trying what a broker outage does.

Three `LocalKafka` homes (deploy/kafka/local.py: the same Maven jars, the same SCRAM users and
ACLs) under one cluster home, each node a broker and a controller::

    from deploy.cluster import LocalCluster

    cluster = LocalCluster()            # .local/cluster, clients on 127.0.0.1:9192-9194
    cluster.start()                     # all three nodes, then the services' ACLs once
    admin = cluster.connection()        # KafkaConnection of the admin, bootstrapping from every node
    cluster.stop_node(2); cluster.start_node(2)
    cluster.stop()

Topics get 3 replicas and ``min.insync.replicas=2``: a write acknowledged with ``acks=all`` is on
two nodes at least, and the cluster keeps taking writes with one node down.

Layout of the cluster home: ``cluster.json`` (cluster id and ports, fixed when the home is
created), ``controller.secret`` (the nodes' login on each other's controller listener, owner
only), ``icc-acls`` (which ACL rules were granted), ``node-<n>/`` (each node's LocalKafka home).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.topics import SERVICES
from deploy.jvm import say, send_signal
from deploy.kafka.local import LIBS_DIR, LOCAL_DIR, KafkaError, LocalKafka, _run_coro, random_cluster_id
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS

if TYPE_CHECKING:
    from services.common.settings import KafkaConnection

__all__ = ["DEFAULT_HOME", "NODES", "REPLICAS", "LocalCluster"]

DEFAULT_HOME = LOCAL_DIR / "cluster"
NODES = 3
REPLICAS = 3  # every node holds every partition; min.insync.replicas is 2 (LocalKafka)
DEFAULT_PORT = 9192  # clients: 9192-9194
DEFAULT_CONTROLLER_PORT = 9292  # controllers: 9292-9294
QUORUM_LOST_GRACE = 5.0  # seconds a node may go on shutting down once most nodes are gone


class LocalCluster:
    """Three KRaft nodes (broker+controller each) rooted at ``home``. ``ports`` and
    ``controller_ports`` (one per node) are recorded when the home is created; later instances on
    the same home take them from there (other ports are refused while a node runs)."""

    def __init__(
        self,
        home: Path | str = DEFAULT_HOME,
        *,
        ports: list[int] | None = None,
        controller_ports: list[int] | None = None,
        heap: str = "512m",
        libs_dir: Path | str = LIBS_DIR,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        recorded = self._recorded()
        self.cluster_id: str = recorded.get("cluster_id") or random_cluster_id()
        self.ports = list(ports or recorded.get("ports") or range(DEFAULT_PORT, DEFAULT_PORT + NODES))
        self.controller_ports = list(
            controller_ports or recorded.get("controller_ports") or range(DEFAULT_CONTROLLER_PORT, DEFAULT_CONTROLLER_PORT + NODES)
        )
        if len(self.ports) != NODES or len(self.controller_ports) != NODES or len({*self.ports, *self.controller_ports}) != 2 * NODES:
            raise ValueError(f"a cluster needs {NODES} client ports and {NODES} controller ports, all different")
        voters = {node: port for node, port in zip(self.node_ids, self.controller_ports)}
        self.nodes = [
            LocalKafka(
                home=self.home / f"node-{node}", port=port, controller_port=voters[node], heap=heap, libs_dir=libs_dir,
                node_id=node, voters=voters, replicas=REPLICAS, cluster_id=self.cluster_id,
                acls_marker=self.home / "icc-acls",
            )
            for node, port in zip(self.node_ids, self.ports)
        ]
        if recorded and (recorded["ports"], recorded["controller_ports"]) != (self.ports, self.controller_ports):
            if running := [n.node_id for n in self.nodes if n.is_running()]:
                raise KafkaError(
                    f"the cluster in {self.home} runs (nodes {running}) on ports {recorded['ports']} (controllers "
                    f"{recorded['controller_ports']}); stop it before starting it on other ports"
                )

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, NODES + 1))

    @property
    def bootstrap_servers(self) -> str:
        """Every node: a client still finds the cluster when one of them is down."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def connection(self, user: str = ADMIN) -> KafkaConnection:
        """How a client logs in to this cluster as ``user`` (one of deploy/kafka/principals.py)."""
        from services.common.settings import KafkaConnection

        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", username=user, password=LOCAL_PASSWORDS[user],
        )

    def env(self, user: str = ADMIN) -> dict[str, str]:
        """The environment of a process on this cluster as ``user``: the login, the replication
        factor the services create their topics with, and each service's password the way `make up`
        and the tests take them on a cluster of the environment (<SERVICE>_KAFKA_SASL_PASSWORD)."""
        passwords = {f"{service.upper()}_KAFKA_SASL_PASSWORD": LOCAL_PASSWORDS[service] for service in SERVICES}
        return {**self.connection(user).env(), "KAFKA_REPLICATION_FACTOR": str(REPLICAS), **passwords}

    def node(self, node_id: int) -> LocalKafka:
        if node_id not in self.node_ids:
            raise KafkaError(f"no node {node_id}: the cluster's nodes are {self.node_ids}")
        return self.nodes[node_id - 1]

    # ----------------------------------------------------------------- layout

    def _recorded(self) -> dict:
        try:
            return json.loads((self.home / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    def _record(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        layout = {"cluster_id": self.cluster_id, "ports": self.ports, "controller_ports": self.controller_ports}
        (self.home / "cluster.json").write_text(json.dumps(layout, indent=2) + "\n")

    def _secret(self) -> str:
        """The controllers' login, the same on every node and every start (a node restarted alone
        must still log in to the others); made once per cluster home, readable by its owner only."""
        path = self.home / "controller.secret"
        try:
            return path.read_text().strip()
        except OSError:
            pass
        self.home.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        return secret

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 120.0) -> LocalCluster:
        """Start every node that is not running, wait until all three serve clients, then grant the
        services' ACLs (once per cluster home). A node already running is left as it is. Raises
        KafkaError with the failing node's log tail; the nodes started here are stopped again."""
        self.nodes[0].fetch()
        self._prepare()
        launched: list[LocalKafka] = []
        try:
            # Side by side: formatting a new node runs a JVM of its own for seconds.
            with ThreadPoolExecutor(max_workers=NODES) as pool:
                launches = [(node, pool.submit(node.launch)) for node in self.nodes]
            launched = [node for node, launch in launches if launch.exception() is None and launch.result()]
            for _, launch in launches:
                if launch.exception() is not None:
                    raise launch.exception()
            _run_coro(self._wait_ready(timeout))
            self.nodes[0]._grant_acls()
        except BaseException:
            self._stop_nodes(launched, 30.0)
            raise
        return self

    async def _wait_ready(self, timeout: float) -> None:
        await asyncio.gather(*(node.wait_ready_async(timeout) for node in self.nodes))

    def is_ready(self) -> bool:
        return all(node.is_ready() for node in self.nodes)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node: a clean shutdown, all at once (see _stop_nodes)."""
        self._stop_nodes(self.nodes, timeout)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop one node cleanly; the other two keep the cluster serving."""
        self.node(node_id).stop(timeout)

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Start one node again (its data is where it was) and wait until it serves clients."""
        node = self.node(node_id)
        self._prepare()
        node.start(timeout)  # fetches the jars if need be

    def _prepare(self) -> None:
        """The recorded layout and the controllers' shared login, before any node starts."""
        self._record()
        secret = self._secret()
        for node in self.nodes:
            node.controller_secret = secret

    def _stop_nodes(self, nodes: list[LocalKafka], timeout: float) -> None:
        """SIGTERM to all of them at once: each broker hands over its partitions while the controllers
        still have a quorum. A node still shutting down once a majority of the cluster is gone waits
        for a quorum that will not come back (Kafka's controlled shutdown would wait 5 minutes): it
        gets QUORUM_LOST_GRACE seconds, then is killed (it recovers its log at the next start)."""
        pids = {node: node.pid() for node in nodes}
        for pid in pids.values():
            if pid is not None:
                send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        quorum_lost_at = None
        while alive := [node for node, pid in pids.items() if pid is not None and node.pid() is not None]:
            now = time.monotonic()
            stopped = sum(node.pid() is None for node in self.nodes)
            if quorum_lost_at is None and stopped > NODES // 2:
                quorum_lost_at = now
            if now >= deadline or (quorum_lost_at is not None and now - quorum_lost_at >= QUORUM_LOST_GRACE):
                why = "without a quorum" if quorum_lost_at is not None else f"after {timeout:.0f}s"
                for node in alive:
                    say(f"Kafka node {node.node_id} (pid {pids[node]}) still shutting down {why}; killing it")
                    send_signal(pids[node], signal.SIGKILL)
                break
            time.sleep(0.1)
        for node in nodes:
            node.stop(10.0)  # reaps, removes the pid file, keeps a class-data archive only after a clean exit
