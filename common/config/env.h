// Configuration: every flag's default may come from the environment, so
// the same binary runs from the start script, tests and Kubernetes.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"

namespace common::config {

// The value of environment variable `name`, or `fallback` when unset.
inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

// The number in environment variable `name` when it is set, parses and is
// at least `min`; else `fallback`.
inline int64_t IntEnvOr(const char* name, int64_t fallback, int64_t min = 0) {
  int64_t value = 0;
  return absl::SimpleAtoi(EnvOr(name, ""), &value) && value >= min ? value : fallback;
}
inline double DoubleEnvOr(const char* name, double fallback, double min = 0) {
  double value = 0;
  return absl::SimpleAtod(EnvOr(name, ""), &value) && value >= min ? value : fallback;
}

}  // namespace common::config
