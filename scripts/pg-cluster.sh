#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the Postgres backend's tests and benchmark: its own data
# folder in a temp dir, listening on 127.0.0.1 only, on a free port, with trust auth (loopback
# only, nothing else can reach it). As root (CI) the server runs as the `postgres` user, since
# PostgreSQL refuses to run as root; otherwise as the current user.
#
#   eval "$(bash scripts/pg-cluster.sh start)"   # exports AGENT_CRON_PG_DIR and AGENT_CRON_TEST_DATABASE_URL
#   bash scripts/pg-cluster.sh down "$AGENT_CRON_PG_DIR"   # stops the server, keeps its data
#   bash scripts/pg-cluster.sh up "$AGENT_CRON_PG_DIR"     # starts it again, same port
#   bash scripts/pg-cluster.sh stop "$AGENT_CRON_PG_DIR"   # stops it and removes the folder
set -euo pipefail

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "PostgreSQL's server is not installed; run: bash scripts/install-postgres.sh" >&2
  exit 1
fi

# Runs a server program as the user that owns the cluster.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups --reset-env -- "$@"
  else
    "$@"
  fi
}

free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

server_up() {
  local dir="$1" port
  port="$(cat "$dir/port")"
  # Unix sockets go in the cluster's own folder (/var/run/postgresql may not exist or be writable).
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
}

server_down() {
  local dir="$1"
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

cmd="${1:-}"
case "$cmd" in
  start)
    dir="$(mktemp -d "${TMPDIR:-/tmp}/agent-cron-pg.XXXXXX")"
    chmod 755 "$dir"
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$dir"
    free_port > "$dir/port"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    server_up "$dir"
    port="$(cat "$dir/port")"
    echo "export AGENT_CRON_PG_DIR='$dir'"
    echo "export AGENT_CRON_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres'"
    ;;
  up)
    server_up "${2:?usage: pg-cluster.sh up DIR}"
    ;;
  down)
    server_down "${2:?usage: pg-cluster.sh down DIR}"
    ;;
  stop)
    dir="${2:?usage: pg-cluster.sh stop DIR}"
    [[ -f "$dir/port" ]] || { echo "$dir is not a cluster made by pg-cluster.sh" >&2; exit 1; }
    server_down "$dir" || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg-cluster.sh start | up DIR | down DIR | stop DIR" >&2
    exit 2
    ;;
esac
