# The two commands: `make up` runs the whole platform, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: up test setup kafka kafka-stop postgres bench asyncapi clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

up: setup
	@$(PY) -m deploy.up

# PostgreSQL: the local Debian server, unless DATABASE_URL already points at one.
test: setup $(if $(DATABASE_URL),,postgres)
	@$(PY) -m pytest $(PYTEST_ARGS)

kafka: setup
	@$(PY) -m deploy.kafka start

kafka-stop: setup
	@$(PY) -m deploy.kafka stop

postgres:
	@bash deploy/postgres/ensure.sh

bench: setup
	@$(PY) -m bench $(ARGS)

asyncapi: setup
	@$(PY) -m contracts.asyncapi > contracts/asyncapi.json
	@echo "wrote contracts/asyncapi.json"

clean:
	rm -rf .local/data .local/logs
