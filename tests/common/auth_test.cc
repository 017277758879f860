#include "common/auth/auth.h"

#include <fstream>
#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace common::auth {
namespace {

JwtConfig DevConfig() {
  JwtConfig config;
  config.key = kDevJwtSecret;
  config.service_secret = kDevServiceSecret;
  return config;
}

TokenRequest Member() {
  TokenRequest request;
  request.subject = "alice";
  request.org = "acme";
  request.roles = {"member"};
  return request;
}

TEST(AuthTest, ValidTokenYieldsSubjectOrgAndRoles) {
  Authenticator auth(DevConfig());
  TokenRequest request = Member();
  request.roles = {"member", "admin"};
  auto principal = auth.Verify(*MintHs256(request, kDevJwtSecret, absl::Now()), absl::Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "alice");
  EXPECT_EQ(principal->org, "acme");
  EXPECT_TRUE(principal->is_admin());
  EXPECT_FALSE(principal->is_service());
}

TEST(AuthTest, RejectsWrongSignatureExpiryAudienceAndIssuer) {
  Authenticator auth(DevConfig());
  absl::Time now = absl::Now();
  auto expect_rejected = [&](const std::string& token) {
    auto principal = auth.Verify(token, now);
    ASSERT_FALSE(principal.ok());
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
  };
  expect_rejected(*MintHs256(Member(), "another-secret", now));
  TokenRequest expired = Member();
  expired.ttl = absl::Seconds(1);
  expect_rejected(*MintHs256(expired, kDevJwtSecret, now - absl::Minutes(1)));
  TokenRequest audience = Member();
  audience.audience = "someone-else";
  expect_rejected(*MintHs256(audience, kDevJwtSecret, now));
  TokenRequest issuer = Member();
  issuer.issuer = "evil";
  expect_rejected(*MintHs256(issuer, kDevJwtSecret, now));
  expect_rejected("not-a-token");
  expect_rejected("");
}

TEST(AuthTest, VerifiedTokenIsRefusedOnceExpiredEvenAfterItWasCached) {
  Authenticator auth(DevConfig());
  absl::Time issued = absl::Now();
  TokenRequest request = Member();
  request.ttl = absl::Minutes(10);
  std::string token = *MintHs256(request, kDevJwtSecret, issued);
  ASSERT_TRUE(auth.Verify(token, issued).ok());
  ASSERT_TRUE(auth.Verify(token, issued + absl::Minutes(9)).ok());  // from the cache
  auto late = auth.Verify(token, issued + absl::Minutes(11));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(late.status().message().find("expired"), std::string::npos) << late.status();
}

TEST(AuthTest, CopiesShareTheCacheButATamperedTokenIsStillChecked) {
  Authenticator auth(DevConfig());
  Authenticator copy = auth;
  std::string token = *MintHs256(Member(), kDevJwtSecret, absl::Now());
  ASSERT_TRUE(auth.Verify(token, absl::Now()).ok());
  ASSERT_TRUE(copy.Verify(token, absl::Now()).ok());
  std::string tampered = token;
  char& in_signature = tampered[tampered.size() - 5];  // not the last char's padding bits
  in_signature = in_signature == 'A' ? 'B' : 'A';
  EXPECT_EQ(copy.Verify(tampered, absl::Now()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, PersonTokenCannotClaimServiceRole) {
  Authenticator auth(DevConfig());
  TokenRequest forged = Member();
  forged.roles = {"service"};
  auto principal = auth.Verify(*MintHs256(forged, kDevJwtSecret, absl::Now()), absl::Now());
  ASSERT_FALSE(principal.ok());
  EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthTest, ServiceTokenSignedWithServiceSecretIsAService) {
  Authenticator auth(DevConfig());
  auto token = MintServiceToken("kudos", "acme", kDevServiceSecret, absl::Now());
  auto principal = auth.Verify(*token, absl::Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_TRUE(principal->is_service());
  EXPECT_EQ(principal->org, "acme");
}

// ---- RS256, algorithm confusion, "none", misconfiguration --------------------

namespace rs256 {

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

// A fresh RSA key from OpenSSL, as PEM.
KeyPair GenerateRsaKey() {
  EVP_PKEY* pkey = EVP_RSA_gen(2048);
  if (pkey == nullptr) throw std::runtime_error("EVP_RSA_gen failed");
  auto to_pem = [&](bool private_key) {
    BIO* bio = BIO_new(BIO_s_mem());
    int ok = private_key
                 ? PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr)
                 : PEM_write_bio_PUBKEY(bio, pkey);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string pem = ok == 1 ? std::string(data, size) : "";
    BIO_free(bio);
    return pem;
  };
  KeyPair pair{to_pem(true), to_pem(false)};
  EVP_PKEY_free(pkey);
  if (pair.private_pem.empty() || pair.public_pem.empty()) throw std::runtime_error("PEM failed");
  return pair;
}

// Signs the claims of `request` with libjwt directly (not through auth.cc),
// with any algorithm and key.
std::string SignWithLibjwt(const TokenRequest& request, jwt_alg_t alg, const std::string& key,
                           absl::Time now) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grant(jwt, "sub", request.subject.c_str()), 0);
  EXPECT_EQ(jwt_add_grant(jwt, "org", request.org.c_str()), 0);
  EXPECT_EQ(jwt_add_grant(jwt, "iss", request.issuer.c_str()), 0);
  EXPECT_EQ(jwt_add_grant(jwt, "aud", request.audience.c_str()), 0);
  EXPECT_EQ(jwt_add_grant_int(jwt, "exp", absl::ToUnixSeconds(now + request.ttl)), 0);
  std::string roles = "{\"roles\":[";
  for (size_t i = 0; i < request.roles.size(); ++i) {
    roles += (i ? ",\"" : "\"") + request.roles[i] + "\"";
  }
  roles += "]}";
  EXPECT_EQ(jwt_add_grants_json(jwt, roles.c_str()), 0);
  EXPECT_EQ(jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded == nullptr ? "" : encoded;
  free(encoded);
  jwt_free(jwt);
  EXPECT_FALSE(token.empty());
  return token;
}

std::string Base64Url(const std::string& text) {
  std::string out;
  absl::WebSafeBase64Escape(text, &out);
  return out;
}

std::string Claims(const TokenRequest& request, absl::Time now) {
  return absl::StrCat("{\"sub\":\"", request.subject, "\",\"org\":\"", request.org,
                      "\",\"iss\":\"", request.issuer, "\",\"aud\":\"", request.audience,
                      "\",\"exp\":", absl::ToUnixSeconds(now + request.ttl),
                      ",\"roles\":[\"admin\"]}");
}

// An HS256 token computed with OpenSSL's HMAC, for keys libjwt refuses.
std::string HmacTokenByHand(const TokenRequest& request, const std::string& key, absl::Time now) {
  std::string signing_input = Base64Url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." +
                              Base64Url(Claims(request, now));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  static const unsigned char kEmpty = 0;
  HMAC(EVP_sha256(), key.empty() ? static_cast<const void*>(&kEmpty) : key.data(),
       static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_size);
  return signing_input + "." + Base64Url(std::string(reinterpret_cast<char*>(mac), mac_size));
}

// {"alg":"none"} with valid claims and no signature.
std::string UnsignedToken(const TokenRequest& request, absl::Time now) {
  return Base64Url("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." +
         Base64Url(Claims(request, now)) + ".";
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
      if (it->second) setenv(it->first, it->second->c_str(), 1);
      else unsetenv(it->first);
    }
  }

 private:
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

std::string WriteTempFile(const std::string& contents) {
  char path[] = "/tmp/kudos-auth-test-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  if (write(fd, contents.data(), contents.size()) != static_cast<ssize_t>(contents.size())) {
    throw std::runtime_error("write failed");
  }
  close(fd);
  return path;
}

class Rs256Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_ = new KeyPair(GenerateRsaKey());
    other_keys_ = new KeyPair(GenerateRsaKey());
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete other_keys_;
  }
  void SetUp() override {
    key_file_ = WriteTempFile(keys_->public_pem);
    env_.Set(kDevInsecureDefaultsEnv, "0");
    env_.Set("JWT_ALGORITHM", "RS256");
    env_.Set("JWT_KEY_FILE", key_file_);
    env_.Set("SERVICE_TOKEN_SECRET", kServiceSecret);
  }
  static JwtConfig Load() {
    absl::StatusOr<JwtConfig> config = LoadJwtConfig();
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : JwtConfig();
  }
  void TearDown() override { unlink(key_file_.c_str()); }

