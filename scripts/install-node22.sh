#!/usr/bin/env bash
# Installs a Node 22 binary (the npm registry's `node` package) and the MCP Inspector 2.x
# (which needs Node >= 22.19) into .cache/node22/ (gitignored), for `npm run test:all`.
# Usage: bash scripts/install-node22.sh [--force]
set -euo pipefail
NODE_VERSION=22
INSPECTOR_VERSION=2.12.0
[[ "${1:-}" == "--force" ]] && export FORCE=1
source "$(dirname "${BASH_SOURCE[0]}")/cache-install.sh"
cache_install node22 "./node --version" "node@$NODE_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
