// What a verified token may say (issue #12 findings 1, 10, 13): service
// tokens are services only, times are numbers and bounded, subject and org
// follow the platform's one id rule, and the verified-token cache evicts the
// least recently used entry instead of starting over.
#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"

namespace common::auth {
namespace {

constexpr char kKey[] = "token-rules-test-jwt-key-0123456789abcdef";
constexpr char kServiceKey[] = "token-rules-test-service-key-0123456789ab";

JwtConfig Config() {
  JwtConfig config;
  config.key = kKey;
  config.service_secret = kServiceKey;
  return config;
}

constexpr char kDelegationKey[] = "token-rules-test-delegation-key-0123456789";

// A process configured for delegated tokens (kudos, ledger with
// DELEGATION_TOKEN_SECRET set).
JwtConfig DelegationConfig() {
  JwtConfig config = Config();
  config.delegation_secret = kDelegationKey;
  config.delegating_services = {"integrations"};
  return config;
}

// An HS256 token with exactly these claims (a JSON object), via libjwt.
std::string SignClaims(const std::string& claims_json, const std::string& key) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, claims_json.c_str()), 0) << claims_json;
  EXPECT_EQ(jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded == nullptr ? "" : encoded;
  free(encoded);
  jwt_free(jwt);
  return token;
}

// Person claims valid for an hour, with `extra` appended (e.g. ",\"nbf\":1").
std::string PersonClaims(absl::Time now, const std::string& extra = "",
                         const std::string& sub = "alice", const std::string& org = "acme") {
  return absl::StrCat("{\"sub\":\"", sub, "\",\"org\":\"", org,
                      "\",\"iss\":\"kudos-platform\",\"aud\":\"kudos-api\",\"exp\":",
                      absl::ToUnixSeconds(now + absl::Hours(1)), ",\"roles\":[\"member\"]", extra,
                      "}");
}

void ExpectRefused(const Authenticator& auth, const std::string& token, absl::Time now,
                   const std::string& why, const std::string& message_names = "") {
  absl::StatusOr<Principal> principal = auth.Verify(token, now);
  ASSERT_FALSE(principal.ok()) << why;
  EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated) << why;
  EXPECT_NE(principal.status().message().find(message_names), std::string::npos)
      << why << ": " << principal.status().message();
}

TEST(ServiceTokenTest, ServiceSignedToken_CarriesTheServiceRoleOnly) {
  Authenticator auth(Config());
  absl::Time now = absl::Now();
  for (const char* roles : {"[\"service\",\"admin\"]", "[\"admin\"]", "[\"service\",\"member\"]",
                            "[\"admin\",\"service\",\"screen\"]"}) {
    std::string claims = absl::StrCat(
        "{\"sub\":\"kudos\",\"org\":\"victim\",\"iss\":\"kudos-platform\","
        "\"aud\":\"kudos-internal\",\"exp\":",
        absl::ToUnixSeconds(now + absl::Minutes(5)), ",\"roles\":", roles, "}");
    ExpectRefused(auth, SignClaims(claims, kServiceKey), now, roles, "service");
  }
  absl::StatusOr<Principal> service =
      auth.Verify(*MintServiceToken("kudos", "victim", kServiceKey, now), now);
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_TRUE(service->is_service());
  EXPECT_FALSE(service->is_admin());
  EXPECT_EQ(service->roles, static_cast<uint32_t>(Role::kService));
}

TEST(ServiceTokenTest, PersonToken_NeverCarriesTheServiceRole) {
  Authenticator auth(Config());
  absl::Time now = absl::Now();
  std::string claims = absl::StrCat(
      "{\"sub\":\"alice\",\"org\":\"acme\",\"iss\":\"kudos-platform\",\"aud\":\"kudos-api\","
      "\"exp\":",
      absl::ToUnixSeconds(now + absl::Hours(1)), ",\"roles\":[\"member\",\"service\"]}");
  ExpectRefused(auth, SignClaims(claims, kKey), now, "person token with service", "service");
}