  void ExpectRefused(const Authenticator& auth, const std::string& token, absl::string_view why) {
    auto principal = auth.Verify(token, absl::Now());
    ASSERT_FALSE(principal.ok()) << why;
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated) << why;
  }

  static constexpr char kServiceSecret[] = "rs256-test-service-secret-0123456789abc";
  static KeyPair* keys_;
  static KeyPair* other_keys_;
  std::string key_file_;
  ScopedEnv env_;
};
constexpr char Rs256Test::kServiceSecret[];
KeyPair* Rs256Test::keys_ = nullptr;
KeyPair* Rs256Test::other_keys_ = nullptr;

TEST_F(Rs256Test, TokenSignedWithThePrivateKeyVerifiesWithTheConfiguredPublicKeyFile) {
  JwtConfig config = Load();
  ASSERT_EQ(config.algorithm, "RS256");
  ASSERT_EQ(config.key, keys_->public_pem);
  Authenticator auth(config);
  ASSERT_TRUE(auth.config_status().ok()) << auth.config_status();
  TokenRequest request = Member();
  request.roles = {"member", "manager"};
  auto principal =
      auth.Verify(SignWithLibjwt(request, JWT_ALG_RS256, keys_->private_pem, absl::Now()),
                  absl::Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "alice");
  EXPECT_EQ(principal->org, "acme");
  EXPECT_TRUE(principal->Has(Role::kManager));
  EXPECT_FALSE(principal->is_admin());
}

