"""Offline validation of the deployment files.

Each kustomize overlay is built with a pinned kustomize (fetched once per checkout with `go install`
into .local/, like the Kafka jars) and every resource of the output is checked: the built-in
kinds against Kubernetes' own schemas (kubernetes-validate ships them, strict: unknown fields are
errors), the Strimzi resources against deploy/k8s/strimzi.schema.json (our own schema: their shape
and the platform's rules, e.g. 3 replicas, min.insync.replicas 2, SCRAM logins) with
check-jsonschema. deploy/compose.yaml is checked against the Compose Specification's schema that
check-jsonschema ships. Nothing is downloaded once kustomize is there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from deploy.jvm import fetch_once, fetched, say
from deploy.kafka.local import LOCAL_DIR
from deploy.manifests import COMPOSE, K8S, stale

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.2"  # the newest that Go 1.26 builds (v5.8.3 needs Go 1.27)
KUSTOMIZE_DIR = LOCAL_DIR / f"kustomize-{KUSTOMIZE_VERSION}"
OVERLAYS = ("local", "production")
# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")
STRIMZI_SCHEMA = K8S / "strimzi.schema.json"
STRIMZI_API = "kafka.strimzi.io/"


class ManifestError(RuntimeError):
    """kustomize could not be fetched or could not build an overlay."""


def kustomize() -> Path:
    """The pinned kustomize binary, built once per checkout with `go install` (about 4 minutes the
    first time on this machine, seconds once Go's module cache has it)."""
    fingerprint = f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}\n"
    if not fetched(KUSTOMIZE_DIR, fingerprint):
        say(f"building kustomize {KUSTOMIZE_VERSION} with `go install` into {KUSTOMIZE_DIR} (first run only; minutes)...")
        fetch_once(KUSTOMIZE_DIR, fingerprint, _go_install)
    return KUSTOMIZE_DIR / "kustomize"


def _go_install(target: Path) -> None:
    retry = "python -m deploy.manifests fetch"
    go = shutil.which("go")
    if go is None:
        raise ManifestError(
            f"'go' is not on PATH; kustomize {KUSTOMIZE_VERSION} is built from source with it once per checkout. "
            f"Install Go 1.26 or newer (https://go.dev/dl, or your distribution's package) and rerun: {retry}"
        )
    env = {**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"}
    try:
        done = subprocess.run([go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"], env=env, capture_output=True,
                              text=True, timeout=1800, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ManifestError(f"`go install` of kustomize took more than 30 minutes; check access to the Go module proxy "
                            f"(GOPROXY, default proxy.golang.org) and rerun: {retry}") from None
    if done.returncode != 0 or not (target / "kustomize").is_file():
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ManifestError(
            f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` failed (exit {done.returncode}). It needs Go 1.26 or "
            f"newer (`go version`; with GOTOOLCHAIN=auto an older Go fetches the one it needs) and the Go module proxy "
            f"(GOPROXY). Then rerun: {retry}\n--- go output (tail) ---\n{output}"
        )


def build(overlay: str) -> list[dict[str, Any]]:
    """The resources of deploy/k8s/overlays/<overlay>, as `kustomize build` makes them."""
    binary = kustomize()
    done = subprocess.run([str(binary), "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ManifestError(f"kustomize could not build overlay {overlay!r}:\n{done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def problems_of(overlay: str, resources: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the built resources of an overlay (nothing: an empty list)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    problems, custom = [], []
    for resource in resources:
        what = f"{overlay}: {resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        if str(resource.get("apiVersion", "")).startswith(STRIMZI_API):
            custom.append(resource)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                location = ".".join(str(part) for part in err.path) or "(top)"
                problems.append(f"{what}: {location}: {err.message} (Kubernetes {version})")
            except SchemaNotFoundError:
                problems.append(f"{what}: Kubernetes {version} has no kind {resource.get('kind')} in {resource.get('apiVersion')}")
    if custom:
        with tempfile.TemporaryDirectory(prefix="icc-strimzi-") as tmp:
            files = []
            for resource in custom:
                path = Path(tmp) / f"{overlay}-{resource['kind']}-{resource['metadata']['name']}.json"
                path.write_text(json.dumps(resource))
                files.append(path)
            problems += check_jsonschema(files, "--schemafile", str(STRIMZI_SCHEMA))
    return problems


def check_jsonschema(files: list[Path], *schema: str) -> list[str]:
    """check-jsonschema's complaints about `files` (none: an empty list)."""
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", *schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    return [] if done.returncode == 0 else [(done.stdout + done.stderr).strip()]


def compose_problems() -> list[str]:
    return check_jsonschema([COMPOSE], "--builtin-schema", "vendor.compose-spec")


def validate() -> list[str]:
    """Every problem of the deployment files: stale generated files, each overlay, the compose file."""
    problems = [f"{path} is not what the code makes now: run `python -m deploy.manifests generate`" for path in stale()]
    for overlay in OVERLAYS:
        try:
            problems += problems_of(overlay, build(overlay))
        except ManifestError as err:
            problems.append(str(err))
    return problems + compose_problems()
