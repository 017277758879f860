// Authentication: JWT bearer tokens from gRPC metadata ("authorization:
// Bearer <token>"). People carry tokens signed with the platform key
// (HS256 secret in development, RS256 public key in production); services
// carry tokens signed with a separate service secret, so no person's token
// can claim to be a service. The org always comes from the token.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/auth/ids.h"

namespace common::auth {

enum class Role : uint32_t {
  kMember = 1,
  kManager = 2,
  kAdmin = 4,
  kScreen = 8,
  kService = 16,  // only from tokens signed with the service secret
};

struct Principal {
  std::string subject;  // person id, or service name ("kudos")
  std::string org;
  uint32_t roles = 0;
  // The service acting for `subject` under a delegated token (RFC 8693
  // `act.sub`, e.g. "integrations"); empty when the subject acts itself.
  std::string actor = "";

  bool Has(Role role) const { return (roles & static_cast<uint32_t>(role)) != 0; }
  bool is_service() const { return Has(Role::kService); }
  bool is_admin() const { return Has(Role::kAdmin); }
  // Screens are read-only: they see boards and the feed, nothing personal.
  bool is_screen_only() const {
    return Has(Role::kScreen) && !Has(Role::kMember) && !Has(Role::kManager) &&
           !Has(Role::kAdmin) && !is_service();
  }
};

struct JwtConfig {
  // "HS256" (key = shared secret) or "RS256" (key = PEM public key).
  std::string algorithm = "HS256";
  std::string key;
  std::string issuer = "kudos-platform";
  std::string audience = "kudos-api";
  // HS256 secret that only services hold; empty disables service identity.
  std::string service_secret;
  // Person tokens whose `exp` lies further ahead are refused (env
  // JWT_MAX_TOKEN_LIFETIME_S): a leaked token is not valid for decades.
  absl::Duration max_token_lifetime = absl::Hours(24);
  // HS256 secret that signs delegated tokens (MintDelegatedToken) and nothing
  // else; only integrations (mints) and the services it calls (verify) hold
  // it, never the internet-facing gateway. Empty: delegation is off.
  std::string delegation_secret;
  // Services whose delegated tokens may act for people. Empty by default:
  // a process accepts delegated tokens only when configured for them
  // (LoadJwtConfig: {"integrations"} when DELEGATION_TOKEN_SECRET is set).
  std::vector<std::string> delegating_services;
};

inline constexpr char kServiceAudience[] = "kudos-internal";

// Tokens whose signature and claims were verified, with their validity, so
// a client's every call does not pay a signature check and JSON parse
// (profiled: most of a leaderboard read's CPU). Keyed by a SHA-256 of the
// token (32 bytes, whatever the token's size); bounded, the least recently
// used entry goes first, so a working set larger than the cache costs one
// signature check per miss instead of a cold cache for everyone.
class VerifiedTokenCache {
 public:
  explicit VerifiedTokenCache(size_t max_entries = 20000) : max_entries_(max_entries) {}
  std::optional<Principal> Find(absl::string_view token, absl::Time now);
  // `validity`: [nbf, exp) of the token.
  void Insert(absl::string_view token, const Principal& principal,
              std::pair<absl::Time, absl::Time> validity);
  size_t size();

 private:
  struct Entry {
    std::string key;
    Principal principal;
    absl::Time not_before;
    absl::Time not_after;
  };
  using Lru = std::list<Entry>;  // most recently used first
  const size_t max_entries_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
};

class Authenticator {
 public:
  // A config that cannot verify anything (no key, an RS256 key that is not
  // a PEM public key) is logged and fails closed: every token is refused.
  explicit Authenticator(JwtConfig config);

  // UNAUTHENTICATED with a reason when the token is missing or invalid.
  absl::StatusOr<Principal> Verify(absl::string_view token, absl::Time now) const;
  // Any server context: sync (grpc::ServerContext) and callback
  // (grpc::CallbackServerContext). Handlers usually go through a Guard
  // (common/auth/guard.h), which also applies the rate limits.
  absl::StatusOr<Principal> Authenticate(const grpc::ServerContextBase& context) const;

  // The token of "authorization: Bearer <token>", or UNAUTHENTICATED.
  static absl::StatusOr<absl::string_view> BearerToken(const grpc::ServerContextBase& context);

