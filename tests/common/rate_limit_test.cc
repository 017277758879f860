#include "common/ratelimit/rate_limit.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/auth/guard.h"

namespace common::ratelimit {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

Options Small(double rps, int64_t burst) {
  Options options;
  options.per_person = {rps, burst};
  options.per_token = {0, 0};
  return options;
}

TEST(RateLimiterTest, BurstThenRefusedWithTheWaitUntilTheNextToken) {
  RateLimiter limiter(Small(10, 5));  // one token every 100 ms
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Acquire("acme", "alice", "", kStart).ok()) << i;
  absl::Status refused = limiter.Acquire("acme", "alice", "", kStart);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfterMillis(refused), 100) << refused;
  EXPECT_TRUE(absl::StartsWith(refused.message(), "rate limit: retry after 100 ms")) << refused;
  // Refused calls take nothing: the wait shrinks with time only.
  EXPECT_EQ(RetryAfterMillis(limiter.Acquire("acme", "alice", "", kStart + absl::Milliseconds(40))),
            60);
  EXPECT_FALSE(limiter.Acquire("acme", "alice", "", kStart + absl::Milliseconds(99)).ok());
  EXPECT_TRUE(limiter.Acquire("acme", "alice", "", kStart + absl::Milliseconds(100)).ok());
  EXPECT_FALSE(limiter.Acquire("acme", "alice", "", kStart + absl::Milliseconds(100)).ok());
  // A quiet second refills the whole burst.
  absl::Time later = kStart + absl::Seconds(2);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Acquire("acme", "alice", "", later).ok()) << i;
  EXPECT_FALSE(limiter.Acquire("acme", "alice", "", later).ok());
}

TEST(RateLimiterTest, SteadyRateIsAllowedForever) {
  RateLimiter limiter(Small(50, 1));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.Acquire("acme", "alice", "", kStart + absl::Milliseconds(20) * i).ok())
        << i;
  }
}

TEST(RateLimiterTest, PeopleAndOrgsHaveTheirOwnBuckets) {
  RateLimiter limiter(Small(1, 1));
  EXPECT_TRUE(limiter.Acquire("acme", "alice", "", kStart).ok());
  EXPECT_FALSE(limiter.Acquire("acme", "alice", "", kStart).ok());
  EXPECT_TRUE(limiter.Acquire("acme", "bob", "", kStart).ok());
  EXPECT_TRUE(limiter.Acquire("globex", "alice", "", kStart).ok());
  // No ambiguity between ("ab", "c") and ("a", "bc").
  EXPECT_TRUE(limiter.Acquire("ab", "c", "", kStart).ok());
  EXPECT_TRUE(limiter.Acquire("a", "bc", "", kStart).ok());
}

TEST(RateLimiterTest, PerTokenAndPerPersonBucketsAreChargedTogether) {
  Options options;
  options.per_person = {100, 10};
  options.per_token = {1, 2};
  RateLimiter limiter(options);
  EXPECT_TRUE(limiter.Acquire("acme", "alice", "t1", kStart).ok());
  EXPECT_TRUE(limiter.Acquire("acme", "alice", "t1", kStart).ok());
  absl::Status refused = limiter.Acquire("acme", "alice", "t1", kStart);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("this token"), absl::string_view::npos) << refused;
  // Her other tokens still work, and the refusal took nothing from her
  // person bucket (10): 2 + 4 * 2 calls pass.
  for (const char* token : {"t2", "t3", "t4", "t5"}) {
    EXPECT_TRUE(limiter.Acquire("acme", "alice", token, kStart).ok()) << token;
    EXPECT_TRUE(limiter.Acquire("acme", "alice", token, kStart).ok()) << token;
  }
  // Now her person bucket is empty whichever token she uses.
  absl::Status person = limiter.Acquire("acme", "alice", "t6", kStart);
  EXPECT_EQ(person.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(person.message().find("'alice'"), absl::string_view::npos) << person;
}

TEST(RateLimiterTest, ZeroRateMeansUnlimited) {
  Options options;
  options.per_person = {0, 0};
  options.per_token = {0, 0};
  RateLimiter limiter(options);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.Acquire("acme", "alice", "t", kStart).ok());
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(RateLimiterTest, IdleKeysAreForgottenSoMemoryStaysBounded) {
  Options options = Small(10, 2);
  options.max_keys = 100;
  RateLimiter limiter(options);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(limiter.Acquire("acme", "p" + std::to_string(i), "",
                                kStart + absl::Milliseconds(10) * i)
                    .ok());
    ASSERT_LE(limiter.size(), 100u);
  }
}

