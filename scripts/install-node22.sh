#!/usr/bin/env bash
# Installs a Node 22 binary (the npm registry's `node` package) and the MCP Inspector 2.x
# (which needs Node >= 22.19) into .cache/node22/ (gitignored), for `npm run test:all`.
# Usage: bash scripts/install-node22.sh [--force]
set -euo pipefail

NODE_VERSION=22
INSPECTOR_VERSION=2.12.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/node22"
stamp="$dir/installed-versions"
want="node@$NODE_VERSION inspector@$INSPECTOR_VERSION"

if [[ "${1:-}" != "--force" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$dir/node_modules/.bin/node" --version >/dev/null 2>&1; then
  echo "Node 22 and the Inspector already installed in $dir ($want)"
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
echo '{"name":"node22","private":true}' > "$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
"$dir/node_modules/.bin/node" --version
echo "$want" > "$stamp"
echo "Node 22 and the Inspector installed in $dir"
