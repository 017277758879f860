#include "services/integrations/slack_store.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "lua/kSlackDeleteUserLua.h"
#include "lua/kSlackPutUserLua.h"
#include "services/integrations/slack_user_map.h"

namespace integrations {
namespace {

constexpr size_t kMaxSigningSecretBytes = 256;
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

const common::redis::Script& PutUserScript() {
  static const auto* script = new common::redis::Script("slack_put_user", kSlackPutUserLua);
  return *script;
}

const common::redis::Script& DeleteUserScript() {
  static const auto* script =
      new common::redis::Script("slack_delete_user", kSlackDeleteUserLua);
  return *script;
}

bool IsPrintableAscii(absl::string_view text) {
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

std::string SlackSettingsKey(absl::string_view org) {
  return absl::StrCat("integrations:{", org, "}:slack:settings");
}
std::string SlackUsersKey(absl::string_view org) {
  return absl::StrCat("integrations:{", org, "}:slack:users");
}
std::string SlackUserIdsKey(absl::string_view org) {
  return absl::StrCat("integrations:{", org, "}:slack:user_ids");
}

absl::Status ValidateSlackSettings(const v1::SlackSettings& settings) {
  const std::string& secret = settings.signing_secret();
  if (!secret.empty() && (secret.size() > kMaxSigningSecretBytes || !IsPrintableAscii(secret))) {
    return absl::InvalidArgumentError(
        "settings.signing_secret: must be 1..256 printable ASCII characters (Slack's app "
        "signing secret)");
  }
  if (!settings.team_id().empty()) {
    if (absl::Status id = common::auth::CheckId("settings.team_id", settings.team_id());
        !id.ok()) {
      return id;
    }
  }
  if (!settings.default_value_id().empty()) {
    if (absl::Status id =
            common::auth::CheckId("settings.default_value_id", settings.default_value_id());
        !id.ok()) {
      return id;
    }
  }
  if (settings.default_points() < 0) {
    return absl::InvalidArgumentError("settings.default_points: must be 0 (points required) or more");
  }
  if (!v1::SlackResponseVisibility_IsValid(settings.response_visibility())) {
    return absl::InvalidArgumentError("settings.response_visibility: unknown value");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SlackSettings> SlackStore::SetSettings(absl::string_view org,
                                                          const v1::SlackSettings& settings) {
  KUDOS_CHECK(common::auth::ValidOrgId(org), "orgs come from verified tokens");
  v1::SlackSettings stored = settings;
  stored.clear_signing_secret();
  stored.clear_signing_secret_set();
  common::redis::Command command = {"HSET", SlackSettingsKey(org), "settings",
                                    stored.SerializeAsString()};
  if (!settings.signing_secret().empty()) {
    command.push_back("secret");
    command.push_back(settings.signing_secret());
  }
  absl::StatusOr<common::redis::Reply> reply = pool_.Run(command);
  if (!reply.ok()) return reply.status();
  absl::StatusOr<SlackConfig> config = Load(org);
  if (!config.ok()) return config.status();
  return config->settings;
}

absl::StatusOr<SlackConfig> SlackStore::Load(absl::string_view org) {
  absl::StatusOr<common::redis::Reply> reply =
      pool_.Run({"HMGET", SlackSettingsKey(org), "settings", "secret"});
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->elements.size() == 2, "HMGET of two fields answers two");
  SlackConfig config;
  const common::redis::Reply& settings = reply->elements[0];
  if (!settings.is_nil() && !config.settings.ParseFromString(settings.str)) {
    return absl::DataLossError(absl::StrCat("stored Slack settings of ", org, " do not parse"));
  }
  if (!reply->elements[1].is_nil()) config.signing_secret = reply->elements[1].str;
  config.settings.clear_signing_secret();
  config.settings.set_signing_secret_set(!config.signing_secret.empty());
  return config;
}

absl::StatusOr<SlackMappingPage> SlackStore::ListMappings(absl::string_view org, int page_size,
                                                          absl::string_view page_token) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be 0..", kMaxPageSize));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  if (!page_token.empty() && !common::auth::ValidId(page_token)) {
    return absl::InvalidArgumentError("page_token: not a token of this list");
  }
  // Strictly after the previous page's last id.
  const std::string from = page_token.empty() ? "-" : absl::StrCat("(", page_token);
  absl::StatusOr<common::redis::Reply> ids =
      pool_.Run({"ZRANGEBYLEX", SlackUserIdsKey(org), from, "+", "LIMIT", "0",
                 absl::StrCat(page_size + 1)});
  if (!ids.ok()) return ids.status();
  SlackMappingPage page;
  std::vector<std::string> slack_ids;
  for (const common::redis::Reply& id : ids->elements) slack_ids.push_back(id.str);
  const bool more = slack_ids.size() > static_cast<size_t>(page_size);
  if (more) slack_ids.resize(page_size);
  absl::StatusOr<std::vector<std::optional<std::string>>> people =
      LookupSlackUsers(pool_, org, slack_ids);
  if (!people.ok()) return people.status();
  for (size_t i = 0; i < slack_ids.size(); ++i) {
    if (!(*people)[i].has_value()) continue;  // unlinked meanwhile
    v1::SlackUserMapping* mapping = &page.mappings.emplace_back();
    mapping->set_slack_user_id(slack_ids[i]);
    mapping->set_person_id(*(*people)[i]);
  }
  if (more) page.next_page_token = slack_ids.back();
  return page;
}

// ---- slack_user_map.h -------------------------------------------------------

absl::Status PutSlackUserMapping(common::redis::Pool& pool, absl::string_view org,
                                 absl::string_view slack_user_id, absl::string_view person_id,
                                 size_t max_mappings) {
  if (!common::auth::ValidOrgId(org)) return common::auth::CheckId("org", org);
  if (absl::Status id = common::auth::CheckId("mapping.slack_user_id", slack_user_id); !id.ok()) {
    return id;
  }
  if (absl::Status id = common::auth::CheckId("mapping.person_id", person_id); !id.ok()) {
    return id;
  }
  absl::StatusOr<common::redis::Reply> reply =
      pool.Eval(PutUserScript(), {SlackUsersKey(org), SlackUserIdsKey(org)},
                {std::string(slack_user_id), std::string(person_id), absl::StrCat(max_mappings)});
  return reply.status();
}

absl::StatusOr<bool> DeleteSlackUserMapping(common::redis::Pool& pool, absl::string_view org,
                                            absl::string_view slack_user_id) {
  if (!common::auth::ValidOrgId(org)) return common::auth::CheckId("org", org);
  if (absl::Status id = common::auth::CheckId("slack_user_id", slack_user_id); !id.ok()) {
    return id;
  }
  absl::StatusOr<common::redis::Reply> reply = pool.Eval(
      DeleteUserScript(), {SlackUsersKey(org), SlackUserIdsKey(org)}, {std::string(slack_user_id)});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

absl::StatusOr<std::vector<std::optional<std::string>>> LookupSlackUsers(
    common::redis::Pool& pool, absl::string_view org,
    const std::vector<std::string>& slack_user_ids) {
  std::vector<std::optional<std::string>> people;
  if (slack_user_ids.empty()) return people;
  common::redis::Command command = {"HMGET", SlackUsersKey(org)};
  command.insert(command.end(), slack_user_ids.begin(), slack_user_ids.end());
  absl::StatusOr<common::redis::Reply> reply = pool.Run(command);
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->elements.size() == slack_user_ids.size(), "HMGET answers one per field");
  for (const common::redis::Reply& person : reply->elements) {
    people.push_back(person.is_nil() ? std::nullopt : std::optional<std::string>(person.str));
  }
  return people;
}

}  // namespace integrations
