// The rewards catalog's JSON routes (issue 18): the real gateway in front of
// the real ledger_server (which hosts RewardsService) and a real redis-server.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using gwtest::Http;
using gwtest::HttpResponse;

class GatewayRewardsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    // Only the ledger is needed: the other upstreams are never called here.
    gateway_ = new harness::Service(GATEWAY_BINARY, redis_->address(),
                                    {"--ledger=" + ledger_->address(), "--heartbeat_ms=500",
                                     "--max_backoff_ms=1000"});
    port_ = gateway_->port();
  }
  static void TearDownTestSuite() {
    delete gateway_;
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

  static harness::RedisServer* redis_;
  static harness::Service *ledger_, *gateway_;
  static int port_;
};

harness::RedisServer* GatewayRewardsTest::redis_ = nullptr;
harness::Service* GatewayRewardsTest::ledger_ = nullptr;
harness::Service* GatewayRewardsTest::gateway_ = nullptr;
int GatewayRewardsTest::port_ = 0;

TEST_F(GatewayRewardsTest, EveryRewardsRouteReachesTheLedgersRewardsService) {
  // The gateway may still be connecting: the first call waits for it.
  HttpResponse created;
  for (int attempt = 0; attempt < 100; ++attempt) {
    created = Call("POST", "/v1/rewards/items",
                   R"({"itemId":"mug","name":"Team mug","pricePoints":"30","stock":"2",)"
                   R"("active":true})",
                   Admin());
    if (created.status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_TRUE(absl::StrContains(created.body, "\"created\":true")) << created.body;
  EXPECT_EQ(Call("POST", "/v1/rewards/items", R"({"itemId":"x","name":"x","pricePoints":"1"})",
                 As("alice"))
                .status,
            403);
  // A stock change names the version it was based on (the item was just created: 1).
  EXPECT_EQ(Call("PUT", "/v1/rewards/items/mug",
                 R"({"name":"Team mug","pricePoints":"30","stock":"3","active":true,)"
                 R"("version":"1"})",
                 Admin())
                .status,
            200);
  HttpResponse item = Call("GET", "/v1/rewards/items/mug", "", As("alice"));
  ASSERT_EQ(item.status, 200) << item.body;
  EXPECT_EQ(Field(item.body, "stock"), "3") << item.body;
  HttpResponse list = Call("GET", "/v1/rewards/items?page_size=10", "", As("alice"));
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_TRUE(absl::StrContains(list.body, "\"itemId\":\"mug\"")) << list.body;

  HttpResponse settings = Call(
      "PUT", "/v1/rewards/settings",
      R"({"currencyName":"coins","moneyCurrencyCode":"EUR","moneyNanosPerPoint":"10000000"})",
      Admin());
  ASSERT_EQ(settings.status, 200) << settings.body;
  EXPECT_EQ(Field(Call("GET", "/v1/rewards/settings", "", As("alice")).body, "currencyName"),
            "coins");

  // Points for alice (an admin adjustment), then redemptions.
  ASSERT_EQ(Call("POST", "/v1/admin/adjust",
                 R"({"requestId":"g1","personId":"alice","amount":"100","reason":"test"})",
                 Admin())
                .status,
            200);
  HttpResponse redeemed =
      Call("POST", "/v1/rewards/items/mug:redeem", R"({"requestId":"r1","quantity":2})",
           As("alice"));
  ASSERT_EQ(redeemed.status, 200) << redeemed.body;
  const std::string first = Field(redeemed.body, "redemptionId");
  ASSERT_TRUE(absl::StartsWith(first, "rwd_")) << redeemed.body;
  EXPECT_EQ(Field(Call("GET", "/v1/balance", "", As("alice")).body, "held"), "60");
  HttpResponse broke =
      Call("POST", "/v1/rewards/items/mug:redeem", R"({"requestId":"r2","quantity":2})",
           As("alice"));
  EXPECT_EQ(broke.status, 409) << broke.body;  // FAILED_PRECONDITION: 1 left, 2 requested
  EXPECT_TRUE(absl::StrContains(broke.body, "out of stock")) << broke.body;

  EXPECT_EQ(Call("POST", "/v1/rewards/redemptions/" + first + ":fulfill", "{}", As("alice")).status,
            403);
  HttpResponse fulfilled =
      Call("POST", "/v1/rewards/redemptions/" + first + ":fulfill", "{}", Admin());
  ASSERT_EQ(fulfilled.status, 200) << fulfilled.body;
  EXPECT_EQ(Field(fulfilled.body, "state"), "REWARD_REDEMPTION_STATE_FULFILLED");

  HttpResponse second =
      Call("POST", "/v1/rewards/items/mug:redeem", R"({"requestId":"r3"})", As("alice"));
  ASSERT_EQ(second.status, 200) << second.body;
  const std::string second_id = Field(second.body, "redemptionId");
  HttpResponse declined = Call("POST", "/v1/rewards/redemptions/" + second_id + ":decline",
                               R"({"reason":"none left in the office"})", Admin());
  ASSERT_EQ(declined.status, 200) << declined.body;
  EXPECT_EQ(Field(declined.body, "state"), "REWARD_REDEMPTION_STATE_DECLINED");

  HttpResponse custom = Call("POST", "/v1/rewards/custom",
                             R"({"requestId":"c1","name":"Conference ticket","points":"10"})",
                             As("alice"));
  ASSERT_EQ(custom.status, 200) << custom.body;
  const std::string custom_id = Field(custom.body, "redemptionId");
  EXPECT_EQ(Field(custom.body, "state"), "REWARD_REDEMPTION_STATE_AWAITING_APPROVAL");
  HttpResponse approved =
      Call("POST", "/v1/rewards/redemptions/" + custom_id + ":approve", "{}", Admin());
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(Field(approved.body, "state"), "REWARD_REDEMPTION_STATE_PENDING");
  HttpResponse cancelled =
      Call("POST", "/v1/rewards/redemptions/" + custom_id + ":cancel", "{}", As("alice"));
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(Field(cancelled.body, "state"), "REWARD_REDEMPTION_STATE_CANCELLED");

  HttpResponse one = Call("GET", "/v1/rewards/redemptions/" + first, "", As("alice"));
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(Call("GET", "/v1/rewards/redemptions/" + first, "", As("bob")).status, 403);
  HttpResponse mine = Call("GET", "/v1/rewards/redemptions", "", As("alice"));
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_TRUE(absl::StrContains(mine.body, custom_id)) << mine.body;
  HttpResponse open = Call("GET", "/v1/rewards/redemptions?open_only=true", "", Admin());
  ASSERT_EQ(open.status, 200) << open.body;

  // 100 earned - 60 fulfilled = 40 outstanding, nothing held: 0.40 EUR.
  HttpResponse liability = Call("GET", "/v1/rewards/liability", "", Admin());
  ASSERT_EQ(liability.status, 200) << liability.body;
  EXPECT_EQ(Field(liability.body, "outstandingPoints"), "40") << liability.body;
  EXPECT_TRUE(absl::StrContains(liability.body, "\"nanos\":400000000")) << liability.body;
  EXPECT_EQ(Call("GET", "/v1/rewards/liability", "", As("alice")).status, 403);

  HttpResponse archived = Call("POST", "/v1/rewards/items/mug:archive", "{}", Admin());
  ASSERT_EQ(archived.status, 200) << archived.body;
  EXPECT_EQ(Call("GET", "/v1/rewards/items/mug", "", As("alice")).status, 404);
}

}  // namespace
