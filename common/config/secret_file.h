// Secrets mounted as files (a Kubernetes Secret, a file written by hand):
// one reader for every *_FILE setting, so each says the same thing when
// the file is missing or empty.
#pragma once

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace common::config {

enum class LineEnd { kKeep, kStrip };

// The contents of the secret file at `path`; with LineEnd::kStrip without
// the trailing newlines an editor or `echo` leaves (not part of a password
// or an HS256 secret; a PEM key keeps its bytes). FAILED_PRECONDITION naming
// `what` and the path when the file cannot be read or holds nothing.
inline absl::StatusOr<std::string> ReadSecretFile(absl::string_view what, const std::string& path,
                                                  LineEnd line_end) {
  std::ifstream file(path);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", what, " '", path, "': ", std::strerror(errno)));
  }
  std::stringstream content;
  content << file.rdbuf();
  std::string secret = content.str();
  while (line_end == LineEnd::kStrip && !secret.empty() &&
         (secret.back() == '\n' || secret.back() == '\r')) {
    secret.pop_back();
  }
  if (secret.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " '", path, "' is empty"));
  }
  return secret;
}

}  // namespace common::config
