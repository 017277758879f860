#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/) for a bounded time with clang,
# ASan and UBSan, starting from the seed corpus in the repo.
#   bash scripts/fuzz.sh                   # 120 s per target
#   SECONDS_PER_TARGET=600 bash scripts/fuzz.sh token gateway_request
# New inputs go to <build>/corpus/<target>/ (not the repo); crashes to
# <build>/artifacts/<target>/crash-*. Prints executions and crashes per target.
# Environment: BUILD_DIR (default build-fuzz), JOBS, SECONDS_PER_TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${JOBS:-$(nproc)}
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-120}
ALL_TARGETS=(token page_token gateway_request stream_event ledger_args kudos_args)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

bash scripts/install-deps.sh --clang
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DKUDOS_FUZZ=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]/%/_fuzz}"

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
summary=()
failed=0
for target in "${TARGETS[@]}"; do
  work=$BUILD_DIR/corpus/$target artifacts=$BUILD_DIR/artifacts/$target
  log=$BUILD_DIR/fuzz-$target.log
  mkdir -p "$work" "$artifacts"
  echo "== $target: ${SECONDS_PER_TARGET}s (log: $log)"
  rc=0
  "$BUILD_DIR/tests/fuzz/${target}_fuzz" "$work" "$ROOT/tests/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$artifacts" -type f | wc -l)
  summary+=("$target: ${execs:-?} executions, corpus $(ls "$work" | wc -l) new inputs, exit $rc, $crashes crash/timeout/leak artifacts")
  if [ "$rc" -ne 0 ]; then
    failed=1
    grep -m1 -A30 "ERROR:\|invariant broken\|runtime error" "$log" || tail -30 "$log"
  fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed
