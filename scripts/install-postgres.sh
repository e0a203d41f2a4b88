#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (package postgresql-15 on bookworm) for the Postgres
# backend's tests (test/all/postgres*.test.ts) and benchmark, when no server is installed.
# Needs root and apt-get (CI runs as root on Debian); elsewhere it says what to do and fails.
# Usage: bash scripts/install-postgres.sh
set -euo pipefail
found() { ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if found; then
  echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
  echo "PostgreSQL is missing: install its server as root, e.g. apt-get install -y postgresql-15 (or set AGENT_CRON_TEST_DATABASE_URL to a database the tests may use)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Only the binaries are needed: the tests make their own cluster (scripts/pg-cluster.sh), so the
# package's own cluster is not created (create_main_cluster=false) and nothing listens on 5432.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/agent-cron-tests.conf
# The package lists may be missing or stale on a fresh machine: update only when needed.
if ! apt-get install -y --no-install-recommends postgresql-15; then
  apt-get update
  apt-get install -y --no-install-recommends postgresql-15
fi
found
echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
