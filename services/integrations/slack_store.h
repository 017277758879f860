// Redis state of the Slack app, per org (hash tag {org}):
//   integrations:{org}:slack:settings  HASH  settings -> SlackSettings (no secret),
//                                             secret   -> the signing secret
//   integrations:{org}:slack:users     HASH  slack user id -> person id
//   integrations:{org}:slack:user_ids  ZSET  slack user ids (score 0), for paging
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/slack.pb.h"

namespace integrations {

std::string SlackSettingsKey(absl::string_view org);
std::string SlackUsersKey(absl::string_view org);
std::string SlackUserIdsKey(absl::string_view org);

// INVALID_ARGUMENT naming the field: signing secret 1..256 printable ASCII
// (or empty: keep the stored one), ids by the id rule, default_points >= 0.
absl::Status ValidateSlackSettings(const v1::SlackSettings& settings);

struct SlackConfig {
  v1::SlackSettings settings;   // signing_secret cleared, signing_secret_set filled
  std::string signing_secret;   // "" when none is stored
};

struct SlackMappingPage {
  std::vector<v1::SlackUserMapping> mappings;
  std::string next_page_token;
};

class SlackStore {
 public:
  explicit SlackStore(common::redis::Pool& pool) : pool_(pool) {}

  // Replaces the settings; an empty signing secret keeps the stored one.
  // Returns them as stored, without the secret.
  absl::StatusOr<v1::SlackSettings> SetSettings(absl::string_view org,
                                                const v1::SlackSettings& settings);
  // Defaults when the org never set any.
  absl::StatusOr<SlackConfig> Load(absl::string_view org);
  // page_size 1..1000 (0 = 100); the token is the last id of the previous page.
  absl::StatusOr<SlackMappingPage> ListMappings(absl::string_view org, int page_size,
                                                absl::string_view page_token);

 private:
  common::redis::Pool& pool_;
};

}  // namespace integrations
