#include "common/auth/auth.h"

#include <errno.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <openssl/sha.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/config/secret_file.h"
#include "common/log/log.h"

namespace common::auth {
namespace {

// Clock skew tolerated between a token's issuer and us.
constexpr absl::Duration kClockLeeway = absl::Minutes(1);
// Services mint 5-minute tokens (kServiceTokenTtl); allow the skew on top.
const absl::Duration kMaxServiceTokenLifetime = kServiceTokenTtl + kClockLeeway;

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

// Roles of a person token: never "service" (only the service secret signs
// that); unknown names are ignored, they grant nothing.
absl::StatusOr<uint32_t> ParsePersonRoles(const std::vector<std::string>& names) {
  uint32_t roles = 0;
  for (const std::string& name : names) {
    if (name == "member") roles |= static_cast<uint32_t>(Role::kMember);
    else if (name == "manager") roles |= static_cast<uint32_t>(Role::kManager);
    else if (name == "admin") roles |= static_cast<uint32_t>(Role::kAdmin);
    else if (name == "screen") roles |= static_cast<uint32_t>(Role::kScreen);
    else if (name == "service") return Unauthenticated("role 'service' needs a service-signed token");
  }
  return roles;
}

// Roles of a service token: exactly "service". A service is never an admin
// (or member) of an org, whatever a token signed with its secret claims.
absl::StatusOr<uint32_t> ParseServiceRoles(const std::vector<std::string>& names) {
  if (names.size() != 1 || names[0] != "service") {
    return Unauthenticated("a service token carries the role 'service' and no other");
  }
  return static_cast<uint32_t>(Role::kService);
}

// Why `names` cannot be a delegated token's roles, or nullopt: one or more
// of member and admin, nothing else (a service never delegates the service
// role, nor screen or manager rights).
std::optional<std::string> DelegatedRolesProblem(const std::vector<std::string>& names) {
  if (names.empty()) return "a delegated token carries the role 'member' and/or 'admin'";
  for (const std::string& name : names) {
    if (name != "member" && name != "admin") {
      return absl::StrCat("a delegated token carries only the roles 'member' and 'admin', not '",
                          name.substr(0, 32), "'");
    }
  }
  return std::nullopt;
}

// A NumericDate claim: nullopt when absent, refused when it is not an
// integer (a string "nbf" must not be ignored).
absl::StatusOr<std::optional<absl::Time>> NumericDateClaim(jwt_t* jwt, const char* name) {
  // libjwt's jwt_get_grant_int reads a string or an array as 0 (so a string
  // "nbf" was ignored): read the claim's JSON and accept an integer only.
  char* json = jwt_get_grants_json(jwt, name);
  if (json == nullptr) return std::nullopt;
  int64_t seconds = 0;
  bool integer = absl::SimpleAtoi(json, &seconds);
  free(json);
  if (!integer) {
    return Unauthenticated(absl::StrCat("'", name, "' must be an integer number of seconds"));
  }
  return absl::FromUnixSeconds(seconds);
}

struct Expected {
  jwt_alg_t alg;
  const std::string& key;
  const std::string& issuer;
  const std::string& audience;
  bool service;                   // signed with the service or delegation secret
  bool delegation;                // signed with the delegation secret
  absl::Duration max_lifetime;    // exp at most now + this
  // Services whose `act` is accepted (delegation-secret tokens only).
  const std::vector<std::string>& delegating_services;
};

// `validity` receives [nbf, exp) for the verified-token cache.
absl::Status CheckTimes(jwt_t* jwt, const Expected& expected, absl::Time now,
                        std::pair<absl::Time, absl::Time>* validity) {
  absl::StatusOr<std::optional<absl::Time>> exp = NumericDateClaim(jwt, "exp");
  if (!exp.ok()) return exp.status();
  if (!exp->has_value()) return Unauthenticated("no 'exp' claim");
  if (**exp <= now) return Unauthenticated("expired");
  if (**exp > now + expected.max_lifetime) {
    return Unauthenticated(absl::StrCat("'exp' is more than ",
                                        absl::FormatDuration(expected.max_lifetime),
                                        " ahead (the longest lifetime accepted)"));
  }
  absl::StatusOr<std::optional<absl::Time>> nbf = NumericDateClaim(jwt, "nbf");
  if (!nbf.ok()) return nbf.status();
  // A minute of leeway for clock skew between issuer and us.
  if (nbf->has_value() && **nbf > now + kClockLeeway) {
    return Unauthenticated("not valid before its 'nbf'");
  }
  *validity = {nbf->value_or(absl::InfinitePast()), **exp};
  return absl::OkStatus();
}

absl::Status CheckIssuerAndAudience(jwt_t* jwt, const Expected& expected) {
  const char* iss = jwt_get_grant(jwt, "iss");
  if (!expected.issuer.empty() && (iss == nullptr || expected.issuer != iss)) {
    return Unauthenticated(absl::StrCat("issuer must be '", expected.issuer, "'"));
  }
  std::vector<std::string> audiences = StringOrArrayClaim(jwt, "aud");
  if (std::find(audiences.begin(), audiences.end(), expected.audience) == audiences.end()) {
    return Unauthenticated(absl::StrCat("audience must include '", expected.audience, "'"));
  }
  return absl::OkStatus();
}

// The `act` claim (RFC 8693 4.1): nullopt when absent, else the acting
// service's name; refused unless it is exactly {"sub": "<id>"} (no
// delegation chains, no other members).
absl::StatusOr<std::optional<std::string>> ActorClaim(jwt_t* jwt) {
  char* json = jwt_get_grants_json(jwt, "act");
  if (json == nullptr) return std::nullopt;
  google::protobuf::Value act;
  bool parsed = google::protobuf::util::JsonStringToMessage(json, &act).ok();
  free(json);
  const char kShape[] =
      "'act' must be {\"sub\": \"<service>\"} and nothing else (no delegation chain)";
  if (!parsed || act.kind_case() != google::protobuf::Value::kStructValue) {
    return Unauthenticated(kShape);
  }
  const auto& fields = act.struct_value().fields();
  auto sub = fields.find("sub");
  if (fields.size() != 1 || sub == fields.end() ||
      sub->second.kind_case() != google::protobuf::Value::kStringValue) {
    return Unauthenticated(kShape);
  }
  if (!ValidId(sub->second.string_value())) {
    return Unauthenticated(absl::StrCat("'act.sub' must be ", kIdRule));
  }
  return std::optional<std::string>(sub->second.string_value());
}

// Roles of a delegated token: exactly the delegated member/admin roles.
absl::StatusOr<uint32_t> ParseDelegatedRoles(const std::vector<std::string>& names) {
  if (std::optional<std::string> problem = DelegatedRolesProblem(names)) {
    return Unauthenticated(*problem);
  }
  uint32_t roles = 0;
  for (const std::string& name : names) {
    roles |= static_cast<uint32_t>(name == "admin" ? Role::kAdmin : Role::kMember);
  }
  return roles;
}

// The roles a token grants, by who signed it and whether it delegates;
// `actor` receives the acting service of a delegated token.
absl::StatusOr<uint32_t> ReadRoles(jwt_t* jwt, const Expected& expected, std::string* actor) {
  absl::StatusOr<std::optional<std::string>> act = ActorClaim(jwt);
  if (!act.ok()) return act.status();
  std::vector<std::string> names = StringOrArrayClaim(jwt, "roles");
  if (!expected.service) {
    if (act->has_value()) {
      return Unauthenticated(
          "a person token cannot carry 'act': only services delegate, with the service secret");
    }
    return ParsePersonRoles(names);
  }
  if (!expected.delegation) {
    if (act->has_value()) {
      return Unauthenticated(
          "a delegated token ('act') must be signed with the delegation secret "
          "(DELEGATION_TOKEN_SECRET), not the service secret");
    }
    return ParseServiceRoles(names);
  }
  if (!act->has_value()) {
    return Unauthenticated("a delegation-secret token must carry 'act' (only delegated tokens)");
  }
  const std::vector<std::string>& allowed = expected.delegating_services;
  if (std::find(allowed.begin(), allowed.end(), **act) == allowed.end()) {
    return Unauthenticated(absl::StrCat("service '", **act,
                                        "' may not act for people (delegated tokens are accepted "
                                        "from: ",
                                        absl::StrJoin(allowed, ", "), ")"));
  }
  *actor = **act;
  return ParseDelegatedRoles(names);
}

absl::StatusOr<Principal> ReadPrincipal(jwt_t* jwt, const Expected& expected) {
  const char* sub = jwt_get_grant(jwt, "sub");
  const char* org = jwt_get_grant(jwt, "org");
  if (sub == nullptr || *sub == '\0') return Unauthenticated("no 'sub' claim");
  if (!ValidId(sub)) return Unauthenticated(absl::StrCat("'sub' must be ", kIdRule));
  if (org == nullptr || *org == '\0') return Unauthenticated("no 'org' claim");
  if (!ValidOrgId(org)) return Unauthenticated(absl::StrCat("'org' must be ", kIdRule));
  std::string actor;
  absl::StatusOr<uint32_t> roles = ReadRoles(jwt, expected, &actor);
  if (!roles.ok()) return roles.status();
  if (*roles == 0) return Unauthenticated("no known role in 'roles'");
  Principal principal{sub, org, *roles, actor};
  const bool delegated = !actor.empty();
  KUDOS_CHECK(delegated == expected.delegation,
              "the delegation secret signs delegated tokens and nothing else");
  KUDOS_CHECK(principal.is_service() == (expected.service && !delegated),
              "the service role comes from an undelegated service-secret token only");
  KUDOS_CHECK(!principal.is_service() || principal.roles == static_cast<uint32_t>(Role::kService),
              "a service principal holds no other role");
  return principal;
}

// Decodes and checks signature, algorithm, times, issuer, audience, subject,
// org and roles. `signed_with_key` tells whether the signature matched.
absl::StatusOr<Principal> Decode(absl::string_view token, const Expected& expected,
                                 absl::Time now, std::pair<absl::Time, absl::Time>* validity,
                                 bool* signed_with_key) {
  *signed_with_key = false;
  jwt_t* raw = nullptr;
  std::string token_str(token);
  if (jwt_decode(&raw, token_str.c_str(), reinterpret_cast<const unsigned char*>(expected.key.data()),
                 static_cast<int>(expected.key.size())) != 0 ||
      raw == nullptr) {
    return Unauthenticated("signature or format rejected");
  }
  JwtPtr jwt(raw);
  // Refuse "none" and algorithm confusion: only the configured algorithm.
  if (jwt_get_alg(jwt.get()) != expected.alg) return Unauthenticated("unexpected algorithm");
  *signed_with_key = true;
  if (absl::Status times = CheckTimes(jwt.get(), expected, now, validity); !times.ok()) {
    return times;
  }
  if (absl::Status claims = CheckIssuerAndAudience(jwt.get(), expected); !claims.ok()) {
    return claims;
  }
  return ReadPrincipal(jwt.get(), expected);
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
  if (!config.service_secret.empty() && config.service_secret == config.key) {
    return absl::FailedPreconditionError(
        "SERVICE_TOKEN_SECRET equals the JWT key: anyone holding a person-token key could pose "
        "as a service; give services their own secret");
  }
  if (!config.delegation_secret.empty() && (config.delegation_secret == config.key ||
                                            config.delegation_secret == config.service_secret)) {
    return absl::FailedPreconditionError(
        "DELEGATION_TOKEN_SECRET equals the JWT key or SERVICE_TOKEN_SECRET: whoever holds that "
        "could act for any person; give delegation its own secret");
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
  std::pair<absl::Time, absl::Time> validity;
  Expected person_key{config_.algorithm == "RS256" ? JWT_ALG_RS256 : JWT_ALG_HS256, config_.key,
                      config_.issuer, config_.audience, false, false,
                      config_.max_token_lifetime, config_.delegating_services};
  bool person_signed = false;
  absl::StatusOr<Principal> person = Decode(token, person_key, now, &validity, &person_signed);
  if (person.ok()) {
    cache_->Insert(token, *person, validity);
    return person;
  }
  bool service_signed = false;
  absl::StatusOr<Principal> service = person;
  if (!config_.service_secret.empty()) {
    Expected service_key{JWT_ALG_HS256, config_.service_secret, config_.issuer, kServiceAudience,
                         true, false, kMaxServiceTokenLifetime, config_.delegating_services};
    service = Decode(token, service_key, now, &validity, &service_signed);
    if (service.ok()) {
      cache_->Insert(token, *service, validity);
      return service;
    }
  }
  // Delegated tokens only where configured (never the gateway).
  bool delegation_signed = false;
  absl::StatusOr<Principal> delegated = person;
  if (!config_.delegation_secret.empty() && !config_.delegating_services.empty()) {
    Expected delegation_key{JWT_ALG_HS256, config_.delegation_secret, config_.issuer,
                            kServiceAudience, true, true, kMaxServiceTokenLifetime,
                            config_.delegating_services};
    delegated = Decode(token, delegation_key, now, &validity, &delegation_signed);
    if (delegated.ok()) {
      cache_->Insert(token, *delegated, validity);
      return delegated;
    }
  }
  // A token signed with a secret this server holds says why it was refused;
  // any other token gets the person-key reason.
  KUDOS_CHECK(int{person_signed} + int{service_signed} + int{delegation_signed} <= 1,
              "the JWT key, service secret and delegation secret differ");
  if (delegation_signed) return delegated.status();
  return service_signed ? service.status() : person.status();
}

namespace {
std::string CacheKey(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}
}  // namespace

std::optional<Principal> VerifiedTokenCache::Find(absl::string_view token, absl::Time now) {
  std::string key = CacheKey(token);
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  const Entry& entry = *it->second;
  // Outside its validity the token is decoded again, which says why it fails.
  if (now >= entry.not_after || entry.not_before > now + kClockLeeway) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return entry.principal;
}

void VerifiedTokenCache::Insert(absl::string_view token, const Principal& principal,
                                std::pair<absl::Time, absl::Time> validity) {
  std::string key = CacheKey(token);
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (!lru_.empty() && lru_.size() >= max_entries_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, principal, validity.first, validity.second});
  index_[key] = lru_.begin();
  KUDOS_CHECK(index_.size() == lru_.size() && lru_.size() <= std::max<size_t>(max_entries_, 1),
              "the token cache's index and recency list hold the same bounded entries");
}

size_t VerifiedTokenCache::size() {
  absl::MutexLock lock(&mu_);
  return lru_.size();
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

namespace {

// `extra_claims`: a JSON object of further claims ("" for none).
absl::StatusOr<std::string> MintWithClaims(const TokenRequest& request,
                                           const std::string& extra_claims,
                                           absl::string_view secret, absl::Time now) {
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
  if (!extra_claims.empty()) rc |= jwt_add_grants_json(jwt.get(), extra_claims.c_str());
  if (rc != 0) return absl::InternalError("cannot build token");
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return absl::InternalError("cannot sign token");
  std::string token(encoded);
  free(encoded);
  return token;
}

}  // namespace

absl::StatusOr<std::string> MintHs256(const TokenRequest& request, absl::string_view secret,
                                      absl::Time now) {
  return MintWithClaims(request, "", secret, now);
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

absl::StatusOr<std::string> MintDelegatedToken(absl::string_view service_name,
                                               absl::string_view org, absl::string_view subject,
                                               const std::vector<std::string>& roles,
                                               absl::string_view secret, absl::Time now) {
  if (secret.empty()) {
    return absl::FailedPreconditionError(
        "delegation disabled: set DELEGATION_TOKEN_SECRET (or DELEGATION_TOKEN_SECRET_FILE) for "
        "integrations, kudos and ledger");
  }
  for (auto [field, id] : {std::pair<const char*, absl::string_view>{"service_name", service_name},
                           {"org", org},
                           {"subject", subject}}) {
    if (absl::Status s = CheckId(field, id); !s.ok()) return s;
  }
  if (std::optional<std::string> problem = DelegatedRolesProblem(roles)) {
    return absl::InvalidArgumentError(*problem);
  }
  TokenRequest request;
  request.subject = std::string(subject);
  request.org = std::string(org);
  request.roles = roles;
  request.audience = kServiceAudience;
  request.ttl = kDelegatedTokenTtl;
  // service_name follows the id rule: nothing to escape in the JSON.
  return MintWithClaims(request, absl::StrCat("{\"act\":{\"sub\":\"", service_name, "\"}}"),
                        secret, now);
}

namespace {

// Whether KUDOS_DEV_INSECURE_DEFAULTS allows the public development secrets.
absl::StatusOr<bool> DevInsecureDefaults() {
  std::string value = config::EnvOr(kDevInsecureDefaultsEnv, "0");
  if (value == "0" || value == "1") return value == "1";
  return absl::FailedPreconditionError(
      absl::StrCat(kDevInsecureDefaultsEnv, " must be 0 or 1 (1 = public development secrets)"));
}

// The variables naming each secret (and its file); spelled out so the chart
// test finds them (tests/deploy/chart_test.py).
constexpr char kServiceSecretEnv[] = "SERVICE_TOKEN_SECRET";
constexpr char kServiceSecretFileEnv[] = "SERVICE_TOKEN_SECRET_FILE";
constexpr char kDelegationSecretEnv[] = "DELEGATION_TOKEN_SECRET";
constexpr char kDelegationSecretFileEnv[] = "DELEGATION_TOKEN_SECRET_FILE";

// `name`, or the file `file_name` names (how a deployment mounts it from a
// Secret), without the file's trailing newline.
absl::StatusOr<std::string> SecretFromEnvironment(const char* name, const char* file_name) {
  std::string secret = config::EnvOr(name, "");
  const std::string path = config::EnvOr(file_name, "");
  if (path.empty()) return secret;
  if (!secret.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("both ", name, " and ", file_name, " are set: keep one"));
  }
  return config::ReadSecretFile(file_name, path, config::LineEnd::kStrip);
}

// Outside development an HS256 secret is long and not one of the public
// development secrets.
absl::Status CheckProductionSecret(const char* name, absl::string_view secret) {
  if (secret == kDevJwtSecret || secret == kDevServiceSecret || secret == kDevDelegationSecret) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, " is a public development secret; set a private one (or ", kDevInsecureDefaultsEnv,
        "=1 for local development only)"));
  }
  if (secret.size() < kMinSecretBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " must be at least ", kMinSecretBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status RequireExplicitSecrets(const JwtConfig& config) {
  if (config.key.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no JWT key: set JWT_KEY or JWT_KEY_FILE (or ", kDevInsecureDefaultsEnv,
        "=1 for the public development secrets, local development only)"));
  }
  if (config.service_secret.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no SERVICE_TOKEN_SECRET: set one that differs from the JWT key (or ",
        kDevInsecureDefaultsEnv, "=1 for local development only)"));
  }
  if (config.algorithm == "HS256") {
    if (absl::Status s = CheckProductionSecret("JWT_KEY", config.key); !s.ok()) return s;
  }
  if (!config.delegation_secret.empty()) {
    if (absl::Status s = CheckProductionSecret("DELEGATION_TOKEN_SECRET",
                                               config.delegation_secret);
        !s.ok()) {
      return s;
    }
  }
  return CheckProductionSecret("SERVICE_TOKEN_SECRET", config.service_secret);
}

}  // namespace

