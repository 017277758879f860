// Program budgets and awards over JSON (issue 18): the real gateway in front
// of the real programs_server (which pays through the real ledger_server) and
// a real redis-server.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::Http;
using gwtest::HttpResponse;

class GatewayAwardsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    programs_ = new harness::Service(PROGRAMS_BINARY, redis_->address(),
                                     {"--ledger=" + ledger_->address()});
    gateway_ = new harness::Service(GATEWAY_BINARY, redis_->address(),
                                    {"--ledger=" + ledger_->address(),
                                     "--programs=" + programs_->address(), "--heartbeat_ms=500",
                                     "--max_backoff_ms=1000"});
    port_ = gateway_->port();
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete programs_;
    delete ledger_;
    delete redis_;
  }

  static std::map<std::string, std::string> As(const std::string& who,
                                               std::vector<std::string> roles = {"member"}) {
    return {{"Authorization", "Bearer " + harness::MintToken("acme", who, roles)}};
  }
  static std::map<std::string, std::string> Admin() { return As("root", {"admin"}); }
  static HttpResponse Call(const std::string& method, const std::string& target,
                           const std::string& body, const std::map<std::string, std::string>& h) {
    return Http(port_, method, target, body, h);
  }
  static std::string Field(const std::string& json, const std::string& name) {
    std::string key = "\"" + name + "\":\"";
    size_t at = json.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    return json.substr(at, json.find('"', at) - at);
  }
  static std::string Rfc3339(absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  }

  static harness::RedisServer* redis_;
  static harness::Service *ledger_, *programs_, *gateway_;
  static int port_;
};

harness::RedisServer* GatewayAwardsTest::redis_ = nullptr;
harness::Service* GatewayAwardsTest::ledger_ = nullptr;
harness::Service* GatewayAwardsTest::programs_ = nullptr;
harness::Service* GatewayAwardsTest::gateway_ = nullptr;
int GatewayAwardsTest::port_ = 0;

TEST_F(GatewayAwardsTest, BudgetAndAwardRoutesReachTheProgramsServiceAndPayTheWinner) {
  // The gateway and programs_server may still be starting: the first call waits.
  const std::string budget =
      R"({"budgetId":"q4","name":"Q4 awards","kind":"BUDGET_KIND_PROGRAM","ownerIds":["erin"],)"
      R"("amountPerPeriod":"500","refresh":"BUDGET_REFRESH_QUARTERLY","timeZone":"Europe/Paris"})";
  HttpResponse created;
  for (int attempt = 0; attempt < 100; ++attempt) {
    created = Call("POST", "/v1/budgets", budget, Admin());
    if (created.status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_TRUE(absl::StrContains(created.body, "\"created\":true")) << created.body;
  EXPECT_EQ(Call("POST", "/v1/budgets", budget, As("erin")).status, 403);
  HttpResponse got = Call("GET", "/v1/budgets/q4", "", As("erin"));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Field(got.body, "remaining"), "500") << got.body;
  EXPECT_EQ(Call("GET", "/v1/budgets/q4", "", As("bob")).status, 403);

  absl::Time now = absl::Now();
  std::string award = absl::StrCat(
      R"({"awardId":"star","name":"Service star","budgetId":"q4",)",
      R"("nominationStart":")", Rfc3339(now - absl::Hours(1)), R"(","nominationEnd":")",
      Rfc3339(now + absl::Hours(1)),
      R"(","nominatorRule":"NOMINATOR_RULE_EVERYONE","stages":[{"name":"review",)",
      R"("approverIds":["erin"]}],"numberOfWinners":1,"pointsPerWinner":"120"})");
  HttpResponse award_created = Call("POST", "/v1/awards", award, As("erin"));
  ASSERT_EQ(award_created.status, 200) << award_created.body;

  HttpResponse nominated = Call("POST", "/v1/awards/star/nominations",
                                R"({"requestId":"n1","nomineeId":"bob","reason":"On time"})",
                                As("alice"));
  ASSERT_EQ(nominated.status, 200) << nominated.body;
  const std::string nomination_id = Field(nominated.body, "nominationId");
  ASSERT_FALSE(nomination_id.empty()) << nominated.body;
  EXPECT_EQ(Call("POST", "/v1/awards/star/nominations",
                 R"({"requestId":"n2","nomineeId":"alice","reason":"Me"})", As("alice"))
                .status,
            400);
  HttpResponse listed = Call("GET", "/v1/awards/star/nominations", "", As("erin"));
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_TRUE(absl::StrContains(listed.body, nomination_id)) << listed.body;

  EXPECT_EQ(Call("POST", "/v1/awards/star/nominations/" + nomination_id + ":approve",
                 R"({"requestId":"a1","stage":0})", As("bob"))
                .status,
            403);
  HttpResponse approved = Call("POST", "/v1/awards/star/nominations/" + nomination_id + ":approve",
                               R"({"requestId":"a1","stage":0})", As("erin"));
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_TRUE(absl::StrContains(approved.body, "NOMINATION_STATE_APPROVED")) << approved.body;

  HttpResponse selected = Call("POST", "/v1/awards/star:selectWinners",
                               R"({"requestId":"w1","winnerIds":["bob"]})", As("erin"));
  ASSERT_EQ(selected.status, 200) << selected.body;
  EXPECT_TRUE(absl::StrContains(selected.body, "AWARD_STATE_PAID")) << selected.body;
  HttpResponse balance = Call("GET", "/v1/balance", "", As("bob"));
  HttpResponse history = Call("GET", "/v1/budgets/q4/history", "", Admin());
  ASSERT_EQ(history.status, 200) << history.body;
  EXPECT_TRUE(absl::StrContains(history.body, "\"paid\"")) << history.body;
  got = Call("GET", "/v1/budgets/q4", "", Admin());
  EXPECT_EQ(Field(got.body, "spent"), "120") << got.body;
  EXPECT_EQ(balance.status, 200) << balance.body;
  EXPECT_EQ(Field(balance.body, "balance"), "120") << balance.body;
  EXPECT_EQ(Call("GET", "/v1/awards/nope", "", As("bob")).status, 404);
}

// CELEB's routes (issue 18, part 3) go to the same programs upstream.
TEST_F(GatewayAwardsTest, CelebrationRoutesReachTheProgramsService) {
  HttpResponse settings;
  for (int attempt = 0; attempt < 100; ++attempt) {
    settings = Call("GET", "/v1/celebrations/settings", "", As("alice"));
    if (settings.status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(settings.status, 200) << settings.body;
  EXPECT_TRUE(absl::StrContains(settings.body, "\"birthdayPoints\":\"10\"")) << settings.body;
  EXPECT_TRUE(absl::StrContains(settings.body, "\"anniversaryPointsPerYear\":\"10\""))
      << settings.body;
}

}  // namespace
