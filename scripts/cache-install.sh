#!/usr/bin/env bash
# Shared by the install-*.sh scripts: installs npm packages into .cache/<name>/ once.
# cache_install NAME CHECK PACKAGE... — skips when .cache/NAME holds exactly these packages
# and `CHECK` (a command run in that folder's node_modules/.bin) succeeds; `--force` as
# FORCE=1 reinstalls. A half-finished install never passes for a complete one.
cache_install() {
  local name="$1" check="$2"
  shift 2
  local root dir stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/.cache/$name"
  stamp="$dir/installed-versions"
  want="$*"
  if [[ "${FORCE:-0}" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && (cd "$dir/node_modules/.bin" && eval "$check") >/dev/null 2>&1; then
    echo "already installed in $dir ($want)"
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  # A package.json of its own keeps npm from walking up into the project's.
  echo "{\"name\":\"$name\",\"private\":true}" > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$@"
  (cd "$dir/node_modules/.bin" && eval "$check")
  echo "$want" > "$stamp"
  echo "installed in $dir: $want"
}
