// Directory sync's own Redis records, all under "integrations:{org}:scim:":
// the SCIM bearer tokens (SHA-256 only), and the SCIM resources' attributes
// that kudos does not keep (userName, name, emails, externalId, a group's
// displayName...), so a GET returns what the identity provider PUT. The
// person or team itself lives in kudos.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/directory_sync.pb.h"

namespace integrations {

struct ScimLimits {
  size_t max_tokens = 5;
  size_t max_users = 100000;
  size_t max_groups = 10000;
};

enum class ScimKind { kUser, kGroup };

struct ScimRecord {
  std::string id;
  // The stored attributes as JSON (a google.protobuf.Struct).
  std::string res;
  // RFC 3339.
  std::string created;
  std::string modified;
};

struct NewScimToken {
  std::string token_id;
  std::string token;
};

class ScimStore {
 public:
  ScimStore(common::redis::Pool& pool, ScimLimits limits);

  absl::StatusOr<NewScimToken> CreateToken(const std::string& org, const std::string& description,
                                           absl::Time now);
  // NOT_FOUND when no such token.
  absl::Status RevokeToken(const std::string& org, const std::string& token_id);
  absl::StatusOr<std::vector<v1::ScimTokenInfo>> ListTokens(const std::string& org);
  // Whether `token` is one of the org's live tokens (SHA-256 compared in constant time).
  absl::StatusOr<bool> VerifyToken(const std::string& org, absl::string_view token);

  absl::StatusOr<std::optional<ScimRecord>> Get(const std::string& org, ScimKind kind,
                                                const std::string& id);
  // create: ALREADY_EXISTS when the id or the name is taken; replace:
  // NOT_FOUND when the id does not exist, ALREADY_EXISTS when the name is another's.
  absl::Status Put(const std::string& org, ScimKind kind, const std::string& id,
                   const std::string& res, const std::string& name, const std::string& external_id,
                   bool create, absl::Time now);
  absl::Status Delete(const std::string& org, ScimKind kind, const std::string& id);
  // The id holding `name` (compared lower-cased) / `external_id`, if any.
  absl::StatusOr<std::optional<std::string>> FindByName(const std::string& org, ScimKind kind,
                                                        const std::string& name);
  absl::StatusOr<std::optional<std::string>> FindByExternalId(const std::string& org,
                                                              ScimKind kind,
                                                              const std::string& external_id);
  // Ids in order, from the 0-based `offset`, at most `count`; and the total.
  absl::StatusOr<std::pair<std::vector<std::string>, long long>> Page(const std::string& org,
                                                                      ScimKind kind,
                                                                      long long offset,
                                                                      long long count);

  const ScimLimits& limits() const { return limits_; }

 private:
  common::redis::Pool& pool_;
  ScimLimits limits_;
  common::redis::Script put_;
  common::redis::Script delete_;
  common::redis::Script create_token_;
};

// "integrations:{org}:scim:"
std::string ScimPrefix(const std::string& org);
// The keys of an org's SCIM records; every key name is built here only (the
// scripts get them in KEYS).
std::string ScimTokensKey(const std::string& org);     // HASH token id -> SHA-256 hex
std::string ScimTokenInfoKey(const std::string& org);  // HASH token id -> ScimTokenInfo
std::string ScimRecordKey(const std::string& org, ScimKind kind, const std::string& id);  // HASH
std::string ScimNamesKey(const std::string& org, ScimKind kind);        // HASH name -> id
std::string ScimExternalIdsKey(const std::string& org, ScimKind kind);  // HASH externalId -> id
std::string ScimIndexKey(const std::string& org, ScimKind kind);        // ZSET ids in order
// Lower-case hex SHA-256 of `text`.
std::string Sha256Hex(absl::string_view text);
// ASCII lower case (SCIM compares userName and attribute names case-insensitively).
std::string AsciiLower(absl::string_view text);

}  // namespace integrations
