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
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install "bubblewrap (bwrap)" bubblewrap
echo "bubblewrap: $(bwrap --version)"
