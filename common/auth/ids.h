// The one rule for ids that name a tenant or a person: an org (the `org`
// claim of a token, the {org} hash tag of every key), a token's subject, and
// the ids the services store (people, teams, values). Auth refuses a token
// whose org or subject breaks it, and the services check their ids with the
// same function, so a token can never name an org that a service then
// refuses (issue #12 finding 10). Header-only: the domain layers (plain C++)
// use it without linking the gRPC edge.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace common::auth {

inline constexpr size_t kMaxIdLength = 64;
// What ValidId accepts, for error messages.
inline constexpr char kIdRule[] = "1..64 characters of [A-Za-z0-9._-]";

// 1..64 characters of [A-Za-z0-9._-]: never breaks out of a key's {org}
// hash tag nor a key's ':'-separated parts.
inline bool ValidId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Whether `org` may name a tenant (the same rule as every id).
inline bool ValidOrgId(absl::string_view org) { return ValidId(org); }

// INVALID_ARGUMENT naming `field` and the rule, or OK. The value itself is
// not echoed (it may be anything a client sent).
inline absl::Status CheckId(absl::string_view field, absl::string_view id) {
  if (ValidId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be ", kIdRule));
}

}  // namespace common::auth
