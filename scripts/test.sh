#!/usr/bin/env bash
# Builds everything and runs every test: unit and integration tests against
# real redis-server processes (each test starts its own on a free loopback
# port), the gateway's browser test in headless Chromium, and buf lint.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

bash scripts/install-deps.sh

echo "== buf lint"
# npm install, not npm ci: the lockfile holds only this platform's buf binary package.
(cd tools/buf && npm install --no-audit --no-fund --loglevel=error >/dev/null)
(cd proto && "$ROOT/tools/buf/node_modules/.bin/buf" lint)

echo "== build"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKUDOS_SERVICES="ledger;kudos;leaderboard;gateway" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

echo "== test"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" --timeout 900
