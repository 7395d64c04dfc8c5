"""The project's own Keycloak (the identity provider) for the local stack and the tests.

The distribution (`org.keycloak:keycloak-quarkus-dist`) comes from Maven Central and is unpacked
once per checkout into `<repo>/.local/keycloak`; what a running server writes (its H2 database,
the realm to import, logs, pid file) lives in its home, `<repo>/.local/keycloak-home`::

    from deploy.keycloak.local import LocalKeycloak

    keycloak = LocalKeycloak()   # http://127.0.0.1:8180, realm `icc` from deploy/keycloak/realm-icc.json
    keycloak.start()             # returns once the realm answers; a no-op if it already runs
    keycloak.stop()

`start-dev` (H2 file database, local caches) with a fixed issuer (`--hostname`), the realm imported
at start, health on the management port (`port + 1`) and a capped heap. The realm is imported only
into a fresh database, so when `realm-icc.json` changes the local database is recreated (users
added with `add-user` are then gone; `make demo` adds them again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from deploy.jvm import fetch_once, fetched, java_home_java, port_open, process_alive, run_maven, say, send_signal, tail, wait_gone

KEYCLOAK_VERSION = "26.7.3"
REALM = "icc"
ADMIN_USERNAME = ADMIN_PASSWORD = "admin"  # bootstrap admin of the local stack only

_HERE = Path(__file__).resolve().parent
REPO_ROOT = _HERE.parent.parent
LOCAL_DIR = REPO_ROOT / ".local"
DIST_CACHE = LOCAL_DIR / "keycloak"
DEFAULT_HOME = LOCAL_DIR / "keycloak-home"
REALM_FILE = _HERE / "realm-icc.json"
DEFAULT_PORT = 8180


class KeycloakError(RuntimeError):
    """Fetching, starting or stopping the local Keycloak failed."""


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except Exception:
        return 0


class LocalKeycloak:
    """One Keycloak server rooted at `home` (data/, logs/, keycloak.pid, realm.sha256), run from the
    shared unpacked distribution. One server per distribution at a time: its `data` directory is
    a link to the running home's."""

    def __init__(
        self,
        home: Path | str = DEFAULT_HOME,
        port: int = DEFAULT_PORT,
        management_port: int | None = None,
        heap: str = "512m",
        *,
        dist_cache: Path | str = DIST_CACHE,
        realm_file: Path | str = REALM_FILE,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = int(port)
        self.management_port = int(management_port or port + 1)
        self.heap = heap
        self.dist_cache = Path(dist_cache).expanduser().resolve()
        self.realm_file = Path(realm_file).resolve()
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ where things are

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def dist(self) -> Path:
        return self.dist_cache / f"keycloak-{KEYCLOAK_VERSION}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "keycloak.log"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "keycloak.pid"

    @property
    def _realm_stamp(self) -> Path:
        return self.home / "realm.sha256"

    def __repr__(self) -> str:
        return f"LocalKeycloak(home={str(self.home)!r}, port={self.port})"

    # ------------------------------------------------------------------ fetch

    def _fingerprint(self) -> str:
        return f"keycloak-quarkus-dist {KEYCLOAK_VERSION}\n"

    def fetch(self) -> Path:
        """Download and unpack the distribution once per checkout; returns its directory."""
        if not fetched(self.dist_cache, self._fingerprint()):
            say(f"fetching Keycloak {KEYCLOAK_VERSION} from Maven Central (about 180 MB, first run only)...")
            started = time.monotonic()
            fetch_once(self.dist_cache, self._fingerprint(), self._fetch_into)
            say(f"Keycloak {KEYCLOAK_VERSION} unpacked into {self.dist} in {time.monotonic() - started:.0f}s")
        return self.dist

    def _fetch_into(self, tmp: Path) -> None:
        retry = "python -m deploy.keycloak fetch"
        artifact = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:tar.gz"
        run_maven(["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={tmp}"],
                  what=f"Keycloak {KEYCLOAK_VERSION}", retry=retry, error=KeycloakError, cwd=tmp)
        archive = next(tmp.glob("*.tar.gz"), None)
        if archive is None:
            raise KeycloakError(f"Maven finished but left no Keycloak archive in {tmp}; rerun: {retry}")
        res = subprocess.run(["tar", "-xzf", str(archive), "-C", str(tmp)], capture_output=True, text=True)
        archive.unlink()
        if res.returncode != 0 or not (tmp / self.dist.name / "bin" / "kc.sh").exists():
            raise KeycloakError(f"unpacking {archive.name} failed ({res.stderr.strip()[-500:]}); rerun: {retry}")

    # ------------------------------------------------------------------ processes

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        # kc.sh, or the JVM it exec'd after a rebuild: both name the distribution and our port.
        return process_alive(pid, str(self.dist).encode(), f"--http-port={self.port}".encode(), child=self._proc)

    def pid(self) -> int | None:
        """Pid of this home's running server (the kc.sh process group leader), or None."""
        pid = self._read_pid()
        return pid if pid is not None and self._alive(pid) else None

    def _adopt(self) -> int | None:
        """This distribution's server on our port when the pid file does not name it (a check that
        fell in kc.sh's exec of the JVM after its first build once judged it gone; CI then started a
        second one): found by its command line, recorded, so it is waited for and stopped as ours."""
        markers = (str(self.dist).encode(), f"--http-port={self.port}".encode())
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if all(marker in cmdline for marker in markers) and self._alive(int(entry.name)):
                self.pid_file.write_text(f"{entry.name}\n")
                return int(entry.name)
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def is_ready(self) -> bool:
        """Health says UP and the realm serves its discovery document."""
        return (
            _get(f"http://127.0.0.1:{self.management_port}/health/ready") == 200
            and _get(f"{self.issuer}/.well-known/openid-configuration") == 200
        )

    def start(self, timeout: float = 300.0) -> LocalKeycloak:
        """Start the server (fetching it first if needed) and wait until the realm answers.

        A no-op if this home's server already runs. The first start on a checkout also builds
        Keycloak's optimised server image (about a minute); later ones take seconds."""
        if self.pid() is not None or self._adopt() is not None:
            self.wait_ready(timeout)
            return self
        self.pid_file.unlink(missing_ok=True)
        for port in (self.port, self.management_port):
            if port_open(port):
                raise KeycloakError(
                    f"port {port} is already in use by another process; stop it, start on other ports "
                    "(python -m deploy.keycloak start --port N), or set KEYCLOAK_URL to use a provider "
                    "that already runs"
                )
        self.fetch()
        self._prepare_home()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.dist / "bin" / "kc.sh"), "start-dev",
            "--http-host=127.0.0.1", f"--http-port={self.port}",
            # The issuer is this URL whatever host a request names.
            f"--hostname={self.url}",
            f"--http-management-port={self.management_port}", "--health-enabled=true",
            "--import-realm",
            "--log=console,file", f"--log-file={self.server_log}",
        ]
        env = {
            **os.environ,
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.heap}",
            # C1 only: starts faster and takes ~90 MB less memory; a local provider needs no peak speed.
            "JAVA_OPTS_APPEND": f"-XX:TieredStopAtLevel=1 {os.environ.get('JAVA_OPTS_APPEND', '')}".strip(),
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USERNAME,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        java = java_home_java()
        if java is None:
            raise KeycloakError("'java' is not on PATH (Keycloak 26 needs Java 17+); install a JDK 17 or 21 "
                                "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
        env["JAVA"] = java
        with self.console_log.open("ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Keycloak ====\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(self.home),
                env=env, start_new_session=True, close_fds=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._realm_stamp.write_text(self._realm_digest())
        return self

    def _realm_digest(self) -> str:
        return hashlib.sha256(self.realm_file.read_bytes()).hexdigest() + "\n"

    def _prepare_home(self) -> None:
        """The realm to import, a database that matches it, and the distribution's data link."""
        try:
            json.loads(self.realm_file.read_text())
        except (OSError, ValueError) as err:
            raise KeycloakError(f"cannot read the realm file {self.realm_file}: {err}") from None
        try:
            current = self._realm_stamp.read_text() == self._realm_digest()
        except OSError:
            current = False
        if not current:
            # Keycloak imports a realm only into a database that lacks it.
            if (self.data_dir / "h2").exists():
                say(f"{self.realm_file.name} changed: recreating the local Keycloak database "
                    "(users added with add-user are gone)")
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._realm_stamp.unlink(missing_ok=True)
        (self.data_dir / "import").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.realm_file, self.data_dir / "import" / f"realm-{REALM}.json")
        # Keycloak keeps its state under <distribution>/data (no option moves the import folder):
        # point that at this home, so the cached distribution itself stays as fetched.
        link = self.dist / "data"
        if link.is_symlink():
            if link.resolve() == self.data_dir:
                return
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(self.data_dir, target_is_directory=True)

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until ready; raise with the log's tail if the server exits or `timeout` passes."""
        started = time.monotonic()
        deadline = started + timeout
        next_note = started + 20
        while not self.is_ready():
            now = time.monotonic()
            if self.pid() is None and self._adopt() is None:
                code = self._proc.poll() if self._proc is not None else None
                raise KeycloakError(
                    f"Keycloak exited during startup{'' if code is None else f' (exit code {code})'}. "
                    f"Last lines of {self.console_log}:\n{tail(self.console_log, 30)}"
                )
            if now > deadline:
                raise KeycloakError(
                    f"Keycloak at {self.url} not ready after {timeout:.0f}s. Last lines of "
                    f"{self.console_log}:\n{tail(self.console_log, 30)}"
                )
            if now > next_note:  # long work shows progress
                last = tail(self.console_log, 1).strip()[-160:]
                say(f"Keycloak still starting ({now - started:.0f}s): {last}")
                next_note = now + 20
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server's process group (clean shutdown), SIGKILL after `timeout` s. Safe
        when it is not running; always removes the pid file."""
        pid = self.pid() or self._adopt()
        if pid is not None:
            send_signal(pid, signal.SIGTERM, group=True)
            if not wait_gone(lambda: self._alive(pid), timeout):
                say(f"Keycloak (pid {pid}) did not stop within {timeout:.0f}s; killing it")
                send_signal(pid, signal.SIGKILL, group=True)
                if not wait_gone(lambda: self._alive(pid), 10.0):
                    raise KeycloakError(f"could not kill Keycloak pid {pid}")
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalKeycloak:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
