"""What the project's own JVM servers (Kafka, Keycloak) share: a once-per-checkout fetch from Maven
Central, log tails, port probes, process signals. Each server's module keeps its own start logic."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

MARKER_NAME = ".complete"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetched(target: Path, fingerprint: str) -> bool:
    """Whether `target` holds a complete fetch of exactly `fingerprint`."""
    try:
        return (target / MARKER_NAME).read_text() == fingerprint
    except OSError:
        return False


def fetch_once(target: Path, fingerprint: str, fill: Callable[[Path], None]) -> Path:
    """Make `target` a complete copy of what `fill(tmp)` writes into an empty `tmp`, once.

    The marker (holding `fingerprint`) is written only after `fill` returned, so an interrupted
    fetch is redone on the next call; a changed fingerprint (another version) fetches again.
    Concurrent callers (several test processes) serialise on a lock file."""
    if fetched(target, fingerprint):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / (target.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fetched(target, fingerprint):  # someone else fetched while we waited
            return target
        if target.exists():
            shutil.rmtree(target)  # half-finished or stale: start clean
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            fill(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(target)
        (target / MARKER_NAME).write_text(fingerprint)
    return target


def run_maven(args: list[str], *, what: str, retry: str, error: type[Exception], cwd: Path, timeout: float = 900) -> None:
    """Run Maven quietly (batch mode); on failure raise `error` saying what to check and `retry`."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(
            f"Maven ('mvn') is not on PATH; it is needed once to fetch {what} from Maven Central. "
            f"Install Maven 3.x (e.g. apt-get install maven) and rerun: {retry}"
        )
    try:
        res = subprocess.run(
            [mvn, "-q", "-B", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            cwd=str(cwd), timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise error(
            f"Maven took more than {timeout / 60:.0f} minutes to fetch {what}; check network access to "
            f"Maven Central (repo.maven.apache.org) and rerun: {retry}"
        ) from None
    if res.returncode != 0:
        out = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
        raise error(
            f"Maven failed to fetch {what} (exit {res.returncode}). Check that 'mvn' works and Maven "
            "Central (repo.maven.apache.org) is reachable (proxy settings in ~/.m2/settings.xml), then "
            f"rerun: {retry}\n--- mvn output (tail) ---\n{out}"
        )


def java_home_java() -> str | None:
    """The `java` of JAVA_HOME when that is set and has one, else the one on PATH (or None)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def send_signal(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Signal a process (or its whole process group); a process already gone is not an error."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def wait_gone(alive: Callable[[], bool], timeout: float) -> bool:
    """Poll `alive()` until it is False (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    return True


def process_alive(pid: int, *markers: bytes, child: subprocess.Popen | None = None) -> bool:
    """`pid` is alive (not a zombie) and its command line holds every one of `markers` (so a pid
    file left behind after a reboot, now naming someone else's process, is not mistaken for ours)."""
    if child is not None and child.pid == pid:
        # Our own child, not yet reaped: it cannot be someone else's reused pid, so its command
        # line need not be checked (reading /proc during the JVM's start once said "not ours" while
        # it ran, and CI judged a starting Keycloak and a starting Kafka node gone).
        return child.poll() is None
    else:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # reap our own dead child
                return False
        except (ChildProcessError, OSError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust kill(0)
    return all(marker in cmdline for marker in markers)
