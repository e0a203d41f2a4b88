#!/usr/bin/env bash
# Installs Chromium (Debian package `chromium`, /usr/bin/chromium) for the dashboard's browser
# tests in test/all/dashboard-browser.test.ts, which drive it with playwright-core (no browser
# download of its own). Needs root and apt-get (CI runs as root on Debian); elsewhere it says
# what to do and fails.
# Usage: bash scripts/install-chromium.sh
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
  echo "Chromium (/usr/bin/chromium) is missing: install it as root, e.g. apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine: update only when needed.
if ! apt-get install -y --no-install-recommends chromium fonts-dejavu-core; then
  apt-get update
  apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
