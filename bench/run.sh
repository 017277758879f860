#!/usr/bin/env bash
# Runs every benchmark scenario (issues 8 and 15) and prints one JSON report
# per scenario plus the summary tables. Builds in build-bench
# (RelWithDebInfo with KUDOS_WERROR=ON, the configuration every engineer's
# build dir uses, so a shared dir is never flipped between configurations;
# BENCH_BUILD_DIR picks another build dir, BENCH_BUILD_TYPE another type), starts its
# own redis-server on a free loopback port and the services, and stops them
# at the end. Extra arguments go to kudos_bench, e.g.
#   bash bench/run.sh --duration_s=5 --board_people=200000 --scenarios=floor_a,send_kudos
# Output: stdout (JSON lines + table); logs, report.json and table.md in
# $BENCH_OUT (default build-bench/bench-out).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build-bench}"
out="${BENCH_OUT:-$build/bench-out}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${BENCH_BUILD_TYPE:-RelWithDebInfo}" \
  -DKUDOS_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target kudos_bench bench_echo_server >/dev/null
exec timeout --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-900}" \
  "$build/bench/kudos_bench" --out_dir="$out" "$@"
