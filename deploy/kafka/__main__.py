"""CLI for the local Kafka broker: ``python -m deploy.kafka fetch|start|stop|status|env|grant``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from contracts.topics import SERVICES
from deploy.kafka.local import DEFAULT_HOME, KAFKA_VERSION, KafkaError, LocalKafka
from deploy.kafka.principals import ADMIN, LOCAL_PASSWORDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.kafka",
        description=f"Run a local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft).",
    )
    parser.add_argument(
        "command", choices=["fetch", "start", "stop", "status", "env", "grant"],
        help="fetch: download the jars; start: run in the background and wait until "
        "ready; stop: shut down; status: show whether it is running; env: print the "
        "environment that logs a process in to the local broker as --user; grant: create "
        "the services' ACLs for --prefix on the cluster of KAFKA_BOOTSTRAP_SERVERS (as the "
        "KAFKA_SASL_USERNAME given, a super user), else on the local broker as admin",
    )
    parser.add_argument("--user", default=ADMIN, choices=sorted(LOCAL_PASSWORDS),
                        help=f"env: the principal to log in as (default {ADMIN})")
    parser.add_argument("--prefix", default="", help="grant: the KAFKA_TOPIC_PREFIX of the topics and groups")
    parser.add_argument("--service", action="append", choices=SERVICES,
                        help="grant: only this service's rules (repeatable; default: every service)")
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
                  f"logs in {kafka.logs_dir}); clients log in with SASL/SCRAM-SHA-512: "
                  f"`python -m deploy.kafka env --user <principal>` prints a login", file=sys.stderr)
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
        elif args.command == "env":
            for name, value in kafka.connection(args.user).env().items():  # empty: unset
                print(f"export {name}={shlex.quote(value)}")
        elif args.command == "grant":
            from deploy.kafka.acls import grant
            from services.common.settings import KafkaSettings

            admin = KafkaSettings().kafka_connection() if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else kafka.connection()
            for rule in grant(admin, args.prefix, args.service or SERVICES):
                print(f"User:{rule.principal} may {'/'.join(rule.operations)} ({rule.pattern}) "
                      f"{', '.join([*rule.topics, *(f'group {g}' for g in rule.groups)])}")
        else:  # status
            pid = kafka.pid()
            if pid is None:
                print(f"stopped ({kafka.home})")
                return 1
            state = "ready" if kafka.is_ready() else "running, not answering yet"
            print(f"{state}: pid {pid}, bootstrap {kafka.bootstrap_servers}, "
                  f"logs {kafka.server_log}")
    except ValidationError as exc:  # an incomplete KAFKA_* login in the environment
        print("error: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()), file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
