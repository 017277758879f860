// Minimal structured-enough logging to stderr: one line per event with a
// UTC timestamp and a level. (Debian's Abseil predates absl/log.)
#pragma once

#include "absl/strings/string_view.h"

namespace common::log {

void Info(absl::string_view message);
void Warning(absl::string_view message);
void Error(absl::string_view message);

}  // namespace common::log
