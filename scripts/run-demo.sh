#!/usr/bin/env bash
# `make run`: start wspd in the foreground for a workspace, creating a demo
# workspace (with a few tasks) when none is given or found.
#   scripts/run-demo.sh BUILD_DIR [WORKSPACE_DIR]
set -euo pipefail
build="$(cd "$1" && pwd)"
ws="${2:-}"
wsp="$build/src/wsp"
wspd="$build/src/wspd"

if [ -z "$ws" ]; then
  if [ -n "${WSP_WORKSPACE:-}" ]; then
    ws="$WSP_WORKSPACE"
  else
    ws="$(pwd)/demo"
  fi
fi

fresh=0
if [ ! -d "$ws/.workspace" ] && [ ! -f "$ws/config" ]; then
  mkdir -p "$ws"
  "$wsp" init "$ws"
  fresh=1
fi

if [ "$fresh" = 1 ]; then
  # Seed a few tasks once the daemon answers.
  (
    for _ in $(seq 1 100); do
      [ -f "$ws/.workspace/.wsp/daemon.json" ] && break
      sleep 0.1
    done
    "$wsp" --workspace "$ws" create "Read the README" --priority 1 --label docs >/dev/null
    "$wsp" --workspace "$ws" create "Edit a file in .workspace/tasks/ and watch the task change" --label demo >/dev/null
    "$wsp" --workspace "$ws" create "Sync with a teammate (coming: wsp invite / wsp join)" --priority 3 --label sync >/dev/null
  ) &
fi

echo "workspace: $ws/.workspace" >&2
exec "$wspd" --workspace "$ws"
