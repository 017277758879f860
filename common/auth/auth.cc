#include "common/auth/auth.h"

#include <errno.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/env.h"
#include "common/log/log.h"

namespace common::auth {
namespace {

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("invalid token: ", why));
}

// Reads a claim that may be a string or an array of strings.
std::vector<std::string> StringOrArrayClaim(jwt_t* jwt, const char* name) {
  std::vector<std::string> values;
  if (const char* single = jwt_get_grant(jwt, name); single != nullptr) {
    values.emplace_back(single);
    return values;
  }
  char* json = jwt_get_grants_json(jwt, name);
  if (json == nullptr) return values;
  google::protobuf::ListValue list;
  if (google::protobuf::util::JsonStringToMessage(json, &list).ok()) {
    for (const auto& value : list.values()) {
      if (value.kind_case() == google::protobuf::Value::kStringValue) {
        values.push_back(value.string_value());
      }
    }
  }
  free(json);
  return values;
}

absl::StatusOr<uint32_t> ParseRoles(const std::vector<std::string>& names, bool allow_service) {
  uint32_t roles = 0;
  for (const std::string& name : names) {
    if (name == "member") roles |= static_cast<uint32_t>(Role::kMember);
    else if (name == "manager") roles |= static_cast<uint32_t>(Role::kManager);
    else if (name == "admin") roles |= static_cast<uint32_t>(Role::kAdmin);
    else if (name == "screen") roles |= static_cast<uint32_t>(Role::kScreen);
    else if (name == "service" && allow_service) roles |= static_cast<uint32_t>(Role::kService);
    else if (name == "service") return Unauthenticated("role 'service' needs a service-signed token");
    // Unknown roles are ignored: they grant nothing.
  }
  return roles;
}

// Decodes and checks signature, algorithm, expiry, issuer and audience.
// `validity` receives the token's [nbf, exp) for the verified-token cache.
absl::StatusOr<Principal> Decode(absl::string_view token, jwt_alg_t expected_alg,
                                 const std::string& key, const std::string& issuer,
                                 const std::string& audience, bool is_service_key,
                                 absl::Time now, std::pair<absl::Time, absl::Time>* validity) {
  jwt_t* raw = nullptr;
  std::string token_str(token);
  if (jwt_decode(&raw, token_str.c_str(), reinterpret_cast<const unsigned char*>(key.data()),
                 static_cast<int>(key.size())) != 0 ||
      raw == nullptr) {
    return Unauthenticated("signature or format rejected");
  }
  JwtPtr jwt(raw);
  // Refuse "none" and algorithm confusion: only the configured algorithm.
  if (jwt_get_alg(jwt.get()) != expected_alg) return Unauthenticated("unexpected algorithm");
  errno = 0;
  long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == ENOENT || exp <= 0) return Unauthenticated("no 'exp' claim");
  if (absl::FromUnixSeconds(exp) <= now) return Unauthenticated("expired");
  // Not valid yet (a minute of leeway for clock skew between issuer and us).
  errno = 0;
  long nbf = jwt_get_grant_int(jwt.get(), "nbf");
  if (errno != ENOENT && absl::FromUnixSeconds(nbf) > now + absl::Minutes(1)) {
    return Unauthenticated("not valid before its 'nbf'");
  }
  *validity = {errno == ENOENT ? absl::InfinitePast() : absl::FromUnixSeconds(nbf),
               absl::FromUnixSeconds(exp)};
  const char* iss = jwt_get_grant(jwt.get(), "iss");
  if (!issuer.empty() && (iss == nullptr || issuer != iss)) {
    return Unauthenticated(absl::StrCat("issuer must be '", issuer, "'"));
  }
  std::vector<std::string> audiences = StringOrArrayClaim(jwt.get(), "aud");
  if (std::find(audiences.begin(), audiences.end(), audience) == audiences.end()) {
    return Unauthenticated(absl::StrCat("audience must include '", audience, "'"));
  }
  Principal principal;
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  const char* org = jwt_get_grant(jwt.get(), "org");
  if (sub == nullptr || *sub == '\0') return Unauthenticated("no 'sub' claim");
  if (org == nullptr || *org == '\0') return Unauthenticated("no 'org' claim");
  if (!ValidOrgId(org)) return Unauthenticated("'org' must be 1..128 characters of [A-Za-z0-9._-]");
  principal.subject = sub;
  principal.org = org;
  absl::StatusOr<uint32_t> roles =
      ParseRoles(StringOrArrayClaim(jwt.get(), "roles"), is_service_key);
  if (!roles.ok()) return roles.status();
  principal.roles = *roles;
  if (principal.roles == 0) return Unauthenticated("no known role in 'roles'");
  return principal;
}

