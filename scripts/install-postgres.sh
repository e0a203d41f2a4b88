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
# Only the binaries are needed: the tests make their own cluster (scripts/pg-cluster.sh), so the
# package's own cluster is not created (create_main_cluster=false) and nothing listens on 5432.
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/agent-cron-tests.conf
fi
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install "PostgreSQL (or set AGENT_CRON_TEST_DATABASE_URL to a database the tests may use)" postgresql-15
found
echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
