"""CLI: ``python -m deploy.keycloak fetch|start|stop|status|add-user``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from uuid import UUID

from deploy.keycloak.admin import ROLES, AdminError, KeycloakAdmin
from deploy.keycloak.local import (ADMIN_PASSWORD, ADMIN_USERNAME, DEFAULT_HOME, DEFAULT_PORT, KEYCLOAK_VERSION,
                                   KeycloakError, LocalKeycloak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.keycloak",
                                     description=f"The local Keycloak {KEYCLOAK_VERSION} (realm icc) and its people.")
    commands = parser.add_subparsers(dest="command", required=True)
    local: dict[str, argparse.ArgumentParser] = {}
    for name, text in [("fetch", "download and unpack Keycloak (once per checkout)"),
                       ("start", "run it in the background and wait until the realm answers"),
                       ("stop", "shut it down"), ("status", "say whether it runs")]:
        local[name] = command = commands.add_parser(name, help=text)
        command.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"data/logs directory (default {DEFAULT_HOME})")
        command.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT}; health on port+1)")
        command.add_argument("--timeout", type=float, default=None, help="seconds to wait for start (300) / stop (30)")

    add = commands.add_parser("add-user", help="create or update a person of the icc realm (idempotent)")
    add.add_argument("--username", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--role", action="append", required=True, choices=ROLES,
                     help="a platform role; repeat for several (the person ends with exactly these)")
    add.add_argument("--city-id", type=UUID, default=None, help="the member city (delegates, city coordinators)")
    add.add_argument("--password", default=None, help="default: the user name + '-pass'")
    add.add_argument("--first-name", default=None)
    add.add_argument("--last-name", default=None)
    add.add_argument("--url", default=os.environ.get("KEYCLOAK_URL") or f"http://127.0.0.1:{DEFAULT_PORT}",
                     help="Keycloak's base URL (default: KEYCLOAK_URL, else the local one)")
    args = parser.parse_args(argv)

    try:
        if args.command == "add-user":
            if {"delegate", "city_coordinator"} & set(args.role) and args.city_id is None:
                parser.error("delegates and city coordinators need --city-id")
            admin_user = os.environ.get("KEYCLOAK_ADMIN", ADMIN_USERNAME)
            admin_password = os.environ.get("KEYCLOAK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            with KeycloakAdmin(args.url, admin_user, admin_password) as admin:
                user = admin.upsert_user(args.username, args.email, args.role, city_id=args.city_id,
                                         password=args.password, first_name=args.first_name, last_name=args.last_name)
            city = f", city {user.city_id}" if user.city_id else ""
            print(f"{user.username} ({user.email}): roles {', '.join(user.roles)}{city}; id {user.id}", file=sys.stderr)
            return 0
        keycloak = LocalKeycloak(home=args.home, port=args.port)
        if args.command == "fetch":
            print(f"Keycloak {KEYCLOAK_VERSION} ready in {keycloak.fetch()}", file=sys.stderr)
        elif args.command == "start":
            if keycloak.pid() is not None:
                print(f"already running (pid {keycloak.pid()}), checking it answers...", file=sys.stderr)
            else:
                print(f"starting Keycloak {KEYCLOAK_VERSION} on {keycloak.url} (logs in {keycloak.logs_dir})...",
                      file=sys.stderr)
            started = time.monotonic()
            keycloak.start(timeout=args.timeout or 300.0)
            print(f"ready in {time.monotonic() - started:.1f}s (pid {keycloak.pid()}); issuer {keycloak.issuer}; "
                  f"admin console {keycloak.url}/admin (admin/admin, local only)", file=sys.stderr)
            print(keycloak.url)
        elif args.command == "stop":
            pid = keycloak.pid()
            keycloak.stop(timeout=args.timeout or 30.0)
            print(f"stopped pid {pid}" if pid else f"not running ({keycloak.home})", file=sys.stderr)
        else:
            pid = keycloak.pid()
            if pid is None:
                print(f"stopped ({keycloak.home})")
                return 1
            print(f"{'ready' if keycloak.is_ready() else 'starting'}: pid {pid}, {keycloak.url}, logs {keycloak.logs_dir}")
    except (KeycloakError, AdminError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