TEST(TokenTimesTest, StringNbf_IsRefusedNotIgnored) {
  Authenticator auth(Config());
  absl::Time now = absl::Now();
  std::string later = absl::StrCat(absl::ToUnixSeconds(now + absl::Hours(1)));
  ExpectRefused(auth, SignClaims(PersonClaims(now, ",\"nbf\":\"" + later + "\""), kKey), now,
                "string nbf", "'nbf'");
  ExpectRefused(auth, SignClaims(PersonClaims(now, ",\"nbf\":[1]"), kKey), now, "array nbf",
                "'nbf'");
  // A numeric nbf in the past is fine.
  std::string past = absl::StrCat(",\"nbf\":", absl::ToUnixSeconds(now - absl::Minutes(1)));
  EXPECT_TRUE(auth.Verify(SignClaims(PersonClaims(now, past), kKey), now).ok());
}

TEST(TokenTimesTest, ExpBeyondTheMaximumLifetime_IsRefused) {
  Authenticator auth(Config());  // the default maximum lifetime: 24 h
  absl::Time now = absl::Now();
  auto claims_with_exp = [&](const std::string& exp) {
    return absl::StrCat(
        "{\"sub\":\"alice\",\"org\":\"acme\",\"iss\":\"kudos-platform\",\"aud\":\"kudos-api\","
        "\"exp\":",
        exp, ",\"roles\":[\"member\"]}");
  };
  ExpectRefused(auth, SignClaims(claims_with_exp("1000000000000000000"), kKey), now, "exp 1e18",
                "'exp'");
  ExpectRefused(auth,
                SignClaims(claims_with_exp(absl::StrCat(absl::ToUnixSeconds(now + absl::Hours(25)))),
                           kKey),
                now, "25 h", "'exp'");
  ExpectRefused(auth, SignClaims(claims_with_exp("\"2099-01-01\""), kKey), now, "string exp",
                "'exp'");
  EXPECT_TRUE(auth.Verify(SignClaims(claims_with_exp(absl::StrCat(
                                         absl::ToUnixSeconds(now + absl::Hours(23)))),
                                     kKey),
                          now)
                  .ok());
  // Service tokens live minutes, not hours.
  std::string service_claims = absl::StrCat(
      "{\"sub\":\"kudos\",\"org\":\"acme\",\"iss\":\"kudos-platform\",\"aud\":\"kudos-internal\","
      "\"exp\":",
      absl::ToUnixSeconds(now + absl::Hours(1)), ",\"roles\":[\"service\"]}");
  ExpectRefused(auth, SignClaims(service_claims, kServiceKey), now, "1 h service token", "'exp'");
}

TEST(TokenIdsTest, SubjectAndOrg_FollowThePlatformsOneIdRule) {
  Authenticator auth(Config());
  absl::Time now = absl::Now();
  for (const std::string& sub :
       {std::string("a}b"), std::string("al ice"), std::string("{acme}"), std::string(65, 's'),
        std::string("x\xc3\xa9")}) {
    ExpectRefused(auth, SignClaims(PersonClaims(now, "", sub), kKey), now, "sub " + sub, "'sub'");
  }
  // Finding 10: 64 characters is the limit everywhere (auth used to allow
  // 128 while the leaderboard refused more than 64).
  ExpectRefused(auth, SignClaims(PersonClaims(now, "", "alice", std::string(65, 'o')), kKey), now,
                "65-character org", "'org'");
  EXPECT_TRUE(
      auth.Verify(SignClaims(PersonClaims(now, "", std::string(64, 's'), std::string(64, 'o')),
                             kKey),
                  now)
          .ok());
}

Principal Person(const std::string& subject) {
  return Principal{subject, "acme", static_cast<uint32_t>(Role::kMember)};
}

TEST(VerifiedTokenCacheTest, FullCache_EvictsTheLeastRecentlyUsedTokenOnly) {
  VerifiedTokenCache cache(2);
  absl::Time now = absl::Now();
  std::pair<absl::Time, absl::Time> validity = {absl::InfinitePast(), now + absl::Hours(1)};
  cache.Insert("token-a", Person("a"), validity);
  cache.Insert("token-b", Person("b"), validity);
  ASSERT_TRUE(cache.Find("token-a", now).has_value());  // a is now the most recent
  cache.Insert("token-c", Person("c"), validity);
  EXPECT_TRUE(cache.Find("token-a", now).has_value());
  EXPECT_FALSE(cache.Find("token-b", now).has_value());
  std::optional<Principal> c = cache.Find("token-c", now);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->subject, "c");
  // Re-inserting a cached token does not grow the cache past its bound.
  cache.Insert("token-c", Person("c"), validity);
  cache.Insert("token-d", Person("d"), validity);
  EXPECT_FALSE(cache.Find("token-a", now).has_value());
  EXPECT_TRUE(cache.Find("token-c", now).has_value());
  EXPECT_TRUE(cache.Find("token-d", now).has_value());
}

