#!/usr/bin/env bash
# `make run`: start wspd in the foreground for a workspace, creating a demo
# workspace (with a few tasks) when none is given or found.
#   scripts/run-demo.sh BUILD_DIR [WORKSPACE_DIR]
set -euo pipefail
build="$1"
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
    cd "$ws"
    "$wsp" create "Read the README" --priority 1 --label docs >/dev/null
    "$wsp" create "Try the board: drag this card to done" --label demo >/dev/null
    "$wsp" create "Sync with a teammate (wsp invite / wsp join)" --priority 3 --label sync >/dev/null
  ) &
fi

echo "workspace: $ws/.workspace" >&2
exec "$wspd" --workspace "$ws"
