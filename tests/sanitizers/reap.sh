#!/usr/bin/env bash
# Test launcher in sanitizer builds (CMAKE_CROSSCOMPILING_EMULATOR, set by
# cmake/sanitizers.cmake): runs the test in its own process group and, once it
# exits, ends whatever it left behind. A sanitizer stops a test process
# without running its destructors, so the redis-server and services it
# started (tests/harness) would live on, holding ctest's output pipe open
# until the test's 900 s timeout.
set -m  # job control: the test gets a process group of its own
"$@" &
test_pid=$!
rc=0
wait "$test_pid" || rc=$?
if kill -TERM -- "-$test_pid" 2>/dev/null; then
  sleep 2
  kill -KILL -- "-$test_pid" 2>/dev/null || true
fi
exit "$rc"