  const JwtConfig& config() const { return config_; }
  // OK, or why every token is refused.
  const absl::Status& config_status() const { return config_status_; }

 private:
  JwtConfig config_;
  absl::Status config_status_;
  // Shared by copies of this Authenticator (guards copy it).
  std::shared_ptr<VerifiedTokenCache> cache_;
};

struct TokenRequest {
  std::string subject;
  std::string org;
  std::vector<std::string> roles;  // "member", "manager", "admin", "screen", "service"
  std::string issuer = "kudos-platform";
  std::string audience = "kudos-api";
  absl::Duration ttl = absl::Hours(12);
};

// Signs an HS256 token (development tokens, service identity, tests).
absl::StatusOr<std::string> MintHs256(const TokenRequest& request, absl::string_view secret,
                                      absl::Time now);

// How long a service token is valid.
inline constexpr absl::Duration kServiceTokenTtl = absl::Minutes(5);

// A service-identity token for calls between services, for one org.
absl::StatusOr<std::string> MintServiceToken(absl::string_view service_name,
                                             absl::string_view org, absl::string_view secret,
                                             absl::Time now);

// Delegated tokens: a service acting for a person of an org (the Slack app
// sends a kudos as the mapped giver; SCIM writes the directory as an admin).
// Signed with the delegation secret (never the service secret, which every
// service including the gateway holds), audience kServiceAudience, `sub` = the
// person (or an admin actor id), roles = exactly the delegated ones (member
// and/or admin, never service), and RFC 8693's `act: {"sub": service}`. The
// Authenticator accepts one only when it is signed with
// JwtConfig::delegation_secret and `act.sub` is in
// JwtConfig::delegating_services, and yields a person Principal with `actor`
// set; a person-key or service-secret token carrying `act` is refused.
inline constexpr absl::Duration kDelegatedTokenTtl = absl::Minutes(2);

// INVALID_ARGUMENT when an id breaks the id rule or `roles` is empty or
// names anything but "member" and "admin"; FAILED_PRECONDITION
// "delegation disabled: ..." when `secret` is empty.
absl::StatusOr<std::string> MintDelegatedToken(absl::string_view service_name,
                                               absl::string_view org, absl::string_view subject,
                                               const std::vector<std::string>& roles,
                                               absl::string_view secret, absl::Time now);

// The environment variable that allows the public development secrets
// below: "1" = allowed (start.sh, the test harness, bench), unset or "0" =
// production (explicit keys required); anything else is refused.
inline constexpr char kDevInsecureDefaultsEnv[] = "KUDOS_DEV_INSECURE_DEFAULTS";
// Shortest HS256 secret accepted outside development (RFC 7518 3.2: at least
// the hash's size).
inline constexpr size_t kMinSecretBytes = 32;

// Reads a JwtConfig from the environment: JWT_ALGORITHM, JWT_KEY (or
// JWT_KEY_FILE), JWT_ISSUER, JWT_AUDIENCE, SERVICE_TOKEN_SECRET (or
// SERVICE_TOKEN_SECRET_FILE), DELEGATION_TOKEN_SECRET (or
// DELEGATION_TOKEN_SECRET_FILE; optional: unset = delegation off, set =
// delegating_services {"integrations"}), JWT_MAX_TOKEN_LIFETIME_S.
// FAILED_PRECONDITION naming what to set when
// the key or the service secret is missing (unless KUDOS_DEV_INSECURE_DEFAULTS=1,
// which falls back to the public development secrets), unreadable, too
// short or public, or when the service secret equals the JWT key (likewise
// a set delegation secret: long, private, equal to neither).
absl::StatusOr<JwtConfig> LoadJwtConfig();

// For main(): LoadJwtConfig(), or logs why and exits the process with
// status 2, so no service ever runs on secrets anyone can read. Logs loudly
// when the development secrets are in use.
JwtConfig JwtConfigFromEnvironment();

// Development defaults: public (they are in this source), accepted only with
// KUDOS_DEV_INSECURE_DEFAULTS=1.
inline constexpr char kDevJwtSecret[] = "dev-only-jwt-secret-change-me";
inline constexpr char kDevServiceSecret[] = "dev-only-service-secret-change-me";
inline constexpr char kDevDelegationSecret[] = "dev-only-delegation-secret-change-me";

}  // namespace common::auth