// Delegated tokens (issue 17): the integrations service acts for a person
// (Slack's slash command sends as the mapped giver; SCIM writes as an admin)
// with a short service-signed token carrying RFC 8693's `act` claim.
std::string DelegatedClaims(absl::Time now, const std::string& act_json,
                            const std::string& roles_json = "[\"member\"]",
                            const std::string& audience = "kudos-internal",
                            absl::Duration ttl = absl::Minutes(2)) {
  return absl::StrCat("{\"sub\":\"alice\",\"org\":\"acme\",\"iss\":\"kudos-platform\",\"aud\":\"",
                      audience, "\",\"exp\":", absl::ToUnixSeconds(now + ttl),
                      ",\"roles\":", roles_json, ",\"act\":", act_json, "}");
}

TEST(DelegatedTokenTest,
     DelegatedToken_ActsAsThePersonWithExactlyTheDelegatedRolesAndNamesTheActor) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  absl::StatusOr<std::string> member =
      MintDelegatedToken("integrations", "acme", "alice", {"member"}, kDelegationKey, now);
  ASSERT_TRUE(member.ok()) << member.status();
  for (int call = 0; call < 2; ++call) {  // the second call comes from the verified-token cache
    absl::StatusOr<Principal> principal = auth.Verify(*member, now);
    ASSERT_TRUE(principal.ok()) << principal.status();
    EXPECT_EQ(principal->subject, "alice");
    EXPECT_EQ(principal->org, "acme");
    EXPECT_EQ(principal->roles, static_cast<uint32_t>(Role::kMember));
    EXPECT_FALSE(principal->is_service());
    EXPECT_FALSE(principal->is_admin());
    EXPECT_EQ(principal->actor, "integrations");
  }
  absl::StatusOr<std::string> admin =
      MintDelegatedToken("integrations", "acme", "scim", {"admin"}, kDelegationKey, now);
  ASSERT_TRUE(admin.ok()) << admin.status();
  absl::StatusOr<Principal> principal = auth.Verify(*admin, now);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "scim");
  EXPECT_EQ(principal->roles, static_cast<uint32_t>(Role::kAdmin));
  EXPECT_EQ(principal->actor, "integrations");
}

TEST(DelegatedTokenTest, PlainServiceToken_StaysAServiceWithNoActor) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  absl::StatusOr<Principal> service =
      auth.Verify(*MintServiceToken("integrations", "acme", kServiceKey, now), now);
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_TRUE(service->is_service());
  EXPECT_EQ(service->roles, static_cast<uint32_t>(Role::kService));
  EXPECT_EQ(service->actor, "");
  // A person's token names no actor either.
  absl::StatusOr<Principal> person = auth.Verify(SignClaims(PersonClaims(now), kKey), now);
  ASSERT_TRUE(person.ok()) << person.status();
  EXPECT_EQ(person->actor, "");
}

TEST(DelegatedTokenTest, DelegatedTokenFromAServiceNotAllowedToDelegate_IsRefused) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  absl::StatusOr<std::string> from_kudos =
      MintDelegatedToken("kudos", "acme", "alice", {"member"}, kDelegationKey, now);
  ASSERT_TRUE(from_kudos.ok()) << from_kudos.status();
  ExpectRefused(auth, *from_kudos, now, "act.sub kudos", "may not act for people");
  ExpectRefused(auth,
                SignClaims(DelegatedClaims(now, "{\"sub\":\"integrationsX\"}"), kDelegationKey), now,
                "act.sub integrationsX", "may not act for people");
}