TEST_F(Rs256Test, Hs256TokenIsRefusedWhenRs256IsConfigured) {
  Authenticator auth(Load());
  // The classic confusion: HMAC with the (public) PEM as the secret.
  ExpectRefused(auth, SignWithLibjwt(Member(), JWT_ALG_HS256, keys_->public_pem, absl::Now()),
                "HS256 keyed with the public key");
  ExpectRefused(auth, *MintHs256(Member(), kDevJwtSecret, absl::Now()),
                "HS256 with the development secret");
  ExpectRefused(auth, SignWithLibjwt(Member(), JWT_ALG_HS512, keys_->public_pem, absl::Now()),
                "HS512 keyed with the public key");
}

TEST_F(Rs256Test, RefusesOtherKeysNoneExpiryAudienceAndIssuer) {
  Authenticator auth(Load());
  absl::Time now = absl::Now();
  ExpectRefused(auth, SignWithLibjwt(Member(), JWT_ALG_RS256, other_keys_->private_pem, now),
                "another key pair");
  ExpectRefused(auth, SignWithLibjwt(Member(), JWT_ALG_RS512, keys_->private_pem, now),
                "RS512 with the right key");
  ExpectRefused(auth, UnsignedToken(Member(), now), "alg none");
  TokenRequest expired = Member();
  expired.ttl = absl::Seconds(1);
  ExpectRefused(auth, SignWithLibjwt(expired, JWT_ALG_RS256, keys_->private_pem,
                                     now - absl::Minutes(1)),
                "expired");
  TokenRequest audience = Member();
  audience.audience = "someone-else";
  ExpectRefused(auth, SignWithLibjwt(audience, JWT_ALG_RS256, keys_->private_pem, now),
                "audience");
  TokenRequest issuer = Member();
  issuer.issuer = "evil";
  ExpectRefused(auth, SignWithLibjwt(issuer, JWT_ALG_RS256, keys_->private_pem, now), "issuer");
  TokenRequest service = Member();
  service.roles = {"service"};
  ExpectRefused(auth, SignWithLibjwt(service, JWT_ALG_RS256, keys_->private_pem, now),
                "a person token claiming the service role");
}

TEST_F(Rs256Test, ServiceTokensStillUseTheServiceSecret) {
  Authenticator auth(Load());
  auto principal =
      auth.Verify(*MintServiceToken("kudos", "acme", kServiceSecret, absl::Now()), absl::Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_TRUE(principal->is_service());
  ExpectRefused(auth, *MintServiceToken("kudos", "acme", kDevServiceSecret, absl::Now()),
                "service token signed with the public development secret");
}

TEST_F(Rs256Test, ProductionRefusesToStartWithoutAServiceSecret) {
  unsetenv("SERVICE_TOKEN_SECRET");
  absl::StatusOr<JwtConfig> config = LoadJwtConfig();
  EXPECT_EQ(config.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(config.status().message().find("SERVICE_TOKEN_SECRET"), std::string::npos)
      << config.status();
}

TEST_F(Rs256Test, UnreadableOrInvalidKeyRefusesToStart) {
  env_.Set("JWT_KEY_FILE", "/nonexistent/key.pem");
  absl::StatusOr<JwtConfig> missing = LoadJwtConfig();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("JWT_KEY_FILE"), std::string::npos);
  // A private key, or a secret, where the public key belongs.
  env_.Set("JWT_KEY_FILE", "");
  env_.Set("JWT_KEY", "not a pem");
  EXPECT_EQ(LoadJwtConfig().status().code(), absl::StatusCode::kFailedPrecondition);
  // An Authenticator built from such a config anyway refuses every token.
  JwtConfig wrong;
  wrong.algorithm = "RS256";
  wrong.key = "not a pem";
  Authenticator garbage(wrong);
  EXPECT_FALSE(garbage.config_status().ok());
  ExpectRefused(garbage, SignWithLibjwt(Member(), JWT_ALG_HS256, "not a pem", absl::Now()),
                "HS256 keyed with the configured garbage");
}

// ---- finding 1: explicit secrets, or an explicit development start ----------

class SecretsFromEnvironmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"JWT_ALGORITHM", "JWT_KEY", "JWT_KEY_FILE", "SERVICE_TOKEN_SECRET",
                             "SERVICE_TOKEN_SECRET_FILE", kDevInsecureDefaultsEnv}) {
      env_.Set(name, "");
    }
  }
  ScopedEnv env_;
};

