"""A real, self-managed Apache Kafka broker for local development and tests.

One JVM runs a single KRaft node that is both broker and controller. The Kafka jars
come from Maven Central (``deploy/kafka/pom.xml``) and are cached once per checkout in
``<repo>/.local/kafka-libs``; every broker "home" (data, logs, config, pid file) is
separate, so several brokers on different ports can run side by side::

    from deploy.kafka.local import LocalKafka

    with LocalKafka() as kafka:                      # 127.0.0.1:9092, <repo>/.local/kafka
        print(kafka.bootstrap_servers)
        admin = kafka.connection()                   # KafkaConnection of the admin user
        finance = kafka.connection("finance")        # ... or of a service's principal

The broker is secured: clients log in with SASL/SCRAM-SHA-512 as one of the users of
``deploy/kafka/principals.py`` (created when the home is formatted), and the standard
authorizer lets each do only what ``deploy/kafka/acls.py`` grants (granted at the first
start of a home, and again whenever those rules change).

    k = LocalKafka(home=tmp_path / "kafka", port=19092, controller_port=19093)
    k.start()      # returns once the broker answers Kafka requests
    k.stop()       # data survives: start() again brings back topics and offsets

A home can also be one node of a multi-node cluster (``node_id``, ``voters``, ``replicas``,
a shared ``cluster_id`` and ``controller_secret``): deploy/cluster starts three of them.

All public methods are synchronous (safe in plain pytest fixtures, with or without a
running event loop); ``wait_ready_async`` is the awaitable readiness check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from contracts.topics import PARTITIONS
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS

if TYPE_CHECKING:
    from services.common.settings import KafkaConnection

from deploy.jvm import fetch_once, fetched, java_home_java, process_alive, run_maven, send_signal, wait_gone
from deploy.jvm import port_open as _port_open
from deploy.jvm import say as _say
from deploy.jvm import tail as _tail

__all__ = [
    "KAFKA_VERSION",
    "DEFAULT_HOME",
    "LIBS_DIR",
    "KafkaError",
    "LocalKafka",
]

KAFKA_VERSION = "4.3.0"

_HERE = Path(__file__).resolve().parent
REPO_ROOT = _HERE.parent.parent
LOCAL_DIR = REPO_ROOT / ".local"
DEFAULT_HOME = LOCAL_DIR / "kafka"
LIBS_DIR = LOCAL_DIR / "kafka-libs"
POM_FILE = _HERE / "pom.xml"
LOG4J_CONFIG = _HERE / "log4j2.yaml"

_CDS_PENDING = "cds-dump.pending"
_CONTROLLER = "controller"  # the broker's login on its own controller listener (PLAIN)
_USERS_MARKER = "icc-scram-users"  # in data/: which SCRAM users the home was formatted with
_ACLS_MARKER = "icc-acls"  # fingerprint of the ACL rules last granted (in data/ unless a cluster says where)
# Jars that must be in the fetched classpath, or the broker cannot start/log.
_REQUIRED_JARS = (
    f"kafka_2.13-{KAFKA_VERSION}.jar",
    f"kafka-clients-{KAFKA_VERSION}.jar",
    f"kafka-server-{KAFKA_VERSION}.jar",
    "log4j-core-",
    "log4j-slf4j-impl-",
    "scala-library-",
    f"kafka-tools-{KAFKA_VERSION}.jar",
)

T = TypeVar("T")


class KafkaError(RuntimeError):
    """Fetching, formatting, starting or stopping the local broker failed."""


def _run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code.

    Uses ``asyncio.run`` when this thread has no running loop; otherwise (a sync method
    called from inside async code) runs it on a fresh loop in a helper thread, so it
    never touches, or deadlocks on, the caller's loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[Any] = []
    error: list[BaseException] = []

    def runner() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    t = threading.Thread(target=runner, name="local-kafka-wait", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def _jaas(module: str, username: str, password: str, **options: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in options.items())
    return f'{module} required username="{username}" password="{password}"{extra};'


def _users_fingerprint() -> str:
    """Who may log in, and with which password: a home formatted with other users is stale."""
    lines = sorted(f"{name}:{hashlib.sha256(pw.encode()).hexdigest()}" for name, pw in LOCAL_PASSWORDS.items())
    return "SCRAM-SHA-512\n" + "\n".join(lines) + "\n"


def java_executable() -> str:
    java = java_home_java()
    if java is None:
        raise KafkaError(
            "'java' is not on PATH (Kafka 4.3 needs Java 17+); install a JDK/JRE 17 "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def run_kafka_tool(
    main_class: str, args: list[str], *, libs_dir: Path = LIBS_DIR, logs_dir: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's command-line tools (a main class of the fetched jars) and return its
    result; its own log goes to ``logs_dir``/server.log (default: .local/logs/kafka-tools)."""
    logs_dir = Path(logs_dir or LOCAL_DIR / "logs" / "kafka-tools")
    logs_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        # Short-lived tool: C1 only and serial GC start noticeably faster.
        java_executable(), "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={logs_dir}",
        "-cp", str(Path(libs_dir) / "*"), main_class, *args,
    ]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=logs_dir, timeout=timeout)