TEST(DelegatedTokenTest, DelegatedTokenWithTheServiceOrAnyOtherRole_IsRefused) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  const std::string act = "{\"sub\":\"integrations\"}";
  for (const char* roles : {"[\"service\"]", "[\"member\",\"service\"]", "[\"screen\"]",
                            "[\"manager\"]", "[\"admin\",\"owner\"]", "[]"}) {
    ExpectRefused(auth, SignClaims(DelegatedClaims(now, act, roles), kDelegationKey), now, roles,
                  "delegated");
  }
  // Minting refuses them too, before anything is signed.
  for (const std::vector<std::string>& roles :
       {std::vector<std::string>{"service"}, std::vector<std::string>{"member", "screen"},
        std::vector<std::string>{}}) {
    absl::StatusOr<std::string> token =
        MintDelegatedToken("integrations", "acme", "alice", roles, kDelegationKey, now);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(MintDelegatedToken("integrations", "acme", "a}b", {"member"}, kDelegationKey, now)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DelegatedTokenTest, PersonTokenWithAnActClaim_IsRefused) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  ExpectRefused(auth,
                SignClaims(PersonClaims(now, ",\"act\":{\"sub\":\"integrations\"}"), kKey), now,
                "person token with act", "'act'");
  // The same claims signed with the person key under the internal audience.
  ExpectRefused(auth, SignClaims(DelegatedClaims(now, "{\"sub\":\"integrations\"}"), kKey), now,
                "person key, internal audience", "");
}

TEST(DelegatedTokenTest, MalformedActClaim_IsRefused) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  for (const char* act : {"\"integrations\"", "{}", "{\"sub\":7}", "[\"integrations\"]",
                          "{\"sub\":\"integrations\",\"act\":{\"sub\":\"kudos\"}}"}) {
    ExpectRefused(auth, SignClaims(DelegatedClaims(now, act), kDelegationKey), now, act, "'act'");
  }
}

TEST(DelegatedTokenTest, DelegatedToken_LivesMinutesAndOnlyUnderTheInternalAudience) {
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  const std::string act = "{\"sub\":\"integrations\"}";
  ExpectRefused(auth,
                SignClaims(DelegatedClaims(now, act, "[\"member\"]", "kudos-internal",
                                           absl::Hours(1)),
                           kDelegationKey),
                now, "1 h delegated token", "'exp'");
  ExpectRefused(auth,
                SignClaims(DelegatedClaims(now, act, "[\"member\"]", "kudos-api"), kDelegationKey),
                now, "person audience", "audience");
  absl::StatusOr<std::string> token =
      MintDelegatedToken("integrations", "acme", "alice", {"member"}, kDelegationKey, now);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(auth.Verify(*token, now + kDelegatedTokenTtl - absl::Seconds(1)).ok());
  ExpectRefused(auth, *token, now + kDelegatedTokenTtl, "past its ttl", "expired");
  EXPECT_LE(kDelegatedTokenTtl, absl::Minutes(5));
}

TEST(DelegatedTokenTest, DelegatedTokenSignedWithTheServiceSecret_IsRefused) {
  // Every service (the internet-facing gateway included) holds the service
  // secret: a delegated token it signs must not act for anyone.
  Authenticator auth(DelegationConfig());
  absl::Time now = absl::Now();
  absl::StatusOr<std::string> admin =
      MintDelegatedToken("integrations", "acme", "mallory", {"admin"}, kServiceKey, now);
  ASSERT_TRUE(admin.ok()) << admin.status();
  ExpectRefused(auth, *admin, now, "admin delegated token signed with the service secret",
                "delegation secret");
  ExpectRefused(auth,
                SignClaims(DelegatedClaims(now, "{\"sub\":\"integrations\"}"), kServiceKey), now,
                "hand-made delegated token signed with the service secret", "delegation secret");
  // The delegation secret signs delegated tokens only, never a service.
  ExpectRefused(auth, *MintServiceToken("integrations", "acme", kDelegationKey, now), now,
                "service token signed with the delegation secret", "'act'");
}