constexpr char kPrivateJwtKey[] = "private-jwt-key-0123456789abcdefghij";
constexpr char kPrivateServiceSecret[] = "private-service-secret-0123456789abcd";

TEST_F(SecretsFromEnvironmentTest, LoadJwtConfig_RefusesMissingKeysWithoutTheDevelopmentFlag) {
  absl::StatusOr<JwtConfig> none = LoadJwtConfig();
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("JWT_KEY"), std::string::npos) << none.status();
  // The case: JWT_KEY set, SERVICE_TOKEN_SECRET silently public.
  env_.Set("JWT_KEY", kPrivateJwtKey);
  absl::StatusOr<JwtConfig> no_service = LoadJwtConfig();
  EXPECT_EQ(no_service.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(no_service.status().message().find("SERVICE_TOKEN_SECRET"), std::string::npos)
      << no_service.status();
  env_.Set("SERVICE_TOKEN_SECRET", kPrivateServiceSecret);
  absl::StatusOr<JwtConfig> explicit_keys = LoadJwtConfig();
  ASSERT_TRUE(explicit_keys.ok()) << explicit_keys.status();
  EXPECT_EQ(explicit_keys->key, kPrivateJwtKey);
  EXPECT_EQ(explicit_keys->service_secret, kPrivateServiceSecret);
}

// A deployment mounts the service secret as a file (a Kubernetes Secret), so
// it never shows in the process's environment; a trailing newline (`echo`)
// is not part of it. An unreadable file refuses to start, naming the path.
TEST_F(SecretsFromEnvironmentTest, ServiceSecretFile_IsReadWithoutItsTrailingNewline) {
  const std::string path = ::testing::TempDir() + "/service_secret";
  {
    std::ofstream out(path);
    out << kPrivateServiceSecret << "\n";
  }
  env_.Set("JWT_KEY", kPrivateJwtKey);
  env_.Set("SERVICE_TOKEN_SECRET_FILE", path);
  absl::StatusOr<JwtConfig> from_file = LoadJwtConfig();
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_file->service_secret, kPrivateServiceSecret);
  env_.Set("SERVICE_TOKEN_SECRET", kPrivateServiceSecret);
  absl::StatusOr<JwtConfig> both = LoadJwtConfig();
  EXPECT_EQ(both.status().code(), absl::StatusCode::kFailedPrecondition) << "ambiguous: both set";
  env_.Set("SERVICE_TOKEN_SECRET", "");
  env_.Set("SERVICE_TOKEN_SECRET_FILE", "/nonexistent/service_secret");
  absl::StatusOr<JwtConfig> missing = LoadJwtConfig();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("/nonexistent/service_secret"), std::string::npos)
      << missing.status();
}

