"""`make up`: the whole platform on this machine — Kafka and Keycloak (side by side), the local mail
capture server (deploy/mail), then the five services and the portal (the pages people use) — until Ctrl-C.

Uses the project's own Kafka unless KAFKA_BOOTSTRAP_SERVERS names a cluster, the project's own
Keycloak unless KEYCLOAK_URL names one, and each service's embedded SQLite file
(.local/data/<service>.db) unless DATABASE_URL names a PostgreSQL server.
Each service logs in to Kafka as its own principal: on the project's broker with the local
passwords (deploy/kafka/principals.py), on another secured cluster with the KAFKA_SECURITY_PROTOCOL
/ KAFKA_SASL_MECHANISM of the environment and the password in <SERVICE>_KAFKA_SASL_PASSWORD.
Service logs (JSON lines) go to .local/logs/<service>.log."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.kafka.local import LocalKafka
from deploy.keycloak.local import ADMIN_PASSWORD, ADMIN_USERNAME, REALM_FILE, LocalKeycloak
from deploy.mail import MAILDIR, PORT as MAIL_PORT
from services.common.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".local" / "logs"
SERVICES = {"membership": 8001, "events": 8002, "travel": 8003, "finance": 8004, "notifications": 8005}
PORTAL_PORT = 8000


def say(message: str) -> None:
    print(f"[up] {message}", file=sys.stderr, flush=True)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False


def login(kafka: LocalKafka | None, name: str) -> dict[str, str]:
    """The service logs in as itself: on the project's broker with its local password; on another
    cluster with the environment's protocol and <SERVICE>_KAFKA_SASL_PASSWORD (the service checks it)."""
    if kafka is not None:
        return kafka.connection(name).env()
    return {"KAFKA_SASL_USERNAME": "", "KAFKA_SASL_PASSWORD": os.environ.get(f"{name.upper()}_KAFKA_SASL_PASSWORD", "")}


def demo_users() -> list[str]:
    """The realm file's people: name, password, role."""
    realm = json.loads(REALM_FILE.read_text())
    return [
        f"{user['username']:<12} {user['credentials'][0]['value']:<17} {', '.join(user['realmRoles'])}"
        for user in realm["users"] if user.get("credentials")
    ]


def main() -> int:
    kafka: LocalKafka | None = None
    keycloak: LocalKeycloak | None = None
    keycloak_started_here = False
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = LocalKafka()
        say(f"starting Kafka on {kafka.bootstrap_servers} (first run fetches it from Maven Central)...")
    if not os.environ.get("KEYCLOAK_URL"):
        keycloak = LocalKeycloak()
        keycloak_started_here = keycloak.pid() is None
        if keycloak_started_here:
            say(f"starting Keycloak on {keycloak.url} (the first run fetches and builds it: a few minutes)...")
        else:
            say(f"using the Keycloak already running on {keycloak.url}")
    # Two JVMs that each take seconds to start: side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        starting = [pool.submit(server.start) for server in (kafka, keycloak) if server is not None]
        try:
            for future in starting:
                future.result()
        except Exception as err:
            say(f"{err}")
            if kafka is not None:
                kafka.stop()
            if keycloak is not None and keycloak_started_here:
                keycloak.stop()
            return 1
    cluster = KafkaSettings() if kafka is None else None  # a cluster of the environment's
    keycloak_url = os.environ.get("KEYCLOAK_URL") or keycloak.url

    ports = {name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in SERVICES.items()}
    LOGS.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    # Mail goes nowhere but to .local/mail/ (notifications sends to 127.0.0.1:8025 by default).
    mail_log = (LOGS / "mail.log").open("ab")
    mail = subprocess.Popen([sys.executable, "-m", "deploy.mail", "serve", "--port", str(MAIL_PORT)], cwd=ROOT,
                            stdout=mail_log, stderr=mail_log, start_new_session=True)
    say(f"started the mail capture server (pid {mail.pid}, 127.0.0.1:{MAIL_PORT}, mails in {MAILDIR})")
    # Notifications finds a city's coordinators in the project's Keycloak (its admin API).
    directory = {"DIRECTORY_URL": keycloak_url, "DIRECTORY_USERNAME": ADMIN_USERNAME, "DIRECTORY_PASSWORD": ADMIN_PASSWORD} if keycloak else {}
    for name, port in ports.items():
        log = (LOGS / f"{name}.log").open("ab")
        env = {**os.environ, **login(kafka, name), "HTTP_PORT": str(port), **(directory if name == "notifications" else {})}
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        say(f"started {name} (pid {processes[name].pid}, log {log.name})")
    # The portal: no broker, no database; it calls the services as the signed-in person.
    portal_port = int(os.environ.get("PORTAL_PORT", PORTAL_PORT))
    portal_env = {**os.environ, "HTTP_PORT": str(portal_port), "DASHBOARD_URL": f"http://127.0.0.1:{ports['finance']}/dashboard",
                  **{f"{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()}}
    log = (LOGS / "portal.log").open("ab")
    processes["portal"] = subprocess.Popen([sys.executable, "-m", "services.portal"], cwd=ROOT, env=portal_env,
                                           stdout=log, stderr=log, start_new_session=True)
    say(f"started portal (pid {processes['portal'].pid}, log {log.name})")
    ports_to_wait = {**ports, "portal": portal_port}

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        deadline = time.monotonic() + 90
        waiting = dict(ports_to_wait)
        while waiting and not stopping and time.monotonic() < deadline:
            for name, port in list(waiting.items()):
                if processes[name].poll() is not None:
                    say(f"{name} exited with code {processes[name].returncode}; see {LOGS / (name + '.log')}")
                    return 1
                if ready(port):
                    del waiting[name]
            time.sleep(0.2)
        if waiting and not stopping:
            say(f"not ready after 90s: {', '.join(waiting)}; see the logs in {LOGS}")
            return 1
        if not stopping:
            print("\nICC platform is up:", file=sys.stderr)
            print(f"  portal      http://127.0.0.1:{portal_port}/   (the pages: sign in as one of the people below)", file=sys.stderr)
            for name, port in ports.items():
                print(f"  {name:<11} http://127.0.0.1:{port}/docs", file=sys.stderr)
            print(f"  dashboard   http://127.0.0.1:{ports['finance']}/dashboard", file=sys.stderr)
            if kafka is not None:
                where, how = kafka.bootstrap_servers, "SASL_PLAINTEXT, SCRAM-SHA-512, each service as itself"
            else:
                where, how = cluster.kafka_bootstrap_servers, cluster.kafka_security_protocol
            print(f"  kafka       {where} ({how})", file=sys.stderr)
            print(f"  mail        127.0.0.1:{MAIL_PORT}, every message in {MAILDIR}/*.eml; list them: python -m deploy.mail list",
                  file=sys.stderr)
            print(f"  keycloak    {keycloak_url}  (realm icc; admin console {keycloak_url}/admin)", file=sys.stderr)
            if keycloak is not None:
                print("  sign in as  " + "\n              ".join(demo_users()), file=sys.stderr)
            print(f"  logs        {LOGS}/<service>.log\nPress Ctrl-C to stop everything.\n", file=sys.stderr, flush=True)
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}; see {LOGS / (name + '.log')}; stopping")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        say("stopping services...")
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in 15s; killing it")
                process.kill()
        mail.terminate()
        mail.wait(timeout=15)
        if kafka is not None:
            say("stopping Kafka...")
            kafka.stop()
        if keycloak is not None and keycloak_started_here:
            say("stopping Keycloak...")
            keycloak.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
