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
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install "Chromium (/usr/bin/chromium)" chromium fonts-dejavu-core
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
