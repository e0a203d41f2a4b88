#!/usr/bin/env bash
# Installs bubblewrap (`bwrap`, Debian package `bubblewrap`) for the sandbox tests in
# test/all/sandbox.test.ts, when it is not already on PATH. Needs root and apt-get (CI runs
# as root on Debian); elsewhere it says what to do and fails.
# Usage: bash scripts/install-bubblewrap.sh
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  echo "bubblewrap: $(bwrap --version)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
  echo "bubblewrap (bwrap) is missing: install it as root, e.g. apt-get install -y bubblewrap" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: update only when needed.
if ! apt-get install -y --no-install-recommends bubblewrap; then
  apt-get update
  apt-get install -y --no-install-recommends bubblewrap
fi
echo "bubblewrap: $(bwrap --version)"
