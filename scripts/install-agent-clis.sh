#!/usr/bin/env bash
# Installs the pinned agent CLIs that test/contract/ drives into .cache/agent-clis/ (gitignored).
# They are hundreds of MB each, so they are not devDependencies: run this once, then `npm test`.
# Usage: bash scripts/install-agent-clis.sh [--force]
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.169.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/agent-clis"
stamp="$dir/installed-versions"
want="claude-code@$CLAUDE_CODE_VERSION codex@$CODEX_VERSION"

if [[ "${1:-}" != "--force" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && "$dir/node_modules/.bin/claude" --version >/dev/null 2>&1 \
   && "$dir/node_modules/.bin/codex" --version >/dev/null 2>&1; then
  echo "agent CLIs already installed in $dir ($want)"
  exit 0
fi

# Start clean: a half-finished install must not pass for a complete one.
rm -rf "$dir"
mkdir -p "$dir"
# A package.json of its own keeps npm from walking up into the project's.
echo '{"name":"agent-clis","private":true}' > "$dir/package.json"
# The native binaries ship inside per-platform optional packages; Claude Code's postinstall
# copies its binary over a stub, so scripts must run. Claude Code declares Node >= 22 in
# "engines" (npm warns); its native binary does not use Node.
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"

"$dir/node_modules/.bin/claude" --version
"$dir/node_modules/.bin/codex" --version
echo "$want" > "$stamp"
echo "agent CLIs installed in $dir"
