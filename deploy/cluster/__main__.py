"""CLI for the local three-node cluster: ``python -m deploy.cluster start|stop|status|env|stop-node N|start-node N``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from deploy.cluster import DEFAULT_CONTROLLER_PORT, DEFAULT_HOME, DEFAULT_PORT, NODES, LocalCluster
from deploy.kafka.local import KAFKA_VERSION, KafkaError
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster",
        description=f"Run a local {NODES}-node Apache Kafka {KAFKA_VERSION} cluster (KRaft; topics with "
        f"{NODES} replicas, min.insync.replicas=2; the same logins and ACLs as the single broker).",
    )
    parser.add_argument(
        "command", choices=["start", "stop", "status", "env", "stop-node", "start-node"],
        help="start: every node, in the background, waiting until all serve; stop: every node; status: "
        "each node's state; env: print the environment that points a process (make up, a service, the "
        "tests) at the cluster as --user, with the services' passwords; stop-node N / start-node N: one "
        "node (the others keep serving)",
    )
    parser.add_argument("node", nargs="?", type=int, help="stop-node/start-node: the node (1-3)")
    parser.add_argument("--user", default=ADMIN, choices=sorted(LOCAL_PASSWORDS),
                        help=f"env: the principal to log in as (default {ADMIN})")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"the cluster's directory (default: {DEFAULT_HOME})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"first client port, one per node from there (default {DEFAULT_PORT}; a home keeps the ports it was created with)")
    parser.add_argument("--controller-port", type=int, default=None,
                        help=f"first controller port (default {DEFAULT_CONTROLLER_PORT})")
    parser.add_argument("--heap", default="512m", help="each node's JVM heap (default 512m)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for start (default 120) / stop (default 30)")
    args = parser.parse_args(argv)
    if args.command in ("stop-node", "start-node") and args.node is None:
        parser.error(f"{args.command} needs the node's number, e.g. `{args.command} 2`")

    try:
        cluster = LocalCluster(
            args.home, heap=args.heap,
            ports=None if args.port is None else list(range(args.port, args.port + NODES)),
            controller_ports=None if args.controller_port is None else list(range(args.controller_port, args.controller_port + NODES)),
        )
        if args.command == "start":
            print(f"starting {NODES} Kafka {KAFKA_VERSION} nodes in {cluster.home}...", file=sys.stderr)
            t0 = time.monotonic()
            cluster.start(timeout=args.timeout or 120.0)
            print(f"ready in {time.monotonic() - t0:.1f}s; clients log in with SASL/SCRAM-SHA-512: "
                  "`python -m deploy.cluster env --user <principal>` prints a login", file=sys.stderr)
            print(cluster.bootstrap_servers)
        elif args.command == "stop":
            t0 = time.monotonic()
            cluster.stop(timeout=args.timeout or 30.0)
            print(f"stopped ({cluster.home}) in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        elif args.command == "stop-node":
            cluster.stop_node(args.node, timeout=args.timeout or 30.0)
            print(f"node {args.node} stopped; the others keep serving", file=sys.stderr)
        elif args.command == "start-node":
            t0 = time.monotonic()
            cluster.start_node(args.node, timeout=args.timeout or 120.0)
            print(f"node {args.node} serving again in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        elif args.command == "env":
            for name, value in cluster.env(args.user).items():
                print(f"export {name}={shlex.quote(value)}")
        else:  # status
            running = 0
            for node in cluster.nodes:
                pid = node.pid()
                running += pid is not None
                state = "stopped" if pid is None else ("ready" if node.is_ready() else "running, not answering yet")
                print(f"node {node.node_id}: {state}{f', pid {pid}' if pid else ''}, 127.0.0.1:{node.port}, logs {node.server_log}")
            return 0 if running == NODES else 1
    except (KafkaError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
