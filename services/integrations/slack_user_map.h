// The per-org link from Slack users to people (issue 17). Admins set it
// through SlackService; directory sync (SCIM) may set it too with these
// functions, e.g. from a user's Slack id in its enterprise data. Keys:
// integrations:{org}:slack:users (HASH) and :slack:user_ids (ZSET for paging).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/redis_client.h"

namespace integrations {

// Most Slack users one org may link (a large workspace is ~100k people).
inline constexpr size_t kMaxSlackUserMappings = 100000;

// Links `slack_user_id` (Slack's "U…"/"W…" id) to `person_id` of `org`,
// replacing an earlier link of that Slack user. INVALID_ARGUMENT on a bad
// id, RESOURCE_EXHAUSTED past max_mappings, UNAVAILABLE when Redis fails.
// The person is not checked against the directory here (SCIM may link a
// person it is creating in the same sync).
absl::Status PutSlackUserMapping(common::redis::Pool& pool, absl::string_view org,
                                 absl::string_view slack_user_id, absl::string_view person_id,
                                 size_t max_mappings = kMaxSlackUserMappings);

// Unlinks; true when a link was there.
absl::StatusOr<bool> DeleteSlackUserMapping(common::redis::Pool& pool, absl::string_view org,
                                            absl::string_view slack_user_id);

// The person linked to each Slack user id, in order (nullopt: unlinked).
absl::StatusOr<std::vector<std::optional<std::string>>> LookupSlackUsers(
    common::redis::Pool& pool, absl::string_view org,
    const std::vector<std::string>& slack_user_ids);

}  // namespace integrations
