#!/usr/bin/env bash
# Installs the pinned agent CLIs that test/contract/ drives into .cache/agent-clis/ (gitignored).
# They are hundreds of MB each, so they are not devDependencies: `npm run test:all` runs this.
# Usage: bash scripts/install-agent-clis.sh [--force]
set -euo pipefail
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.169.0
[[ "${1:-}" == "--force" ]] && export FORCE=1
source "$(dirname "${BASH_SOURCE[0]}")/cache-install.sh"
# The native binaries ship inside per-platform optional packages; Claude Code's postinstall
# copies its binary over a stub, so scripts must run. Claude Code declares Node >= 22 in
# "engines" (npm warns); its native binary does not use Node.
cache_install agent-clis "./claude --version && ./codex --version" \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"
