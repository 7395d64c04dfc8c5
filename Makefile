# The two commands: `make up` runs the whole platform, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: up test setup kustomize manifests kafka kafka-stop cluster cluster-stop keycloak keycloak-stop postgres chromium bench demo asyncapi clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (log: .local/pip-install.log) ..."
	@mkdir -p .local
	@( $(PY) -m pip install --upgrade pip && $(PY) -m pip install -e '.[dev]' ) > .local/pip-install.log 2>&1 \
		|| { tail -30 .local/pip-install.log; echo "pip install failed: see .local/pip-install.log"; exit 1; }
	@touch $@

setup: $(VENV)/.installed

up: setup
	@$(PY) -m deploy.up

# PostgreSQL: the local Debian server, unless DATABASE_URL already points at one.
test: setup chromium kustomize $(if $(DATABASE_URL),,postgres)
	@$(PY) -m pytest $(PYTEST_ARGS)

# The pinned kustomize the deployment tests build the overlays with: `go install`, once per checkout.
kustomize: setup
	@$(PY) -m deploy.manifests fetch >/dev/null

# After changing topics, ACLs, the services or the realm: rewrite the generated deployment files, then check them all.
manifests: setup
	@$(PY) -m deploy.manifests generate
	@$(PY) -m deploy.manifests validate

kafka: setup
	@$(PY) -m deploy.kafka start

kafka-stop: setup
	@$(PY) -m deploy.kafka stop

# Three Kafka nodes (127.0.0.1:9192-9194, data in .local/cluster); `python -m deploy.cluster --help`.
cluster: setup
	@$(PY) -m deploy.cluster start

cluster-stop: setup
	@$(PY) -m deploy.cluster stop

# The identity provider (Keycloak on 127.0.0.1:8180, realm icc), unless KEYCLOAK_URL names one.
keycloak: setup
	@$(if $(KEYCLOAK_URL),echo "KEYCLOAK_URL=$(KEYCLOAK_URL): using that provider",$(PY) -m deploy.keycloak start)

keycloak-stop: setup
	@$(PY) -m deploy.keycloak stop

postgres:
	@bash deploy/postgres/ensure.sh

# Debian's chromium for the dashboard's browser test (Playwright drives it; it never downloads one).
chromium:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium (first run only)..."; \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }

# While `make up` runs (in another terminal): a network year through the public APIs.
demo: setup
	@$(PY) -m deploy.demo $(ARGS)

bench: setup
	@$(PY) -m bench $(ARGS)

asyncapi: setup
	@$(PY) -m contracts.asyncapi > contracts/asyncapi.json
	@echo "wrote contracts/asyncapi.json"

clean:
	rm -rf .local/data .local/logs