def random_cluster_id() -> str:
    """Same format as ``kafka-storage random-uuid``: URL-safe base64 of 16 random bytes."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like CLI flags
            return cid


class LocalKafka:
    """A KRaft Kafka node (broker+controller in one JVM) rooted at ``home``: by default a whole
    single-node cluster; with ``voters`` naming other nodes, one node of a multi-node cluster.

    Layout of ``home``: ``server.properties``, ``kafka.pid``, ``data/`` (log.dirs and
    KRaft metadata), ``logs/server.log`` (broker log, INFO) and ``logs/console.log``
    (JVM stdout/stderr: WARN and above, crashes).

    A node of a cluster: ``node_id``; ``voters`` maps every controller's node id to its
    controller port (all on 127.0.0.1); ``replicas`` is the replication factor of new topics and
    of Kafka's internal topics (``min.insync.replicas`` is 2 from 3 replicas on, else 1); every
    node is formatted with the same ``cluster_id`` and shares the ``controller_secret`` (the
    login of the brokers on the controllers' listeners), which a single node makes afresh at
    every start.
    """

    def __init__(
        self,
        home: Path | str = DEFAULT_HOME,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        *,
        libs_dir: Path | str = LIBS_DIR,
        node_id: int = 1,
        voters: dict[int, int] | None = None,
        replicas: int = 1,
        cluster_id: str | None = None,
        controller_secret: str | None = None,
        acls_marker: Path | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError("port and controller_port must differ")
        self.home = Path(home).expanduser().resolve()
        self.port = int(port)
        self.controller_port = int(controller_port)
        self.heap = heap
        self.libs_dir = Path(libs_dir).expanduser().resolve()
        self.node_id = node_id
        self.voters = voters or {node_id: self.controller_port}
        if self.voters.get(node_id) != self.controller_port:
            raise ValueError(f"voters {self.voters} must map node {node_id} to its controller port {self.controller_port}")
        self.replicas = replicas
        self.cluster_id = cluster_id
        self.acls_marker = acls_marker or self.data_dir / _ACLS_MARKER
        self._proc: subprocess.Popen[bytes] | None = None
        self.controller_secret = controller_secret or secrets.token_urlsafe(24)

    # ------------------------------------------------------------------ paths

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "console.log"

    def connection(self, user: str = ADMIN) -> KafkaConnection:
        """How a client logs in to this broker as ``user`` (one of deploy/kafka/principals.py)."""
        from services.common.settings import KafkaConnection

        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512", username=user, password=LOCAL_PASSWORDS[user],
        )

    def __repr__(self) -> str:
        return (
            f"LocalKafka(home={str(self.home)!r}, port={self.port}, "
            f"controller_port={self.controller_port})"
        )

    # ------------------------------------------------------------------ fetch

    def _libs_fingerprint(self) -> str:
        pom = POM_FILE.read_bytes()
        return f"kafka {KAFKA_VERSION} pom-sha256 {hashlib.sha256(pom).hexdigest()}\n"

    def _libs_complete(self) -> bool:
        return fetched(self.libs_dir, self._libs_fingerprint())

    def fetch(self) -> Path:
        """Download the Kafka jars with Maven into the shared cache, once (see `deploy.jvm.fetch_once`).
        Returns the libs directory."""
        if not self._libs_complete():
            _say(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central (first run only)...")
            started = time.monotonic()
            fetch_once(self.libs_dir, self._libs_fingerprint(), self._fetch_into)
            jars = len(list(self.libs_dir.glob("*.jar")))
            _say(f"fetched {jars} jars into {self.libs_dir} in {time.monotonic() - started:.0f}s")
        return self.libs_dir

    def _fetch_into(self, tmp: Path) -> None:
        retry = "python -m deploy.kafka fetch"
        run_maven(
            ["-f", str(POM_FILE), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
            what=f"Kafka {KAFKA_VERSION}", retry=retry, error=KafkaError, cwd=_HERE,
        )
        names = [p.name for p in tmp.glob("*.jar")]
        missing = [req for req in _REQUIRED_JARS if not any(n.startswith(req) for n in names)]
        if missing:
            raise KafkaError(
                f"Maven finished but the Kafka classpath is incomplete (missing {missing}); "
                f"check {POM_FILE} and rerun: {retry}"
            )

    # ----------------------------------------------------------------- config

    def server_properties(self) -> dict[str, str]:
        """The broker configuration written by :meth:`write_config`."""
        host = "127.0.0.1"
        replicas = str(self.replicas)
        min_insync = "2" if self.replicas >= 3 else "1"  # a write survives one node lost; fewer nodes cannot lose one
        return {
            # KRaft combined mode: every node is a broker and a controller.
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            # Static quorum (kraft.version=0): the voters' endpoints come from this file on
            # every start, so a home can be restarted on other ports. The dynamic
            # alternative (controller.quorum.bootstrap.servers + format --standalone)
            # records the endpoints in the metadata log instead.
            "controller.quorum.voters": ",".join(f"{node}@{host}:{port}" for node, port in sorted(self.voters.items())),
            # Clients reach only the SASL listener: every login is a SCRAM-SHA-512 user created
            # at format time, and what it may do is what the ACLs grant (deploy/kafka/acls.py).
            "listeners": f"SASL_PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{host}:{self.port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": _jaas(
                "org.apache.kafka.common.security.scram.ScramLoginModule", ADMIN, LOCAL_PASSWORDS[ADMIN]
            ),
            # The controller listener authenticates too. SCRAM cannot serve it (the credentials
            # live in the metadata the controller serves), so it is PLAIN with one user whose
            # password is made afresh for every start and exists only in server.properties
            # (mode 0600): a local client on the controller port (which would be a super user
            # there: the broker registers and fetches metadata through it) cannot log in.
            "controller.listener.names": "CONTROLLER",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule", _CONTROLLER, self.controller_secret,
                **{f"user_{_CONTROLLER}": self.controller_secret},
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN};User:{_CONTROLLER}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.data_dir),
            # Topics and internal topics: `replicas` copies, a write acknowledged by `min_insync` of them.
            "num.partitions": str(PARTITIONS),
            "default.replication.factor": replicas,
            "min.insync.replicas": min_insync,
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_insync,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_insync,
            # Fast consumer-group joins in tests.
            "group.initial.rebalance.delay.ms": "0",
            # Small and quick: modest segments/indexes, small cleaner buffer (the 128 MiB
            # default is a quarter of a 512m heap), few threads.
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.index.size.max.bytes": str(1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.cleaner.threads": "1",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "background.threads": "4",
            "group.coordinator.threads": "2",
            "share.coordinator.threads": "1",
            "log.retention.hours": "168",
        }

    def write_config(self) -> Path:
        """(Re)write ``home/server.properties`` for the current ports; returns its path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Generated by deploy/kafka/local.py (LocalKafka.write_config); rewritten on every start.",
            f"# Apache Kafka {KAFKA_VERSION}, KRaft node {self.node_id} of {len(self.voters)} (broker+controller).",
        ]
        lines += [f"{k}={v}" for k, v in self.server_properties().items()]
        tmp = self.config_file.with_suffix(".properties.tmp")
        tmp.unlink(missing_ok=True)
        # It holds the admin's password and the controller's secret: owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        tmp.replace(self.config_file)
        return self.config_file

    # ----------------------------------------------------------------- format

    def _classpath(self) -> str:
        return str(self.libs_dir / "*")

    def _java(self) -> str:
        return java_executable()

    def _log_props(self) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]

    def _running_listeners(self) -> str | None:
        """``listeners`` from the server.properties the running broker was started with."""
        try:
            for line in self.config_file.read_text().splitlines():
                if line.startswith("listeners="):
                    return line.split("=", 1)[1].strip()
        except OSError:
            pass
        return None

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def check_users(self) -> None:
        """Raise if this home was formatted with other users than deploy/kafka/principals.py
        (e.g. by the earlier PLAINTEXT broker, which had none): nobody could log in to it."""
        if not self.is_formatted():
            return
        try:
            recorded = (self.data_dir / _USERS_MARKER).read_text()
        except OSError:
            recorded = None
        if recorded == _users_fingerprint():
            return
        why = "without SCRAM users (an earlier PLAINTEXT broker)" if recorded is None else "with other SCRAM users or passwords"
        raise KafkaError(
            f"the Kafka home {self.home} was formatted {why}, so no client can log in to it. It only "
            f"holds local, throwaway topics: delete it and start again, which formats it with the users "
            f"of deploy/kafka/principals.py:\n    make kafka-stop; rm -rf {self.home}; make kafka\n"
            "(and `make clean` too if the services' local databases should forget the old events)"
        )

    def format(self) -> None:
        """Format ``home/data`` as a node of a new cluster (``cluster_id``, random for a single node) with
        the local SCRAM users, unless already formatted."""
        if self.is_formatted():
            self.check_users()
            return
        if not self.config_file.exists():
            self.write_config()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        scram = [
            arg for name, password in LOCAL_PASSWORDS.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]
        res = run_kafka_tool(
            "kafka.tools.StorageTool",
            [
                "format",
                "--cluster-id", self.cluster_id or random_cluster_id(),
                "--config", str(self.config_file),
                "--ignore-formatted",
                # Share groups (KIP-932) are on by default in 4.3; this project has no use
                # for them, so keep the feature (and its coordinator) off.
                "--feature", "share.version=0",
                *scram,
            ],
            libs_dir=self.libs_dir, logs_dir=self.logs_dir,
        )
        if res.returncode == 0 and self.is_formatted():
            (self.data_dir / _USERS_MARKER).write_text(_users_fingerprint())
        if res.returncode != 0 or not self.is_formatted():
            out = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
            raise KafkaError(
                f"formatting {self.data_dir} failed (exit {res.returncode}). If the "
                f"directory holds an old or foreign cluster, delete {self.home} and retry."
                f"\n--- kafka-storage output (tail) ---\n{out}"
            )

    # ------------------------------------------------------------- processes

    def _jvm_args(self) -> list[str]:
        return [
            f"-Xms{self.heap}", f"-Xmx{self.heap}",
            # Kafka's own recommended GC settings, scaled for a small heap.
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            *self._log_props(),
        ]

    # AppCDS: the broker loads ~7k classes at startup, which is about half of a warm
    # start. The first broker started from a fresh libs cache records a dynamic
    # class-data-sharing archive when it exits cleanly (-XX:ArchiveClassesAtExit);
    # every later start maps it (-XX:SharedArchiveFile) and comes up ~2x faster. The
    # archive lives next to the jars and is keyed by the JVM build; the JVM silently
    # ignores an archive that does not match. Set LOCAL_KAFKA_CDS=0 to disable.

    def _cds_archive(self) -> Path | None:
        if os.environ.get("LOCAL_KAFKA_CDS", "1").strip().lower() in ("0", "false", "no", "off"):
            return None
        java = Path(self._java()).resolve()
        libjvm = java.parent.parent / "lib" / "server" / "libjvm.so"
        ident = libjvm if libjvm.exists() else java
        try:
            st = ident.stat()
        except OSError:
            return None
        key = hashlib.sha256(f"{ident}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
        return self.libs_dir / f"kafka-cds-{key}.jsa"

    def _cds_args(self) -> list[str]:
        archive = self._cds_archive()
        if archive is None:
            return []
        quiet = "-Xlog:cds*=off"
        now = time.time()
        for stale in archive.parent.glob("kafka-cds-*.jsa.tmp-*"):  # from crashed dumps
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > 6 * 3600:
                    stale.unlink()
        if archive.exists():
            return [f"-XX:SharedArchiveFile={archive}", quiet]
        # Unique temp name: concurrent first starts each dump their own; the first one
        # stopped cleanly is moved into place (see _finish_cds_dump).
        tmp = archive.with_name(f"{archive.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        (self.home / _CDS_PENDING).write_text(f"{tmp}\n{archive}\n")
        return [f"-XX:ArchiveClassesAtExit={tmp}", quiet]

    def _finish_cds_dump(self, keep: bool) -> None:
        """After the JVM exited: install its CDS archive (if ``keep``) or discard it."""
        pending = self.home / _CDS_PENDING
        try:
            tmp_s, archive_s = pending.read_text().split()[:2]
        except (OSError, ValueError):
            return
        pending.unlink(missing_ok=True)
        tmp, archive = Path(tmp_s), Path(archive_s)
        try:
            if keep and not archive.exists() and tmp.is_file() and tmp.stat().st_size > 0:
                for old in archive.parent.glob("kafka-cds-*.jsa"):  # other JVM builds
                    old.unlink(missing_ok=True)
                os.replace(tmp, archive)
            else:
                tmp.unlink(missing_ok=True)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_java(self, pid: int) -> bool:
        """``pid`` is alive (not a zombie) and is the Kafka JVM of this home."""
        return process_alive(pid, b"kafka.Kafka", str(self.config_file).encode(), child=self._proc)

    def pid(self) -> int | None:
        """Pid of this home's running broker JVM, or None."""
        pid = self._read_pid()
        if pid is not None and self._is_our_java(pid):
            return pid
        return None

    def is_running(self) -> bool:
        """True if this home's broker JVM is alive (it may still be starting up)."""
        return self.pid() is not None

    def is_ready(self, timeout: float = 5.0) -> bool:
        """True if the broker is running and answers a Kafka metadata request."""
        if not self.is_running() or not _port_open(self.port):
            return False
        try:
            return _run_coro(self._probe(timeout))
        except Exception:  # noqa: BLE001
            return False

    def start(self, timeout: float = 60.0) -> LocalKafka:
        """Start the broker (fetch, configure, format as needed) and wait until ready.

        Returns immediately if this home's broker is already running and ready. Raises
        :class:`KafkaError` with the tail of the broker log if it exits or does not
        become ready within ``timeout`` seconds (a broker that did not come up in time
        is stopped again).
        """
        if not self.launch():
            self.wait_ready(timeout)  # already running, possibly still starting (e.g. from another process)
            return self
        try:
            self.wait_ready(timeout)
            self._grant_acls()
        except BaseException:
            self._stop(30.0, keep_cds=False)
            raise
        return self

    def launch(self) -> bool:
        """Start the JVM (fetch, configure, format as needed) without waiting for it; False if this
        home's broker already runs. A cluster launches all its nodes before waiting for any: a node
        serves nobody until a majority of the controllers runs."""
        pid = self.pid()
        if pid is not None:
            running = self._running_listeners()
            wanted = self.server_properties()["listeners"]
            if running is not None and running != wanted:
                raise KafkaError(
                    f"a broker from {self.home} is already running (pid {pid}) with "
                    f"listeners {running}, not {wanted}; stop it first"
                )
            return False
        self.pid_file.unlink(missing_ok=True)
        self._finish_cds_dump(keep=False)  # leftover of a JVM that died without stop()
        self.check_users()
        for p in (self.port, self.controller_port):
            if _port_open(p):
                raise KafkaError(
                    f"port {p} is already in use by another process (another Kafka "
                    f"broker?); stop it or choose other ports (--port/--controller-port)"
                )
        self.fetch()
        self.write_config()
        self.format()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self._java(), *self._jvm_args(), *self._cds_args(), "-cp", self._classpath(),
            "kafka.Kafka", str(self.config_file),
        ]
        with self.console_log.open("ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka ====\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=str(self.home), start_new_session=True, close_fds=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return True

    def _grant_acls(self) -> None:
        """The services' ACLs (unprefixed topics), once per home (or cluster) and whenever the rules change."""
        from deploy.kafka import acls

        marker = self.acls_marker
        fingerprint = acls.fingerprint(acls.service_acls())
        with contextlib.suppress(OSError):
            if marker.read_text() == fingerprint:
                return
        _say("granting the services' ACLs (first start of this home)...")
        acls.grant(self.connection(), libs_dir=self.libs_dir)
        marker.write_text(fingerprint)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the broker answers Kafka requests (see :meth:`wait_ready_async`)."""
        _run_coro(self.wait_ready_async(timeout))

    async def wait_ready_async(self, timeout: float = 60.0) -> None:
        """Poll until the broker serves a DescribeCluster/metadata request.

        Kafka only enables request processing once the broker is registered and
        unfenced, so an answer means topics can be created and produced to. Raises
        :class:`KafkaError` at once, with the log tail, if the JVM exits.
        """
        deadline = time.monotonic() + timeout
        delay = 0.1
        last_error = "port not open yet"
        while True:
            if not self.is_running():
                code = self._proc.poll() if self._proc is not None else None
                how = "" if code is None else f" (exit code {code}{', killed by a signal' if code < 0 else ''})"
                raise KafkaError(
                    f"Kafka ({self.home}) exited during startup{how}. Last lines of "
                    f"{self.server_log}:\n{_tail(self.server_log)}\n--- {self.console_log} ---\n"
                    f"{_tail(self.console_log, 20)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaError(
                    f"Kafka at {self.bootstrap_servers} not ready after {timeout:.0f}s "
                    f"({last_error}). Last lines of {self.server_log}:\n{_tail(self.server_log)}"
                )
            if await asyncio.to_thread(_port_open, self.port, "127.0.0.1", 0.5):
                try:
                    if await self._probe(min(3.0, max(0.5, remaining))):
                        return
                    last_error = "broker not in cluster metadata yet"
                except Exception as exc:  # noqa: BLE001 - keep polling until deadline
                    last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.2)

    async def _probe(self, timeout: float) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        from services.common.kafka import client_args

        request_ms = max(500, int(timeout * 1000))
        admin = AIOKafkaAdminClient(
            **client_args(self.connection()),
            request_timeout_ms=request_ms,
            client_id="local-kafka-readiness",
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            info = await asyncio.wait_for(admin.describe_cluster(), timeout)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        return any(b.get("node_id") == self.node_id for b in info.get("brokers", []))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM (clean shutdown), SIGKILL after ``timeout`` s.

        Safe to call when it is not running; always removes the pid file.
        """
        self._stop(timeout, keep_cds=True)

    def _stop(self, timeout: float, keep_cds: bool) -> None:
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                _say(f"Kafka (pid {pid}) did not stop within {timeout:.0f}s; killing it")
                keep_cds = False
                self._signal(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10.0):
                    raise KafkaError(f"could not kill Kafka pid {pid}")
        # Keep a class-data archive only from a JVM we saw exit through a clean SIGTERM.
        self._finish_cds_dump(keep=keep_cds and pid is not None)
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=1)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        send_signal(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        return wait_gone(lambda: self._is_our_java(pid), timeout)

    # --------------------------------------------------------- conveniences

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def running(self, timeout: float = 60.0) -> Iterator[LocalKafka]:
        """Like ``with kafka:`` but with a start timeout."""
        self.start(timeout)
        try:
            yield self
        finally:
            self.stop()
