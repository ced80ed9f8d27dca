#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages WorkStream needs to build, test and
# benchmark. Idempotent: installs only what is missing. Uses sudo when not
# root. Set WSP_SKIP_DEPS=1 to skip entirely.
set -euo pipefail

[ "${WSP_SKIP_DEPS:-0}" = 1 ] && exit 0

PKGS=(
  build-essential pkg-config meson ninja-build python3
  libglib2.0-dev libsoup-3.0-dev libjson-glib-dev
  libsqlite3-dev libfyaml-dev libmsgpack-dev libzstd-dev libsodium-dev libssl-dev
  libh2o-evloop-dev
  libgstreamer1.0-dev libgstreamer-plugins-bad1.0-dev gstreamer1.0-plugins-bad gstreamer1.0-nice
  clang libclang-rt-14-dev
)
# Only for `make bench`.
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(wrk nginx-light ripgrep hyperfine)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
