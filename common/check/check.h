// Invariant checks that stay on in every build type. A broken invariant is a
// programmer error: the process stops loudly (file, line, condition, why)
// rather than serve or store wrong points. Use them in pairs where data
// crosses a boundary (before a script is called and after its reply is read).
// Not for bad input: that is a status returned to the caller.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace common::check {

[[noreturn]] inline void Fail(const char* file, int line, const char* condition,
                              const char* why) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", file, line, condition, why);
  std::fflush(stderr);
  std::abort();
}

}  // namespace common::check

// KUDOS_CHECK(condition, "why it must hold")
#define KUDOS_CHECK(condition, why)                                          \
  do {                                                                       \
    if (__builtin_expect(!(condition), 0)) {                                 \
      ::common::check::Fail(__FILE__, __LINE__, #condition, why);            \
    }                                                                        \
  } while (false)
