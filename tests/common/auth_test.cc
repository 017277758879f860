#include "common/auth/auth.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace common::auth
