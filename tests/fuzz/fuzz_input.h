// Helpers shared by the fuzz targets: reading a fuzz input as a sequence of
// fields, so one input drives several parameters of a call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "absl/strings/string_view.h"

namespace fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  // One byte (0 when none is left).
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    uint8_t byte = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return byte;
  }
  // Up to the next `separator` (consumed), or everything left.
  std::string Field(char separator = '\n') {
    size_t at = rest_.find(separator);
    std::string field(rest_.substr(0, at));
    rest_.remove_prefix(at == absl::string_view::npos ? rest_.size() : at + 1);
    return field;
  }
  std::string Rest() {
    std::string rest(rest_);
    rest_ = absl::string_view();
    return rest;
  }
  bool empty() const { return rest_.empty(); }

 private:
  absl::string_view rest_;
};

// Drops protobuf's log lines (e.g. "invalid UTF-8" on every such input):
// they slow fuzzing down and drown the report of a real finding.
inline void QuietProtobuf() {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
}

}  // namespace fuzz