// Why `config` cannot verify tokens, or OK.
absl::Status CheckConfig(const JwtConfig& config) {
  if (config.algorithm != "HS256" && config.algorithm != "RS256") {
    return absl::FailedPreconditionError(
        absl::StrCat("JWT algorithm '", config.algorithm, "' is not HS256 or RS256"));
  }
  if (config.key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no ", config.algorithm == "RS256" ? "public key" : "secret",
                     " configured (JWT_KEY or JWT_KEY_FILE)"));
  }
  if (config.algorithm == "RS256") {
    BIO* bio = BIO_new_mem_buf(config.key.data(), static_cast<int>(config.key.size()));
    EVP_PKEY* pkey = bio == nullptr ? nullptr : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    bool rsa = pkey != nullptr && EVP_PKEY_base_id(pkey) == EVP_PKEY_RSA;
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    if (!rsa) {
      return absl::FailedPreconditionError(
          "the RS256 key is not a PEM RSA public key (-----BEGIN PUBLIC KEY-----)");
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ValidOrgId(absl::string_view org) {
  if (org.empty() || org.size() > 128) return false;
  for (char c : org) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Authenticator::Authenticator(JwtConfig config)
    : config_(std::move(config)),
      config_status_(CheckConfig(config_)),
      cache_(std::make_shared<VerifiedTokenCache>()) {
  if (!config_status_.ok()) {
    log::Error(absl::StrCat("auth: every token will be refused: ", config_status_.message()));
  }
}

absl::StatusOr<Principal> Authenticator::Verify(absl::string_view token, absl::Time now) const {
  if (token.empty()) return absl::UnauthenticatedError("missing bearer token");
  if (!config_status_.ok()) {
    return absl::UnauthenticatedError("this server cannot verify tokens (misconfigured)");
  }
  if (token.size() > 8192) return Unauthenticated("longer than 8192 bytes");
  if (std::optional<Principal> cached = cache_->Find(token, now)) return *std::move(cached);
  jwt_alg_t alg = config_.algorithm == "RS256" ? JWT_ALG_RS256 : JWT_ALG_HS256;
  std::pair<absl::Time, absl::Time> validity;
  absl::StatusOr<Principal> person =
      Decode(token, alg, config_.key, config_.issuer, config_.audience, false, now, &validity);
  if (person.ok()) {
    cache_->Insert(token, *person, validity);
    return person;
  }
  if (config_.service_secret.empty()) return person;
  absl::StatusOr<Principal> service =
      Decode(token, JWT_ALG_HS256, config_.service_secret, config_.issuer, kServiceAudience, true,
             now, &validity);
  if (service.ok()) {
    cache_->Insert(token, *service, validity);
    return service;
  }
  return person.status();
}

std::optional<Principal> VerifiedTokenCache::Find(absl::string_view token, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return std::nullopt;
  // Outside its validity the token is decoded again, which says why it fails.
  if (now >= it->second.not_after || it->second.not_before > now + absl::Minutes(1)) {
    return std::nullopt;
  }
  return it->second.principal;
}

void VerifiedTokenCache::Insert(absl::string_view token, const Principal& principal,
                                std::pair<absl::Time, absl::Time> validity) {
  absl::MutexLock lock(&mu_);
  // Bounded: starting over is cheap (one signature check per token).
  if (entries_.size() >= max_entries_) entries_.clear();
  entries_[token] = Entry{principal, validity.first, validity.second};
}

absl::StatusOr<absl::string_view> Authenticator::BearerToken(
    const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  }
  if (metadata.count("authorization") > 1) {
    return absl::UnauthenticatedError("more than one 'authorization' metadata entry");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWithIgnoreCase(value, "Bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
  }
  return value.substr(7);
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    const grpc::ServerContextBase& context) const {
  absl::StatusOr<absl::string_view> token = BearerToken(context);
  if (!token.ok()) return token.status();
  return Verify(*token, absl::Now());
}

absl::StatusOr<std::string> MintHs256(const TokenRequest& request, absl::string_view secret,
                                      absl::Time now) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::InternalError("jwt_new failed");
  JwtPtr jwt(raw);
  std::string key(secret);
  int rc = jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(key.data()),
                       static_cast<int>(key.size()));
  rc |= jwt_add_grant(jwt.get(), "sub", request.subject.c_str());
  rc |= jwt_add_grant(jwt.get(), "org", request.org.c_str());
  rc |= jwt_add_grant(jwt.get(), "iss", request.issuer.c_str());
  rc |= jwt_add_grant(jwt.get(), "aud", request.audience.c_str());
  rc |= jwt_add_grant_int(jwt.get(), "iat", absl::ToUnixSeconds(now));
  rc |= jwt_add_grant_int(jwt.get(), "exp", absl::ToUnixSeconds(now + request.ttl));
  google::protobuf::ListValue roles;
  for (const std::string& role : request.roles) roles.add_values()->set_string_value(role);
  std::string roles_json;
  google::protobuf::Struct wrapper;
  (*wrapper.mutable_fields())["roles"].mutable_list_value()->CopyFrom(roles);
  if (!google::protobuf::util::MessageToJsonString(wrapper, &roles_json).ok()) {
    return absl::InternalError("cannot encode roles");
  }
  rc |= jwt_add_grants_json(jwt.get(), roles_json.c_str());
  if (rc != 0) return absl::InternalError("cannot build token");
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return absl::InternalError("cannot sign token");
  std::string token(encoded);
  free(encoded);
  return token;
}

absl::StatusOr<std::string> MintServiceToken(absl::string_view service_name,
                                             absl::string_view org, absl::string_view secret,
                                             absl::Time now) {
  TokenRequest request;
  request.subject = std::string(service_name);
  request.org = std::string(org);
  request.roles = {"service"};
  request.audience = kServiceAudience;
  request.ttl = kServiceTokenTtl;
  return MintHs256(request, secret, now);
}

JwtConfig JwtConfigFromEnvironment() {
  JwtConfig config;
  config.algorithm = config::EnvOr("JWT_ALGORITHM", "HS256");
  std::string key_file = config::EnvOr("JWT_KEY_FILE", "");
  if (!key_file.empty()) {
    std::ifstream in(key_file);
    std::stringstream buffer;
    buffer << in.rdbuf();
    config.key = in ? buffer.str() : "";
    if (config.key.empty()) log::Error(absl::StrCat("auth: cannot read JWT_KEY_FILE ", key_file));
  } else {
    config.key = config::EnvOr("JWT_KEY", kDevJwtSecret);
  }
  config.issuer = config::EnvOr("JWT_ISSUER", config.issuer);
  config.audience = config::EnvOr("JWT_AUDIENCE", config.audience);
  // The development service secret is in the source: never in production.
  config.service_secret = config::EnvOr(
      "SERVICE_TOKEN_SECRET", config.algorithm == "RS256" ? "" : kDevServiceSecret);
  if (config.service_secret.empty()) {
    log::Error("auth: SERVICE_TOKEN_SECRET is not set: service identity is off");
  }
  return config;
}

}  // namespace common::auth
