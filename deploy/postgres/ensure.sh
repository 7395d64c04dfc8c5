#!/usr/bin/env bash
# Make sure a local PostgreSQL (Debian's package) runs on 127.0.0.1:5432 with role and database
# "icc" (password "icc"): what `make test` and CI use for the PostgreSQL half of the tests.
# Installs the package when it is missing (needs root, as on CI and the dev machines).
set -euo pipefail

say() { printf 'postgres: %s\n' "$*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is not installed; run 'sudo apt-get install -y postgresql' or set DATABASE_URL to a server"; exit 1
  fi
  say "installing Debian's postgresql package (first run only)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi

cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  say "creating cluster $version main"
  pg_createcluster "$version" main >/dev/null
  cluster="$version main"
fi
# shellcheck disable=SC2086
set -- $cluster
if ! pg_lsclusters --no-header | awk -v v="$1" -v n="$2" '$1==v && $2==n {print $4}' | grep -q online; then
  say "starting cluster $1 $2"
  pg_ctlcluster "$1" "$2" start
fi

as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }

for _ in $(seq 1 60); do
  as_postgres "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
as_postgres "psql -qtAc \"select 1 from pg_roles where rolname='icc'\"" | grep -q 1 ||
  as_postgres "psql -qc \"create role icc login password 'icc'\""
as_postgres "psql -qtAc \"select 1 from pg_database where datname='icc'\"" | grep -q 1 ||
  as_postgres "psql -qc 'create database icc owner icc'"
# the test suite makes a schema per test; CI's throwaway server allows many connections
say "ready at postgresql://icc:icc@127.0.0.1:5432/icc"
