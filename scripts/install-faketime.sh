#!/usr/bin/env bash
# Installs libfaketime (Debian package `faketime`) for test/all/clock-step.test.ts, which steps
# a running owner's wall clock with LD_PRELOAD and FAKETIME_TIMESTAMP_FILE. Needs root and
# apt-get (CI runs as root on Debian); elsewhere it says what to do and fails.
# Usage: bash scripts/install-faketime.sh
set -euo pipefail
lib() { ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1; }
if [ -n "$(lib)" ]; then
  echo "libfaketime: $(lib)"
  exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install "libfaketime" faketime
echo "libfaketime: $(lib)"
