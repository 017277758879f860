// Configuration: every flag's default may come from the environment, so
// the same binary runs from the start script, tests and Kubernetes.
#pragma once

#include <cstdlib>
#include <string>

namespace common::config {

// The value of environment variable `name`, or `fallback` when unset.
inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace common::config
