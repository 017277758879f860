#include "common/log/log.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace common::log {
namespace {

void Write(const char* level, absl::string_view message) {
  static std::mutex mu;
  std::string stamp = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s %s %.*s\n", stamp.c_str(), level, static_cast<int>(message.size()),
               message.data());
}

}  // namespace

void Info(absl::string_view message) { Write("INFO", message); }
void Warning(absl::string_view message) { Write("WARN", message); }
void Error(absl::string_view message) { Write("ERROR", message); }

}  // namespace common::log
