#!/usr/bin/env bash
# Builds everything and runs every test: unit and integration tests against
# real redis-server processes (each test starts its own on a free loopback
# port), the fuzz targets over their seed corpus, the gateway's browser test
# in headless Chromium, and buf lint. Warnings are errors (KUDOS_WERROR=ON).
# It runs all of ctest, so also the label `cluster` (issue 14): the kudos,
# ledger, leaderboard, gateway and replicas integration suites once more
# against a 3-primary Redis Cluster on loopback (KUDOS_TEST_REDIS=cluster) and
# tests/cluster (kudosctl on orgs of three primaries, slot migration and
# primary failover under load). Only those: CTEST_ARGS="-L cluster"; none of
# them: CTEST_ARGS="-LE cluster". Docs: docs/cluster.md.
#   bash scripts/test.sh                  # build-asan/: every test under ASan+UBSan; what CI runs (.ci/run)
#   bash scripts/test.sh --plain          # build/ (shared with start.sh): every test, no sanitizer
#   bash scripts/test.sh --sanitize=thread  # build-tsan/ (clang): the concurrency-heavy suites under TSan
# One sanitized build instead of a plain one and a sanitized one: CI has 90
# minutes, and every test then runs under ASan+UBSan (UBSan without its pointer
# checks: cmake/sanitizers.cmake says why). The one test a sanitizer cannot run
# (GatewayHardeningTest.Accept_SurvivesRunningOutOfDescriptors) runs with --plain.
# Under a sanitizer the first finding aborts the process that hit it (the
# test's or a service's started by the test); reports are written to
# <build dir>/sanitizer-logs/ and any report there fails the run.
# Environment: BUILD_DIR, JOBS, CTEST_ARGS (extra ctest arguments, e.g. "-R Ledger").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}

SANITIZE="address,undefined"
for arg in "$@"; do
  case "$arg" in
    --plain) SANITIZE="" ;;
    --sanitize=*) SANITIZE=${arg#--sanitize=} ;;
    *) echo "unknown argument: $arg (use --plain or --sanitize=thread)" >&2; exit 2 ;;
  esac
done
case "$SANITIZE" in
  "") DEFAULT_BUILD_DIR=$ROOT/build ;;
  thread) DEFAULT_BUILD_DIR=$ROOT/build-tsan ;;
  *) DEFAULT_BUILD_DIR=$ROOT/build-asan ;;
esac
BUILD_DIR=${BUILD_DIR:-$DEFAULT_BUILD_DIR}

# TSan builds with clang: g++ 12's TSan crashes inside Debian's protobuf Map
# (a Struct's operator[]: SEGV in map.h TableEntryIsNonEmptyList), clang's does not.
CXX_ARGS=()
if [ "$SANITIZE" = thread ]; then
  bash scripts/install-deps.sh --clang
  CXX_ARGS=(-DCMAKE_CXX_COMPILER=clang++)
else
  bash scripts/install-deps.sh
fi

if [ "$SANITIZE" != thread ]; then
  echo "== buf lint"
  # npm install, not npm ci: the lockfile holds only this platform's buf binary package.
  (cd tools/buf && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  (cd proto && "$ROOT/tools/buf/node_modules/.bin/buf" lint)
fi

echo "== build ${SANITIZE:+(sanitizers: $SANITIZE) }in $BUILD_DIR"
# Build type Test: -O1, no debug info (CMakeLists.txt says why); with --plain
# the same flags as scripts/start.sh, so the two share build/.
phase_start=$SECONDS
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Test -DKUDOS_WERROR=ON \
  -DKUDOS_SANITIZE="$SANITIZE" -DKUDOS_SERVICES="ledger;kudos;leaderboard;gateway" "${CXX_ARGS[@]}" >/dev/null
# The suites that exercise threads (pools, rate limits, streams, consumers,
# shutdown, SSE fan-out): what TSan runs, and the targets they need.
TSAN_TARGETS=(common_test leaderboard_integration_test gateway_http_test kudos_integration_test)
TSAN_TESTS='^(RateLimiterTest|RateLimitTest|RedisClientTest|GuardTest|StreamSlotsTest|ShutdownTest|LeaderboardIntegrationTest|GatewayHttpTest|KudosIntegrationTest)\.'
if [ "$SANITIZE" = thread ]; then
  cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TSAN_TARGETS[@]}"
else
  cmake --build "$BUILD_DIR" -j "$JOBS"
fi

echo "== built in $((SECONDS - phase_start)) s"

echo "== test"
phase_start=$SECONDS
CTEST_SELECT=()
if [ -n "$SANITIZE" ]; then
  LOG_DIR=$BUILD_DIR/sanitizer-logs
  rm -rf "$LOG_DIR" && mkdir -p "$LOG_DIR"
  SUPP=$ROOT/tests/sanitizers
  COMMON="halt_on_error=1:print_stacktrace=1:log_path=$LOG_DIR/report"
  export ASAN_OPTIONS="$COMMON:detect_leaks=1:suppressions=$SUPP/asan.supp"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="$COMMON:suppressions=$SUPP/ubsan.supp"
  export TSAN_OPTIONS="$COMMON:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
  [ "$SANITIZE" = thread ] && CTEST_SELECT=(-R "$TSAN_TESTS")
fi
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" --timeout 900 "${CTEST_SELECT[@]}" ${CTEST_ARGS:-}) || status=$?
echo "== tests ran in $((SECONDS - phase_start)) s"

# A failing suite's output can be thousands of lines of service logs, and a CI
# summary keeps only the head and a short tail of the run; so the failed
# assertions are repeated here, one line each (gtest's "file:line: Failure"
# and the 3 lines after it, joined), with the failed tests' names: at most
# 16 lines of 400 characters, short enough to stay in that tail.
LAST_LOG=$BUILD_DIR/Testing/Temporary/LastTest.log
if [ "$status" -ne 0 ] && [ -f "$LAST_LOG" ]; then
  echo "== failed assertions (from $LAST_LOG)"
  awk -v max_lines=16 '
    function flush() { if (failure != "") { print substr(failure, 1, 400); failure = ""; ++lines } }
    lines >= max_lines { exit }
    / Failure$/ { flush(); failure = $0; after = 3; next }
    after > 0 { failure = failure " | " $0; if (--after == 0) flush(); next }
    /^\[  FAILED  \] .+ \([0-9]+ ms\)$/ { print substr($0, 1, 400); ++lines }
    END { if (lines < max_lines) flush() }' "$LAST_LOG" || true
fi

if [ -n "$SANITIZE" ]; then
  reports=$(find "$LOG_DIR" -type f | sort)
  if [ -n "$reports" ]; then
    echo "== sanitizer reports (each fails the run):"
    for report in $reports; do echo "--- $report"; cat "$report"; done
    status=1
  else
    echo "== no sanitizer report"
  fi
fi
exit $status
