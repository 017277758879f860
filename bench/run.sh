#!/usr/bin/env bash
# Runs every benchmark scenario of issue 8 and prints one JSON report per
# scenario plus a summary table. Builds in build-bench (Release), starts its
# own redis-server on a free loopback port and the services, and stops them
# at the end. Extra arguments go to kudos_bench, e.g.
#   bash bench/run.sh --duration_s=5 --board_people=200000 --scenarios=floor_a,send_kudos
# Output: stdout (JSON lines + table); logs, report.json and table.md in
# $BENCH_OUT (default build-bench/bench-out).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build-bench}"
out="${BENCH_OUT:-$build/bench-out}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j"$(nproc)" kudos_bench bench_echo_server >/dev/null
exec timeout --signal=TERM --kill-after=30 "${BENCH_TIMEOUT:-900}" \
  "$build/bench/kudos_bench" --out_dir="$out" "$@"