absl::StatusOr<JwtConfig> LoadJwtConfig() {
  absl::StatusOr<bool> dev = DevInsecureDefaults();
  if (!dev.ok()) return dev.status();
  JwtConfig config;
  config.algorithm = config::EnvOr("JWT_ALGORITHM", "HS256");
  std::string key_file = config::EnvOr("JWT_KEY_FILE", "");
  if (!key_file.empty()) {
    absl::StatusOr<std::string> key =
        config::ReadSecretFile("JWT_KEY_FILE", key_file, config::LineEnd::kKeep);
    if (!key.ok()) return key.status();
    config.key = *std::move(key);
  } else {
    config.key = config::EnvOr("JWT_KEY", "");
  }
  absl::StatusOr<std::string> service_secret =
      SecretFromEnvironment(kServiceSecretEnv, kServiceSecretFileEnv);
  if (!service_secret.ok()) return service_secret.status();
  config.service_secret = *std::move(service_secret);
  absl::StatusOr<std::string> delegation_secret =
      SecretFromEnvironment(kDelegationSecretEnv, kDelegationSecretFileEnv);
  if (!delegation_secret.ok()) return delegation_secret.status();
  config.delegation_secret = *std::move(delegation_secret);
  if (*dev && config.key.empty() && config.algorithm == "HS256") config.key = kDevJwtSecret;
  if (*dev && config.service_secret.empty()) config.service_secret = kDevServiceSecret;
  if (*dev && config.delegation_secret.empty()) config.delegation_secret = kDevDelegationSecret;
  // Only a process given the delegation secret accepts delegated tokens.
  if (!config.delegation_secret.empty()) config.delegating_services = {"integrations"};
  if (!*dev) {
    if (absl::Status s = RequireExplicitSecrets(config); !s.ok()) return s;
  }
  config.issuer = config::EnvOr("JWT_ISSUER", config.issuer);
  config.audience = config::EnvOr("JWT_AUDIENCE", config.audience);
  config.max_token_lifetime = absl::Seconds(config::IntEnvOr(
      "JWT_MAX_TOKEN_LIFETIME_S", absl::ToInt64Seconds(config.max_token_lifetime), 1));
  // Unusable keys (bad algorithm, bad PEM, service secret = JWT key).
  if (absl::Status s = CheckConfig(config); !s.ok()) return s;
  return config;
}

JwtConfig JwtConfigFromEnvironment() {
  absl::StatusOr<JwtConfig> config = LoadJwtConfig();
  if (!config.ok()) {
    log::Error(absl::StrCat("auth: refusing to start: ", config.status().message()));
    std::exit(2);
  }
  if (*DevInsecureDefaults()) {
    log::Warning(absl::StrCat(
        "auth: !!! ", kDevInsecureDefaultsEnv, "=1: DEVELOPMENT MODE. Unset keys fall back to the "
        "PUBLIC development secrets in the source: anyone can mint tokens for any org. Never "
        "run this in production !!!"));
  }
  return *std::move(config);
}

}  // namespace common::auth
