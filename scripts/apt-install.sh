#!/usr/bin/env bash
# apt_install WHAT PACKAGE...: installs Debian packages for test:all, which CI runs as root on
# Debian. Elsewhere (no apt-get, or not root) it says what to install and fails. The package
# lists may be missing or stale on a fresh machine, so they are updated only when an install
# fails without them. Sourced by scripts/install-*.sh.
apt_install() {
  local what="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
    echo "$what is missing: install it as root, e.g. apt-get install -y $*" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@"; then
    apt-get update
    apt-get install -y --no-install-recommends "$@"
  fi
}
