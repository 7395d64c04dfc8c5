"""``python -m deploy.manifests generate|validate|build OVERLAY|fetch``: the deployment files (deploy/k8s, deploy/compose.yaml)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from deploy.manifests import DEPLOY, generate
from deploy.manifests.validate import K8S, OVERLAYS, ManifestError, kustomize, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.manifests", description=__doc__.split(": ")[-1])
    parser.add_argument(
        "command", choices=["generate", "validate", "build", "fetch"],
        help="generate: rewrite the files made from the code (topics, users and ACLs, the services' "
        "manifests, the realm copy, the compose ACL script); validate: check them, build every overlay and "
        "validate what it makes, and the compose file (offline once kustomize is fetched); build: print "
        "what an overlay makes (for kubectl apply -f -); fetch: build the pinned kustomize once",
    )
    parser.add_argument("overlay", nargs="?", choices=OVERLAYS, help="build: the overlay")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            written = generate()
            for path in written:
                print(f"wrote {path.relative_to(DEPLOY.parent)}", file=sys.stderr)
            if not written:
                print("every generated file is up to date", file=sys.stderr)
        elif args.command == "fetch":
            print(kustomize())
        elif args.command == "build":
            if args.overlay is None:
                parser.error(f"build needs an overlay: one of {', '.join(OVERLAYS)}")
            sys.stdout.flush()
            return subprocess.run([str(kustomize()), "build", str(K8S / "overlays" / args.overlay)]).returncode
        else:
            problems = validate()
            for problem in problems:
                print(f"- {problem}", file=sys.stderr)
            if problems:
                print(f"{len(problems)} problem(s) in the deployment files", file=sys.stderr)
                return 1
            print(f"deployment files valid: overlays {', '.join(OVERLAYS)} and deploy/compose.yaml", file=sys.stderr)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