TEST(DelegatedTokenTest, WithoutTheDelegationSecretConfigured_DelegatedTokensAreRefused) {
  absl::Time now = absl::Now();
  absl::StatusOr<std::string> member =
      MintDelegatedToken("integrations", "acme", "alice", {"member"}, kDelegationKey, now);
  ASSERT_TRUE(member.ok()) << member.status();
  // The default config: no delegation secret, no delegating services.
  JwtConfig defaults = Config();
  EXPECT_TRUE(defaults.delegation_secret.empty());
  EXPECT_TRUE(defaults.delegating_services.empty());
  ExpectRefused(Authenticator(defaults), *member, now, "no delegation configured");
  // The secret without a delegating service accepts nothing either.
  JwtConfig secret_only = Config();
  secret_only.delegation_secret = kDelegationKey;
  ExpectRefused(Authenticator(secret_only), *member, now, "no delegating services");
  // Minting without the secret says how to turn delegation on.
  absl::StatusOr<std::string> unsigned_token =
      MintDelegatedToken("integrations", "acme", "alice", {"member"}, "", now);
  EXPECT_EQ(unsigned_token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(unsigned_token.status().message().find(
                "delegation disabled: set DELEGATION_TOKEN_SECRET"),
            std::string::npos)
      << unsigned_token.status();
}

TEST(DelegatedTokenTest, GatewayLikeConfigWithoutDelegation_RefusesDelegatedTokens) {
  // The gateway holds the JWT key and the service secret, never the
  // delegation secret: whatever signs a delegated token, it is refused.
  Authenticator gateway(Config());
  absl::Time now = absl::Now();
  for (const char* key : {kKey, kServiceKey, kDelegationKey}) {
    absl::StatusOr<std::string> admin =
        MintDelegatedToken("integrations", "acme", "mallory", {"admin"}, key, now);
    ASSERT_TRUE(admin.ok()) << admin.status();
    ExpectRefused(gateway, *admin, now, key);
  }
  EXPECT_TRUE(gateway.Verify(*MintServiceToken("gateway", "acme", kServiceKey, now), now).ok());
}

TEST(DelegatedTokenTest, DelegationSecretEqualToTheJwtKeyOrServiceSecret_FailsClosed) {
  for (const char* shared : {kKey, kServiceKey}) {
    JwtConfig config = DelegationConfig();
    config.delegation_secret = shared;
    Authenticator auth(config);
    EXPECT_EQ(auth.config_status().code(), absl::StatusCode::kFailedPrecondition) << shared;
  }
}

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  void Set(const char* name, const std::string& value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first, it->second->c_str(), 1);
      } else {
        unsetenv(it->first);
      }
    }
  }

 private:
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST(DelegatedTokenTest, LoadJwtConfig_TurnsDelegationOnOnlyWithTheDelegationSecret) {
  ScopedEnv env;
  env.Set("JWT_ALGORITHM", "HS256");
  env.Set("JWT_KEY", kKey);
  env.Set("JWT_KEY_FILE", "");
  env.Set("SERVICE_TOKEN_SECRET", kServiceKey);
  env.Set("SERVICE_TOKEN_SECRET_FILE", "");
  env.Set("DELEGATION_TOKEN_SECRET", "");
  env.Set("DELEGATION_TOKEN_SECRET_FILE", "");
  env.Set(kDevInsecureDefaultsEnv, "0");
  // Production without the secret: delegation off (the gateway's case).
  absl::StatusOr<JwtConfig> off = LoadJwtConfig();
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->delegation_secret.empty());
  EXPECT_TRUE(off->delegating_services.empty());
  // With a private secret: integrations may delegate.
  env.Set("DELEGATION_TOKEN_SECRET", kDelegationKey);
  absl::StatusOr<JwtConfig> on = LoadJwtConfig();
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->delegation_secret, kDelegationKey);
  EXPECT_EQ(on->delegating_services, std::vector<std::string>{"integrations"});
  // Short, public, or shared with another key: refused at start.
  for (const char* bad : {"short", kDevDelegationSecret, kServiceKey, kKey}) {
    env.Set("DELEGATION_TOKEN_SECRET", bad);
    EXPECT_EQ(LoadJwtConfig().status().code(), absl::StatusCode::kFailedPrecondition) << bad;
  }
  // Development: the public development delegation secret (the test harness).
  env.Set("DELEGATION_TOKEN_SECRET", "");
  env.Set(kDevInsecureDefaultsEnv, "1");
  absl::StatusOr<JwtConfig> dev = LoadJwtConfig();
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->delegation_secret, kDevDelegationSecret);
  EXPECT_EQ(dev->delegating_services, std::vector<std::string>{"integrations"});
}

}  // namespace
}  // namespace common::auth
