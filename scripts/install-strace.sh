#!/usr/bin/env bash
# Installs strace (Debian package `strace`) for test/all/fsync.test.ts, which watches the built
# server's fsync and fdatasync calls to prove that `durability: "fsync"` syncs a change before
# it is acknowledged (and `"os"` does not). Needs root and apt-get (CI runs as root on Debian);
# elsewhere it says what to do and fails.
# Usage: bash scripts/install-strace.sh
set -euo pipefail
if command -v strace >/dev/null 2>&1; then
  echo "strace: $(strace -V | head -n 1)"
  exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install "strace" strace
echo "strace: $(strace -V | head -n 1)"