TEST(RateLimiterTest, RetryAfterMillisOnlyReadsRateLimitErrors) {
  EXPECT_EQ(RetryAfterMillis(absl::OkStatus()), -1);
  EXPECT_EQ(RetryAfterMillis(absl::ResourceExhaustedError("allowance exhausted")), -1);
  EXPECT_EQ(RetryAfterMillis(RateLimitedError(absl::Microseconds(1), "x")), 1);
  EXPECT_EQ(RetryAfterMillis(RateLimitedError(absl::Milliseconds(1500), "x")), 1500);
}

TEST(GuardTest, LimitsPeopleButNeverServices) {
  auth::JwtConfig config;
  config.key = auth::kDevJwtSecret;
  config.service_secret = auth::kDevServiceSecret;
  auth::Guard guard(auth::Authenticator(config), Small(1, 2));
  auth::TokenRequest request;
  request.subject = "alice";
  request.org = "acme";
  request.roles = {"member"};
  absl::Time now = absl::Now();
  std::string token = *auth::MintHs256(request, auth::kDevJwtSecret, now);
  EXPECT_TRUE(guard.Check(token, now).ok());
  EXPECT_TRUE(guard.Check(token, now).ok());
  EXPECT_EQ(guard.Check(token, now).status().code(), absl::StatusCode::kResourceExhausted);
  // A bad token is UNAUTHENTICATED, never charged, never RESOURCE_EXHAUSTED.
  EXPECT_EQ(guard.Check("garbage", now).status().code(), absl::StatusCode::kUnauthenticated);
  std::string service = *auth::MintServiceToken("kudos", "acme", auth::kDevServiceSecret, now);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(guard.Check(service, now).ok()) << i;
  // Copies share the limiter.
  auth::Guard copy = guard;
  EXPECT_EQ(copy.Check(token, now).status().code(), absl::StatusCode::kResourceExhausted);
  auth::Guard unlimited{auth::Authenticator(config)};
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(unlimited.Check(token, now).ok()) << i;
}

}  // namespace
}  // namespace common::ratelimit

namespace common::ratelimit {
namespace {

TEST(StreamSlotsTest, CapsOpenStreamsPerPersonAndReleasesOnDestruction) {
  StreamSlots slots(2);
  auto first = slots.Open("acme", "alice");
  auto second = slots.Open("acme", "alice");
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = slots.Open("acme", "alice");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(slots.Open("acme", "bob").ok());    // released at once (temporary)
  EXPECT_TRUE(slots.Open("globex", "alice").ok());
  EXPECT_EQ(slots.open("acme", "alice"), 2);
  {
    StreamSlots::Slot moved = std::move(*first);  // moving keeps one slot
    EXPECT_EQ(slots.open("acme", "alice"), 2);
  }
  EXPECT_EQ(slots.open("acme", "alice"), 1);
  EXPECT_TRUE(slots.Open("acme", "alice").ok());
  StreamSlots unlimited(0);
  std::vector<StreamSlots::Slot> many;
  for (int i = 0; i < 100; ++i) many.push_back(*unlimited.Open("acme", "alice"));
}

TEST(StreamSlotsTest, GuardExemptsServices) {
  auth::JwtConfig config;
  config.key = auth::kDevJwtSecret;
  config.service_secret = auth::kDevServiceSecret;
  Options options;
  options.max_streams_per_person = 1;
  auth::Guard guard(auth::Authenticator(config), options);
  auth::Principal person{"alice", "acme", static_cast<uint32_t>(auth::Role::kMember)};
  auto held = guard.OpenStream(person);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(guard.OpenStream(person).status().code(), absl::StatusCode::kResourceExhausted);
  auth::Principal service{"kudos", "acme", static_cast<uint32_t>(auth::Role::kService)};
  std::vector<StreamSlots::Slot> slots;
  for (int i = 0; i < 10; ++i) slots.push_back(*guard.OpenStream(service));
}

}  // namespace
}  // namespace common::ratelimit
