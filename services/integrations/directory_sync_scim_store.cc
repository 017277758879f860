#include "services/integrations/directory_sync_scim_store.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lua/kDirectorySyncScimDeleteLua.h"
#include "lua/kDirectorySyncScimPutLua.h"
#include "lua/kDirectorySyncTokenCreateLua.h"

namespace integrations {
namespace {

const char* KindName(ScimKind kind) { return kind == ScimKind::kUser ? "user" : "group"; }

// Random bytes from OpenSSL's CSPRNG.
absl::StatusOr<std::string> RandomBytes(size_t count) {
  std::string bytes(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) {
    return absl::InternalError("no random bytes from OpenSSL");
  }
  return bytes;
}

std::string FromReply(const common::redis::Reply& reply) {
  return reply.is_nil() ? std::string() : reply.str;
}

}  // namespace

std::string ScimPrefix(const std::string& org) { return absl::StrCat("integrations:{", org, "}:scim:"); }
std::string ScimTokensKey(const std::string& org) { return ScimPrefix(org) + "tokens"; }
std::string ScimTokenInfoKey(const std::string& org) { return ScimPrefix(org) + "token_info"; }
std::string ScimRecordKey(const std::string& org, ScimKind kind, const std::string& id) {
  return absl::StrCat(ScimPrefix(org), KindName(kind), ":", id);
}
std::string ScimNamesKey(const std::string& org, ScimKind kind) {
  return absl::StrCat(ScimPrefix(org), KindName(kind), "_names");
}
std::string ScimExternalIdsKey(const std::string& org, ScimKind kind) {
  return absl::StrCat(ScimPrefix(org), KindName(kind), "_external_ids");
}
std::string ScimIndexKey(const std::string& org, ScimKind kind) {
  return absl::StrCat(ScimPrefix(org), KindName(kind), "s");
}

namespace {

// The KEYS of directory_sync_scim_put.lua and _delete.lua.
std::vector<std::string> RecordScriptKeys(const std::string& org, ScimKind kind,
                                          const std::string& id) {
  return {ScimRecordKey(org, kind, id), ScimNamesKey(org, kind), ScimExternalIdsKey(org, kind),
          ScimIndexKey(org, kind)};
}

}  // namespace

std::string Sha256Hex(absl::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string AsciiLower(absl::string_view text) { return absl::AsciiStrToLower(text); }

ScimStore::ScimStore(common::redis::Pool& pool, ScimLimits limits)
    : pool_(pool),
      limits_(limits),
      put_("directory_sync_scim_put", kDirectorySyncScimPutLua),
      delete_("directory_sync_scim_delete", kDirectorySyncScimDeleteLua),
      create_token_("directory_sync_token_create", kDirectorySyncTokenCreateLua) {}

absl::StatusOr<NewScimToken> ScimStore::CreateToken(const std::string& org,
                                                    const std::string& description,
                                                    absl::Time now) {
  absl::StatusOr<std::string> id_bytes = RandomBytes(8);
  if (!id_bytes.ok()) return id_bytes.status();
  absl::StatusOr<std::string> secret = RandomBytes(32);
  if (!secret.ok()) return secret.status();
  NewScimToken token;
  token.token_id = absl::BytesToHexString(*id_bytes);
  token.token = absl::StrCat("scim_", absl::WebSafeBase64Escape(*secret));
  v1::ScimTokenInfo info;
  info.set_token_id(token.token_id);
  info.set_description(description);
  info.set_created_at(absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone()));
  absl::StatusOr<common::redis::Reply> stored =
      pool_.Eval(create_token_, {ScimTokensKey(org), ScimTokenInfoKey(org)},
                 {token.token_id, Sha256Hex(token.token), info.SerializeAsString(),
                  std::to_string(limits_.max_tokens)});
  if (!stored.ok()) return stored.status();
  return token;
}

absl::Status ScimStore::RevokeToken(const std::string& org, const std::string& token_id) {
  auto replies = pool_.Pipeline(
      {{"HDEL", ScimTokensKey(org), token_id}, {"HDEL", ScimTokenInfoKey(org), token_id}});
  if (!replies.ok()) return replies.status();
  if (!(*replies)[0].ok()) return (*replies)[0].status();
  if ((*replies)[0]->integer == 0) {
    return absl::NotFoundError(absl::StrCat("token_id: '", token_id, "' is not a live SCIM token"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::ScimTokenInfo>> ScimStore::ListTokens(const std::string& org) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Run({"HVALS", ScimTokenInfoKey(org)});
  if (!reply.ok()) return reply.status();
  std::vector<v1::ScimTokenInfo> tokens;
  for (const common::redis::Reply& element : reply->elements) {
    v1::ScimTokenInfo info;
    if (!info.ParseFromString(element.str)) return absl::DataLossError("unreadable SCIM token info");
    tokens.push_back(std::move(info));
  }
  return tokens;
}

absl::StatusOr<bool> ScimStore::VerifyToken(const std::string& org, absl::string_view token) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Run({"HVALS", ScimTokensKey(org)});
  if (!reply.ok()) return reply.status();
  const std::string digest = Sha256Hex(token);
  bool match = false;
  // Every stored digest is compared, in constant time, whatever matched.
  for (const common::redis::Reply& element : reply->elements) {
    if (element.str.size() == digest.size() &&
        CRYPTO_memcmp(element.str.data(), digest.data(), digest.size()) == 0) {
      match = true;
    }
  }
  return match;
}

absl::StatusOr<std::optional<ScimRecord>> ScimStore::Get(const std::string& org, ScimKind kind,
                                                         const std::string& id) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Run(
      {"HMGET", ScimRecordKey(org, kind, id), "res", "created", "modified"});
  if (!reply.ok()) return reply.status();
  if (reply->elements.size() != 3 || reply->elements[0].is_nil()) return std::nullopt;
  return ScimRecord{id, reply->elements[0].str, FromReply(reply->elements[1]),
                    FromReply(reply->elements[2])};
}

absl::Status ScimStore::Put(const std::string& org, ScimKind kind, const std::string& id,
                            const std::string& res, const std::string& name,
                            const std::string& external_id, bool create, absl::Time now) {
  size_t max = kind == ScimKind::kUser ? limits_.max_users : limits_.max_groups;
  return pool_
      .Eval(put_, RecordScriptKeys(org, kind, id),
            {KindName(kind), id, res, AsciiLower(name), external_id, create ? "create" : "replace",
             absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone()), std::to_string(max)})
      .status();
}

absl::Status ScimStore::Delete(const std::string& org, ScimKind kind, const std::string& id) {
  return pool_.Eval(delete_, RecordScriptKeys(org, kind, id), {KindName(kind), id}).status();
}

absl::StatusOr<std::optional<std::string>> ScimStore::FindByName(const std::string& org,
                                                                 ScimKind kind,
                                                                 const std::string& name) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Run(
      {"HGET", ScimNamesKey(org, kind), AsciiLower(name)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  return reply->str;
}

absl::StatusOr<std::optional<std::string>> ScimStore::FindByExternalId(
    const std::string& org, ScimKind kind, const std::string& external_id) {
  absl::StatusOr<common::redis::Reply> reply = pool_.Run(
      {"HGET", ScimExternalIdsKey(org, kind), external_id});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  return reply->str;
}

absl::StatusOr<std::pair<std::vector<std::string>, long long>> ScimStore::Page(
    const std::string& org, ScimKind kind, long long offset, long long count) {
  std::string index = ScimIndexKey(org, kind);
  std::vector<common::redis::Command> commands = {{"ZCARD", index}};
  if (count > 0) {
    commands.push_back({"ZRANGE", index, std::to_string(offset), std::to_string(offset + count - 1)});
  }
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  std::vector<std::string> ids;
  if (count > 0) {
    for (const common::redis::Reply& element : (*replies)[1]->elements) ids.push_back(element.str);
  }
  return std::make_pair(std::move(ids), (*replies)[0]->integer);
}

}  // namespace integrations
