#!/usr/bin/env bash
# npm run test:all: what `npm test` cannot do with Node and `npm install` alone.
#  1. installs the pinned agent CLIs, Node 22 and the MCP Inspector (into .cache/, once),
#     bubblewrap (apt-get, when bwrap is missing), libfaketime (the clock-step test) and strace
#     (the fsync test);
#  2. runs the tests that need them (test/contract/: real Claude Code and Codex;
#     test/all/: the Inspector's --strict schema check, the bwrap sandbox);
#  3. runs the postgres backend's tests on Node 22 (pg-boss 12 needs it) against a throwaway
#     PostgreSQL cluster (Debian's postgresql-15, started on loopback, stopped at the end);
#  4. runs the whole `npm test` suite again on Node 22 (Node 20 is past end of life).
# Nothing is skipped: a missing tool fails the run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-agent-clis.sh
bash scripts/install-node22.sh
bash scripts/install-bubblewrap.sh
bash scripts/install-faketime.sh
bash scripts/install-strace.sh
bash scripts/install-chromium.sh
bash scripts/install-postgres.sh
node22="$root/.cache/node22/node_modules/.bin/node"

# One cluster for the postgres tests (each makes its own databases on it; some stop and start
# the server, hence one test file at a time), gone at exit.
eval "$(bash scripts/pg-cluster.sh start)"
trap 'bash scripts/pg-cluster.sh stop "$AGENT_CRON_PG_DIR"' EXIT

echo "== the Claude Desktop extension: npm run pack:mcpb, its manifest checked by the format's validator"
npm run pack:mcpb
npx mcpb validate build/mcpb/manifest.json
npx mcpb info agent-cron.mcpb
echo "== test:all on $(node --version): real agent CLIs, the Inspector and bubblewrap"
npx vitest run -c vitest.all.config.ts --exclude 'test/all/postgres*'

echo "== the postgres backend on Node $("$node22" --version), against $AGENT_CRON_TEST_DATABASE_URL"
# Every postgres test runs, the chaos test and the 200-job fleet included (each passed 3 runs of
# 3 on a quiet machine on 2026-12-07: 1,332/1,332/1,320 occurrences each with one record under
# 14-16 kills, a Postgres restart and a stop; 6,600 occurrences, records and executions, drained
# 11-29 s after the end). On a machine at load 20-40 they are slow, not wrong: their waits
# (pg-helpers drained()) fail only when nothing finishes for a minute or more.
PATH="$(dirname "$node22"):$PATH" "$node22" node_modules/vitest/vitest.mjs run -c vitest.all.config.ts --no-file-parallelism test/all/postgres

echo "== npm test's suite on Node $("$node22" --version)"
PATH="$(dirname "$node22"):$PATH" "$node22" node_modules/vitest/vitest.mjs run
