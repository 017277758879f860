# KUDOS_SANITIZE: compile and link every target with these sanitizers, e.g.
# "address,undefined" (build-asan) or "thread" (build-tsan). Third-party
# libraries (Debian's gRPC, protobuf, Abseil) are not instrumented; the
# suppressions in tests/sanitizers/ cover their frames only.
if(KUDOS_SANITIZE)
  if(KUDOS_SANITIZE MATCHES "thread" AND KUDOS_SANITIZE MATCHES "address")
    message(FATAL_ERROR "KUDOS_SANITIZE: thread cannot be combined with address")
  endif()
  message(STATUS "sanitizers: ${KUDOS_SANITIZE}")
  # No recovery: the first finding aborts the process, so it fails the test.
  # -g1: line tables, so a report names file and line even in the Test build
  # type, which has no debug info.
  add_compile_options(-fsanitize=${KUDOS_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g1)
  add_link_options(-fsanitize=${KUDOS_SANITIZE} -fno-sanitize-recover=all)
  # UBSan's pointer checks (null, alignment, vptr, object-size, ...) instrument
  # every member access of the gRPC/protobuf templates: 2.1x the compile time
  # of ASan with the rest of UBSan (measured on ledger_service.cc, 47 s vs 22 s),
  # which CI's 90 minutes cannot hold. ASan itself reports null and out-of-object
  # accesses; UBSan keeps the arithmetic checks (signed overflow of points, shifts,
  # division by zero, bounds, bool/enum values, float casts, missing returns).
  # -DKUDOS_UBSAN_SKIP= turns every check back on.
  set(KUDOS_UBSAN_SKIP
      "null,alignment,vptr,object-size,pointer-overflow,nonnull-attribute,returns-nonnull-attribute"
      CACHE STRING "UBSan checks left out of sanitizer builds (empty: none)")
  if(KUDOS_SANITIZE MATCHES "undefined" AND KUDOS_UBSAN_SKIP)
    add_compile_options(-fno-sanitize=${KUDOS_UBSAN_SKIP})
  endif()
  # For the few tests that cannot run under a sanitizer (they say why).
  add_compile_definitions(KUDOS_SANITIZED=1)
endif()

# KUDOS_FUZZ (clang only): every library gets libFuzzer's coverage
# instrumentation plus ASan/UBSan, and the tests/fuzz targets link libFuzzer's
# main instead of the corpus replay driver.
if(KUDOS_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KUDOS_FUZZ=ON needs clang: -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(KUDOS_SANITIZE)
    message(FATAL_ERROR "KUDOS_FUZZ=ON brings its own sanitizers; leave KUDOS_SANITIZE empty")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Under a sanitizer, tests run through tests/sanitizers/reap.sh, which ends
# what a test process aborted by a finding left running (its services).
if(KUDOS_SANITIZE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PROJECT_SOURCE_DIR}/tests/sanitizers/reap.sh)
endif()