TEST_F(SecretsFromEnvironmentTest, LoadJwtConfig_RefusesPublicShortOrSharedSecrets) {
  struct Case {
    const char* what;
    std::string jwt_key;
    std::string service_secret;
  };
  const std::vector<Case> cases = {
      {"service secret equal to JWT_KEY", kPrivateJwtKey, kPrivateJwtKey},
      {"public development JWT secret", kDevJwtSecret, kPrivateServiceSecret},
      {"public development service secret", kPrivateJwtKey, kDevServiceSecret},
      {"short JWT_KEY", "short", kPrivateServiceSecret},
      {"short service secret", kPrivateJwtKey, "short"},
  };
  for (const Case& c : cases) {
    env_.Set("JWT_KEY", c.jwt_key);
    env_.Set("SERVICE_TOKEN_SECRET", c.service_secret);
    EXPECT_EQ(LoadJwtConfig().status().code(), absl::StatusCode::kFailedPrecondition) << c.what;
  }
  // Even in development, a service secret equal to the JWT key is refused.
  env_.Set(kDevInsecureDefaultsEnv, "1");
  env_.Set("JWT_KEY", kPrivateJwtKey);
  env_.Set("SERVICE_TOKEN_SECRET", kPrivateJwtKey);
  EXPECT_EQ(LoadJwtConfig().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SecretsFromEnvironmentTest, DevelopmentFlag_FallsBackToThePublicSecretsOnlyWhenSetTo1) {
  env_.Set(kDevInsecureDefaultsEnv, "1");
  absl::StatusOr<JwtConfig> dev = LoadJwtConfig();
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->key, kDevJwtSecret);
  EXPECT_EQ(dev->service_secret, kDevServiceSecret);
  // Explicit keys win over the development fallback.
  env_.Set("SERVICE_TOKEN_SECRET", kPrivateServiceSecret);
  EXPECT_EQ(LoadJwtConfig()->service_secret, kPrivateServiceSecret);
  env_.Set(kDevInsecureDefaultsEnv, "yes");
  EXPECT_EQ(LoadJwtConfig().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AuthConfigTest, AuthenticatorWithTheServiceSecretEqualToTheKeyRefusesEveryToken) {
  JwtConfig config = DevConfig();
  config.service_secret = config.key;
  Authenticator auth(config);
  EXPECT_FALSE(auth.config_status().ok());
  EXPECT_EQ(auth.Verify(*MintServiceToken("kudos", "acme", config.key, absl::Now()), absl::Now())
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthConfigTest, EmptyHs256SecretRefusesTokensSignedWithAnEmptyKey) {
  JwtConfig config = DevConfig();
  config.key = "";
  Authenticator auth(config);
  EXPECT_FALSE(auth.config_status().ok());
  // libjwt will not sign with an empty key: do it by hand.
  auto principal = auth.Verify(HmacTokenByHand(Member(), "", absl::Now()), absl::Now());
  EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthConfigTest, HandMadeHmacTokenIsAcceptedWithTheRightSecret) {
  Authenticator auth(DevConfig());
  auto principal = auth.Verify(HmacTokenByHand(Member(), kDevJwtSecret, absl::Now()), absl::Now());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_TRUE(principal->is_admin());
}

TEST(AuthConfigTest, TokenNotValidYetIsRefused) {
  Authenticator auth(DevConfig());
  absl::Time now = absl::Now();
  jwt_t* jwt = nullptr;
  ASSERT_EQ(jwt_new(&jwt), 0);
  jwt_add_grant(jwt, "sub", "alice");
  jwt_add_grant(jwt, "org", "acme");
  jwt_add_grant(jwt, "iss", "kudos-platform");
  jwt_add_grant(jwt, "aud", "kudos-api");
  jwt_add_grant_int(jwt, "exp", absl::ToUnixSeconds(now + absl::Hours(2)));
  jwt_add_grant_int(jwt, "nbf", absl::ToUnixSeconds(now + absl::Hours(1)));
  jwt_add_grants_json(jwt, "{\"roles\":[\"member\"]}");
  std::string secret = kDevJwtSecret;
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
              static_cast<int>(secret.size()));
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded;
  free(encoded);
  jwt_free(jwt);
  EXPECT_EQ(auth.Verify(token, now).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(auth.Verify(token, now + absl::Minutes(61)).ok());
}

TEST(AuthConfigTest, UnsignedTokenIsRefusedUnderHs256) {
  Authenticator auth(DevConfig());
  auto principal = auth.Verify(UnsignedToken(Member(), absl::Now()), absl::Now());
  EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthConfigTest, OrgClaimThatCouldBreakAHashTagIsRefused) {
  Authenticator auth(DevConfig());
  for (const char* org : {"a}b", "{acme}", "ac me", "acme:x", "x\xc3\xa9"}) {
    TokenRequest request = Member();
    request.org = org;
    auto principal = auth.Verify(*MintHs256(request, kDevJwtSecret, absl::Now()), absl::Now());
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated) << org;
  }
  TokenRequest fine = Member();
  fine.org = "org-Some_Test.1";
  EXPECT_TRUE(auth.Verify(*MintHs256(fine, kDevJwtSecret, absl::Now()), absl::Now()).ok());
}

}  // namespace rs256
}  // namespace
}  // namespace common::auth
