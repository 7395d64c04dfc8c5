"""CLI for the local Kafka broker: ``python -m deploy.kafka fetch|start|stop|status``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deploy.kafka.local import DEFAULT_HOME, KAFKA_VERSION, KafkaError, LocalKafka


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.kafka",
        description=f"Run a local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft).",
    )
    parser.add_argument(
        "command", choices=["fetch", "start", "stop", "status"],
        help="fetch: download the jars; start: run in the background and wait until "
        "ready; stop: shut down; status: show whether it is running",
    )
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"data/log/config directory (default: {DEFAULT_HOME})")
    parser.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    parser.add_argument("--controller-port", type=int, default=9093,
                        help="KRaft controller port (default 9093)")
    parser.add_argument("--heap", default="512m", help="JVM heap, e.g. 512m or 1g (default 512m)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for start (default 60) / stop (default 30)")
    args = parser.parse_args(argv)

    kafka = LocalKafka(home=args.home, port=args.port,
                       controller_port=args.controller_port, heap=args.heap)
    try:
        if args.command == "fetch":
            libs = kafka.fetch()
            print(f"Kafka {KAFKA_VERSION} jars ready in {libs}", file=sys.stderr)
        elif args.command == "start":
            pid = kafka.pid()
            if pid is not None:
                print(f"already running (pid {pid}), checking it answers...", file=sys.stderr)
            else:
                print(f"starting Kafka {KAFKA_VERSION} in {kafka.home}...", file=sys.stderr)
            t0 = time.monotonic()
            kafka.start(timeout=args.timeout or 60.0)
            print(f"ready in {time.monotonic() - t0:.1f}s (pid {kafka.pid()}, "
                  f"logs in {kafka.logs_dir})", file=sys.stderr)
            print(kafka.bootstrap_servers)
        elif args.command == "stop":
            pid = kafka.pid()
            if pid is None:
                kafka.stop()  # clears a stale pid file
                print(f"not running ({kafka.home})", file=sys.stderr)
            else:
                t0 = time.monotonic()
                kafka.stop(timeout=args.timeout or 30.0)
                print(f"stopped pid {pid} in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        else:  # status
            pid = kafka.pid()
            if pid is None:
                print(f"stopped ({kafka.home})")
                return 1
            state = "ready" if kafka.is_ready() else "running, not answering yet"
            print(f"{state}: pid {pid}, bootstrap {kafka.bootstrap_servers}, "
                  f"logs {kafka.server_log}")
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
