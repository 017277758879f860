#!/usr/bin/env bash
# Installs every Debian package the platform needs to build, run and test.
# Idempotent: does nothing when all are present. Runs apt as root or via sudo.
#   --clang: also clang and its sanitizer/libFuzzer runtimes (scripts/fuzz.sh and
#   scripts/test.sh --sanitize=thread; not needed by CI).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libhiredis-dev libzstd-dev libabsl-dev libjwt-dev libssl-dev libgtest-dev libgmock-dev
  libevent-dev
  libcurl4-openssl-dev ca-certificates
  redis-server redis-tools tzdata
  python3-yaml
  chromium
)
if [ "${1:-}" = "--clang" ]; then
  PACKAGES+=(clang libclang-rt-14-dev)
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js and npm (for buf lint and the browser test) come with the machine image
# on this project's machines; install Debian's only where they are missing.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
