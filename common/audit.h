// The audit trail of admin actions, one Redis stream per org: who did what
// to what, when and why. Append-only; nothing is ever updated in place.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"

namespace common::audit {

inline std::string StreamKey(absl::string_view org) {
  return "audit:{" + std::string(org) + "}";
}

// An XADD to run alone or inside a pipeline.
inline redis::Command AppendCommand(absl::string_view org, absl::string_view actor,
                                    absl::string_view action, absl::string_view target,
                                    absl::string_view reason) {
  return {"XADD",
          StreamKey(org),
          "*",
          "actor",
          std::string(actor),
          "action",
          std::string(action),
          "target",
          std::string(target),
          "reason",
          std::string(reason),
          "time",
          absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())};
}

// Adds the org to the org registry of its own slot (common/redis/org_registry.h),
// so consumers can find every org's streams; legal on a cluster alone, in a
// pipeline of the org's keys, or as the same SADD inside an org's script.
inline redis::Command RegisterOrgCommand(absl::string_view org) {
  return redis::RegisterOrgCommand(org);
}

}  // namespace common::audit
