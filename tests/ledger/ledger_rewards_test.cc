// The rewards catalog (issue 18): RewardsService hosted by the real
// ledger_server over gRPC, against a real redis-server. Each test uses its
// own org, so they share one server pair.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/audit.h"
#include "ledger/v1/rewards.grpc.pb.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/rewards_rules.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledger_test {
namespace {

using ledger::v1::RewardItem;
using ledger::v1::RewardRedemption;
using ledger::v1::RewardsService;

// An org per test, within the platform's id rule (at most 64 characters).
std::string TestOrg(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = prefix + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-",
                      absl::Hex(std::hash<std::string>()(name) & 0xffffffff, absl::kZeroPad8));
}

RewardItem Item(const std::string& id, int64_t price, int64_t stock, bool active = true) {
  RewardItem item;
  item.set_item_id(id);
  item.set_name("Item " + id);
  item.set_description("A thing to redeem");
  item.set_price_points(price);
  if (stock < 0) {
    item.set_unlimited(true);
  } else {
    item.set_stock(stock);
  }
  item.set_active(active);
  return item;
}

class RewardsApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new LedgerEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg("rw-");
    ledger_ = env_->NewStub();
    rewards_ = RewardsService::NewStub(
        grpc::CreateChannel(env_->ledger().address(), grpc::InsecureChannelCredentials()));
    admin_ = harness::MintToken(org_, "root", {"admin"});
    WaitUntilServing(*ledger_, admin_);
  }

  std::string Member(const std::string& person) { return harness::MintToken(org_, person); }

  // Earned points by an admin adjustment (issuer -> earned).
  void Give(const std::string& person, int64_t points) {
    ledger::v1::AdjustBalanceRequest request;
    request.set_request_id(absl::StrCat("give-", person, "-", ++gifts_));
    request.set_person_id(person);
    request.set_amount(points);
    request.set_reason("test points");
    ledger::v1::AdjustBalanceResponse response;
    grpc::Status status =
        ledger_->AdjustBalance(harness::Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  ledger::v1::GetBalanceResponse Balance(const std::string& person) {
    ledger::v1::GetBalanceRequest request;
    *request.mutable_account() = Earned(person);
    ledger::v1::GetBalanceResponse response;
    grpc::Status status = ledger_->GetBalance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Create(const std::string& token, const RewardItem& item,
                      ledger::v1::CreateRewardItemResponse* out = nullptr) {
    ledger::v1::CreateRewardItemRequest request;
    *request.mutable_item() = item;
    ledger::v1::CreateRewardItemResponse response;
    grpc::Status status =
        rewards_->CreateRewardItem(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  grpc::Status GetItem(const std::string& token, const std::string& id, RewardItem* out) {
    ledger::v1::GetRewardItemRequest request;
    request.set_item_id(id);
    ledger::v1::GetRewardItemResponse response;
    grpc::Status status =
        rewards_->GetRewardItem(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.item();
    return status;
  }

  RewardItem ItemNow(const std::string& id) {
    RewardItem item;
    grpc::Status status = GetItem(admin_, id, &item);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return item;
  }

  grpc::Status Redeem(const std::string& token, const std::string& request_id,
                      const std::string& item_id, int quantity, RewardRedemption* out = nullptr,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    ledger::v1::RedeemRewardItemRequest request;
    request.set_request_id(request_id);
    request.set_item_id(item_id);
    request.set_quantity(quantity);
    ledger::v1::RedeemRewardItemResponse response;
    grpc::Status status =
        rewards_->RedeemRewardItem(harness::Context(token, timeout).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Custom(const std::string& token, const std::string& request_id,
                      const std::string& name, int64_t points, RewardRedemption* out = nullptr) {
    ledger::v1::RequestCustomRewardRequest request;
    request.set_request_id(request_id);
    request.set_name(name);
    request.set_description("please");
    request.set_points(points);
    ledger::v1::RequestCustomRewardResponse response;
    grpc::Status status =
        rewards_->RequestCustomReward(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Approve(const std::string& token, const std::string& id,
                       RewardRedemption* out = nullptr) {
    ledger::v1::ApproveCustomRewardRequest request;
    request.set_redemption_id(id);
    ledger::v1::ApproveCustomRewardResponse response;
    grpc::Status status =
        rewards_->ApproveCustomReward(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Fulfill(const std::string& token, const std::string& id,
                       RewardRedemption* out = nullptr) {
    ledger::v1::FulfillRewardRedemptionRequest request;
    request.set_redemption_id(id);
    ledger::v1::FulfillRewardRedemptionResponse response;
    grpc::Status status =
        rewards_->FulfillRewardRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Decline(const std::string& token, const std::string& id, const std::string& reason,
                       RewardRedemption* out = nullptr) {
    ledger::v1::DeclineRewardRedemptionRequest request;
    request.set_redemption_id(id);
    request.set_reason(reason);
    ledger::v1::DeclineRewardRedemptionResponse response;
    grpc::Status status =
        rewards_->DeclineRewardRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Cancel(const std::string& token, const std::string& id,
                      RewardRedemption* out = nullptr) {
    ledger::v1::CancelRewardRedemptionRequest request;
    request.set_redemption_id(id);
    ledger::v1::CancelRewardRedemptionResponse response;
    grpc::Status status =
        rewards_->CancelRewardRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  void ExpectLedgerConsistent() {
    ledger::v1::VerifyLedgerResponse verify;
    grpc::Status status = ledger_->VerifyLedger(harness::Context(admin_).get(),
                                                ledger::v1::VerifyLedgerRequest(), &verify);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(verify.consistent()) << verify.DebugString();
    EXPECT_EQ(verify.negative_earned_accounts_size(), 0);
  }

  // The audit entries of the org with this action.
  int AuditCount(const std::string& action) {
    auto reply = env_->pool().Run({"XRANGE", common::audit::StreamKey(org_), "-", "+"});
    EXPECT_TRUE(reply.ok());
    int count = 0;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "action" && fields[i + 1].str == action) ++count;
      }
    }
    return count;
  }

  static LedgerEnv* env_;
  std::string org_;
  std::string admin_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_;
  std::unique_ptr<RewardsService::Stub> rewards_;
  int gifts_ = 0;
};

LedgerEnv* RewardsApi::env_ = nullptr;

// ---- catalog ------------------------------------------------------------------

TEST_F(RewardsApi, Catalog_MembersCannotManageItAndSeeActiveItemsOnly) {
  const std::string alice = Member("alice");
  EXPECT_EQ(Create(alice, Item("mug", 10, 5)).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5)).ok());
  ASSERT_TRUE(Create(admin_, Item("hidden", 10, 5, /*active=*/false)).ok());

  ledger::v1::UpdateRewardItemRequest update;
  *update.mutable_item() = Item("mug", 1, 500);
  ledger::v1::UpdateRewardItemResponse updated;
  EXPECT_EQ(rewards_->UpdateRewardItem(harness::Context(alice).get(), update, &updated)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::ArchiveRewardItemRequest archive;
  archive.set_item_id("mug");
  ledger::v1::ArchiveRewardItemResponse archived;
  EXPECT_EQ(rewards_->ArchiveRewardItem(harness::Context(alice).get(), archive, &archived)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::UpdateRewardSettingsRequest settings;
  settings.mutable_settings()->set_money_nanos_per_point(1);
  ledger::v1::UpdateRewardSettingsResponse settings_out;
  EXPECT_EQ(rewards_->UpdateRewardSettings(harness::Context(alice).get(), settings, &settings_out)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ledger::v1::ListRewardItemsRequest list;
  ledger::v1::ListRewardItemsResponse listed;
  ASSERT_TRUE(rewards_->ListRewardItems(harness::Context(alice).get(), list, &listed).ok());
  ASSERT_EQ(listed.items_size(), 1);
  EXPECT_EQ(listed.items(0).item_id(), "mug");
  EXPECT_EQ(GetItem(alice, "hidden", nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
  list.set_include_inactive(true);
  EXPECT_EQ(rewards_->ListRewardItems(harness::Context(alice).get(), list, &listed).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(rewards_->ListRewardItems(harness::Context(admin_).get(), list, &listed).ok());
  EXPECT_EQ(listed.items_size(), 2);
  // A screen or a service is not a person.
  std::string screen = harness::MintToken(org_, "screen-1", {"screen"});
  EXPECT_EQ(GetItem(screen, "mug", nullptr).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetItem(ServiceToken(org_), "mug", nullptr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(AuditCount("rewards.create_item"), 2);
}

TEST_F(RewardsApi, Catalog_OneOrgCannotSeeAnothersItemsOrRedemptions) {
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5)).ok());
  Give("alice", 100);
  RewardRedemption redemption;
  ASSERT_TRUE(Redeem(Member("alice"), "r1", "mug", 1, &redemption).ok());

  const std::string other_org = org_ + "-b";
  const std::string other_admin = harness::MintToken(other_org, "root", {"admin"});
  EXPECT_EQ(GetItem(other_admin, "mug", nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
  ledger::v1::ListRewardItemsRequest list;
  list.set_include_inactive(true);
  ledger::v1::ListRewardItemsResponse listed;
  ASSERT_TRUE(rewards_->ListRewardItems(harness::Context(other_admin).get(), list, &listed).ok());
  EXPECT_EQ(listed.items_size(), 0);
  ledger::v1::GetRewardRedemptionRequest get;
  get.set_redemption_id(redemption.redemption_id());
  ledger::v1::GetRewardRedemptionResponse got;
  EXPECT_EQ(rewards_->GetRewardRedemption(harness::Context(other_admin).get(), get, &got)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fulfill(other_admin, redemption.redemption_id()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Another org's member with the same person id redeems nothing here.
  EXPECT_EQ(Redeem(harness::MintToken(other_org, "alice"), "r1", "mug", 1).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(RewardsApi, Catalog_CreateIsIdempotentByItemIdAndItemsPerOrgAreBounded) {
  ledger::v1::CreateRewardItemResponse created;
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5), &created).ok());
  EXPECT_TRUE(created.created());
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5), &created).ok());
  EXPECT_FALSE(created.created());
  grpc::Status other = Create(admin_, Item("mug", 11, 5));
  EXPECT_EQ(other.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StrContains(other.error_message(), "UpdateRewardItem"))
      << other.error_message();
  EXPECT_EQ(AuditCount("rewards.create_item"), 1);

  for (int i = 1; i < ledger::kMaxRewardItemsPerOrg; ++i) {
    ASSERT_TRUE(Create(admin_, Item(absl::StrCat("item-", i), 1, -1)).ok()) << i;
  }
  grpc::Status past = Create(admin_, Item("one-too-many", 1, 1));
  EXPECT_EQ(past.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(past.error_message(), "500")) << past.error_message();

  // Pages of at most page_size, each item once, in id order.
  ledger::v1::ListRewardItemsRequest list;
  list.set_page_size(200);
  std::vector<std::string> ids;
  for (int page = 0; page < 10; ++page) {
    ledger::v1::ListRewardItemsResponse listed;
    ASSERT_TRUE(rewards_->ListRewardItems(harness::Context(admin_).get(), list, &listed).ok());
    EXPECT_LE(listed.items_size(), 200);
    for (const RewardItem& item : listed.items()) ids.push_back(item.item_id());
    if (listed.next_page_token().empty()) break;
    list.set_page_token(listed.next_page_token());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(ledger::kMaxRewardItemsPerOrg));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  list.set_page_size(201);
  ledger::v1::ListRewardItemsResponse listed;
  EXPECT_EQ(rewards_->ListRewardItems(harness::Context(admin_).get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RewardsApi, Catalog_BadInputsAreInvalidArgumentNamingTheField) {
  struct Case {
    RewardItem item;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({Item("bad id!", 1, 1), "item.item_id"});
  RewardItem no_name = Item("a", 1, 1);
  no_name.clear_name();
  cases.push_back({no_name, "item.name"});
  cases.push_back({Item("a", 0, 1), "item.price_points"});
  cases.push_back({Item("a", ledger::kMaxAmount + 1, 1), "item.price_points"});
  RewardItem negative_stock = Item("a", 1, 1);
  negative_stock.set_stock(-1);
  cases.push_back({negative_stock, "item.stock"});
  RewardItem long_description = Item("a", 1, 1);
  long_description.set_description(std::string(ledger::kMaxRewardDescriptionBytes + 1, 'x'));
  cases.push_back({long_description, "item.description"});
  for (const Case& c : cases) {
    grpc::Status status = Create(admin_, c.item);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_TRUE(absl::StartsWith(status.error_message(), c.field)) << status.error_message();
  }
  ledger::v1::UpdateRewardSettingsRequest settings;
  settings.mutable_settings()->set_money_currency_code("usd");
  ledger::v1::UpdateRewardSettingsResponse out;
  grpc::Status code =
      rewards_->UpdateRewardSettings(harness::Context(admin_).get(), settings, &out);
  EXPECT_EQ(code.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(code.error_message(), "settings.money_currency_code"));
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5)).ok());
  grpc::Status quantity = Redeem(Member("alice"), "q", "mug", ledger::kMaxRewardQuantity + 1);
  EXPECT_EQ(quantity.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(quantity.error_message(), "quantity")) << quantity.error_message();
  EXPECT_EQ(Fulfill(admin_, "rdm_0123").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Decline(admin_, "rwd_000000000000000000000000", "").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fulfill(admin_, "rwd_000000000000000000000000").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Custom(Member("alice"), "c", "", 5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Custom(Member("alice"), "c", "x", 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Issue 18: stock is an absolute value in an update, so an update names the
// version it was based on; a redemption in between makes it ABORTED instead
// of giving the sold units back to the stock.
TEST_F(RewardsApi, Catalog_StaleUpdateAfterARedemptionDoesNotRestoreSoldStock) {
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5)).ok());
  Give("alice", 100);
  const RewardItem read = ItemNow("mug");  // what the admin's form shows
  EXPECT_EQ(read.version(), 1);
  ASSERT_TRUE(Redeem(Member("alice"), "r1", "mug", 2).ok());
  EXPECT_EQ(ItemNow("mug").stock(), 3);
  EXPECT_GT(ItemNow("mug").version(), read.version()) << "a redemption moves the version";

  auto update = [this](RewardItem item, RewardItem* out = nullptr) {
    ledger::v1::UpdateRewardItemRequest request;
    *request.mutable_item() = std::move(item);
    ledger::v1::UpdateRewardItemResponse response;
    grpc::Status status =
        rewards_->UpdateRewardItem(harness::Context(admin_).get(), request, &response);
    if (out != nullptr) *out = response.item();
    return status;
  };
  // The admin renames the item from the form read before the redemption.
  RewardItem stale = read;
  stale.set_name("Team mug");
  grpc::Status refused = update(stale);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "item.version"))
      << refused.error_message();
  EXPECT_EQ(ItemNow("mug").stock(), 3) << "the sold units stay sold";
  EXPECT_EQ(ItemNow("mug").name(), read.name());

  // Without a version a stock change is refused (it could not tell what
  // the stock was when the admin chose the new one); other changes pass.
  RewardItem unnamed = Item("mug", 10, 5);
  grpc::Status needs_version = update(unnamed);
  EXPECT_EQ(needs_version.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << needs_version.error_message();
  EXPECT_TRUE(absl::StrContains(needs_version.error_message(), "item.version"))
      << needs_version.error_message();
  EXPECT_EQ(ItemNow("mug").stock(), 3);
  RewardItem renamed = Item("mug", 10, 3);
  renamed.set_name("Team mug");
  ASSERT_TRUE(update(renamed).ok());
  EXPECT_EQ(ItemNow("mug").stock(), 3);

  // Read again, restock: applied; its retry (same request) is OK, changes
  // nothing more; the retry after a redemption is ABORTED, stock intact.
  RewardItem fresh = ItemNow("mug");
  fresh.set_stock(10);
  RewardItem restocked;
  ASSERT_TRUE(update(fresh, &restocked).ok());
  EXPECT_EQ(restocked.stock(), 10);
  EXPECT_EQ(restocked.version(), fresh.version() + 1);
  RewardItem retried;
  ASSERT_TRUE(update(fresh, &retried).ok());
  EXPECT_EQ(retried.version(), restocked.version()) << "a retry changes nothing";
  ASSERT_TRUE(Redeem(Member("alice"), "r2", "mug", 1).ok());
  EXPECT_EQ(update(fresh).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(ItemNow("mug").stock(), 9);
  EXPECT_EQ(AuditCount("rewards.update_item"), 2);
}

// ---- redemptions ----------------------------------------------------------------

TEST_F(RewardsApi, Redeem_HoldsPointsAndStockFulfilTakesPointsDeclineReturnsBoth) {
  ASSERT_TRUE(Create(admin_, Item("mug", 30, 3)).ok());
  Give("alice", 100);
  const std::string alice = Member("alice");

  RewardRedemption first;
  ASSERT_TRUE(Redeem(alice, "r1", "mug", 2, &first).ok());
  EXPECT_EQ(first.state(), ledger::v1::REWARD_REDEMPTION_STATE_PENDING);
  EXPECT_EQ(first.points(), 60);
  EXPECT_TRUE(absl::StartsWith(first.redemption_id(), "rwd_"));
  EXPECT_EQ(Balance("alice").held(), 60);
  EXPECT_EQ(Balance("alice").available(), 40);
  EXPECT_EQ(ItemNow("mug").stock(), 1);
  EXPECT_EQ(ItemNow("mug").reserved(), 2);

  // Members cannot fulfil or decline; admins can.
  EXPECT_EQ(Fulfill(alice, first.redemption_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  RewardRedemption fulfilled;
  ASSERT_TRUE(Fulfill(admin_, first.redemption_id(), &fulfilled).ok());
  EXPECT_EQ(fulfilled.state(), ledger::v1::REWARD_REDEMPTION_STATE_FULFILLED);
  EXPECT_EQ(fulfilled.transfer_id(), "redemption:" + first.redemption_id());
  EXPECT_EQ(fulfilled.decided_by(), "root");
  EXPECT_EQ(Balance("alice").balance(), 40);
  EXPECT_EQ(Balance("alice").held(), 0);
  EXPECT_EQ(ItemNow("mug").stock(), 1);
  EXPECT_EQ(ItemNow("mug").fulfilled(), 2);
  EXPECT_EQ(ItemNow("mug").reserved(), 0);
  // Again: the same answer, nothing moves twice.
  ASSERT_TRUE(Fulfill(admin_, first.redemption_id(), &fulfilled).ok());
  EXPECT_EQ(Balance("alice").balance(), 40);
  EXPECT_EQ(Decline(admin_, first.redemption_id(), "too late").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  RewardRedemption second;
  ASSERT_TRUE(Redeem(alice, "r2", "mug", 1, &second).ok());
  EXPECT_EQ(ItemNow("mug").stock(), 0);
  RewardRedemption declined;
  ASSERT_TRUE(Decline(admin_, second.redemption_id(), "out of mugs in the office", &declined).ok());
  EXPECT_EQ(declined.state(), ledger::v1::REWARD_REDEMPTION_STATE_DECLINED);
  EXPECT_EQ(declined.reason(), "out of mugs in the office");
  EXPECT_EQ(ItemNow("mug").stock(), 1);
  EXPECT_EQ(Balance("alice").held(), 0);
  EXPECT_EQ(Balance("alice").balance(), 40);
  grpc::Status after = Fulfill(admin_, second.redemption_id());
  EXPECT_EQ(after.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(after.error_message(), "declined")) << after.error_message();

  // The owner cancels their own; another member may not.
  RewardRedemption third;
  ASSERT_TRUE(Redeem(alice, "r3", "mug", 1, &third).ok());
  EXPECT_EQ(Cancel(Member("bob"), third.redemption_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  RewardRedemption cancelled;
  ASSERT_TRUE(Cancel(alice, third.redemption_id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), ledger::v1::REWARD_REDEMPTION_STATE_CANCELLED);
  EXPECT_EQ(ItemNow("mug").stock(), 1);
  EXPECT_EQ(Balance("alice").held(), 0);

  EXPECT_EQ(AuditCount("rewards.redeem_item"), 3);
  EXPECT_EQ(AuditCount("rewards.fulfill_redemption"), 1);
  EXPECT_EQ(AuditCount("rewards.decline_redemption"), 1);
  EXPECT_EQ(AuditCount("rewards.cancel_redemption"), 1);
  ExpectLedgerConsistent();

  // The member lists their own, newest first; the admin's open queue is empty.
  ledger::v1::ListRewardRedemptionsRequest mine;
  ledger::v1::ListRewardRedemptionsResponse listed;
  ASSERT_TRUE(rewards_->ListRewardRedemptions(harness::Context(alice).get(), mine, &listed).ok());
  ASSERT_EQ(listed.redemptions_size(), 3);
  EXPECT_EQ(listed.redemptions(0).redemption_id(), third.redemption_id());
  mine.set_person_id("bob");
  EXPECT_EQ(rewards_->ListRewardRedemptions(harness::Context(alice).get(), mine, &listed)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::ListRewardRedemptionsRequest open;
  open.set_open_only(true);
  ASSERT_TRUE(rewards_->ListRewardRedemptions(harness::Context(admin_).get(), open, &listed).ok());
  EXPECT_EQ(listed.redemptions_size(), 0);
}

TEST_F(RewardsApi, Redeem_OutOfStockAndNotEnoughPointsAreFailedPreconditionWithTheNumbers) {
  ASSERT_TRUE(Create(admin_, Item("mug", 30, 1)).ok());
  ASSERT_TRUE(Create(admin_, Item("hidden", 1, 1, /*active=*/false)).ok());
  Give("alice", 50);
  const std::string alice = Member("alice");

  grpc::Status stock = Redeem(alice, "r1", "mug", 2);
  EXPECT_EQ(stock.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(stock.error_message(), "out of stock: 1 left, 2 requested"))
      << stock.error_message();

  ASSERT_TRUE(Create(admin_, Item("bike", 60, -1)).ok());
  grpc::Status funds = Redeem(alice, "r2", "bike", 1);
  EXPECT_EQ(funds.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(funds.error_message(), "50 points available"))
      << funds.error_message();
  EXPECT_TRUE(absl::StrContains(funds.error_message(), "60 needed")) << funds.error_message();
  EXPECT_EQ(ItemNow("bike").reserved(), 0);
  EXPECT_EQ(Balance("alice").held(), 0);

  EXPECT_EQ(Redeem(alice, "r3", "hidden", 1).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Redeem(alice, "r4", "nothing", 1).error_code(), grpc::StatusCode::NOT_FOUND);
  ledger::v1::ArchiveRewardItemRequest archive;
  archive.set_item_id("mug");
  ledger::v1::ArchiveRewardItemResponse archived;
  ASSERT_TRUE(rewards_->ArchiveRewardItem(harness::Context(admin_).get(), archive, &archived).ok());
  EXPECT_TRUE(archived.item().archived());
  grpc::Status gone = Redeem(alice, "r5", "mug", 1);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(gone.error_message(), "archived")) << gone.error_message();
  EXPECT_EQ(AuditCount("rewards.redeem_item"), 0);
}

TEST_F(RewardsApi, Redeem_RetriesWithTheSameRequestIdReserveOnce) {
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 5)).ok());
  ASSERT_TRUE(Create(admin_, Item("cap", 10, 5)).ok());
  Give("alice", 100);
  const std::string alice = Member("alice");
  RewardRedemption first;
  RewardRedemption again;
  ASSERT_TRUE(Redeem(alice, "same", "mug", 2, &first).ok());
  ASSERT_TRUE(Redeem(alice, "same", "mug", 2, &again).ok());
  EXPECT_EQ(first.redemption_id(), again.redemption_id());
  EXPECT_EQ(ItemNow("mug").stock(), 3);
  EXPECT_EQ(Balance("alice").held(), 20);
  grpc::Status other = Redeem(alice, "same", "cap", 1);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StartsWith(other.error_message(), "request_id")) << other.error_message();
  // The same request id of another person is another redemption.
  Give("bob", 100);
  RewardRedemption bobs;
  ASSERT_TRUE(Redeem(Member("bob"), "same", "mug", 2, &bobs).ok());
  EXPECT_NE(bobs.redemption_id(), first.redemption_id());
  EXPECT_EQ(AuditCount("rewards.redeem_item"), 2);
}

TEST_F(RewardsApi, Redeem_TwentyConcurrentRequestsForFiveUnitsExactlyFiveSucceed) {
  ASSERT_TRUE(Create(admin_, Item("ticket", 10, 5)).ok());
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; ++i) {
    Give(absl::StrCat("p", i), 10);
    tokens.push_back(Member(absl::StrCat("p", i)));
  }
  std::atomic<int> succeeded{0};
  std::atomic<int> out_of_stock{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      // Generous deadline: the machine is shared; a timeout would be a bug.
      grpc::Status status =
          Redeem(tokens[i], "concurrent", "ticket", 1, nullptr, std::chrono::seconds(30));
      if (status.ok()) {
        ++succeeded;
      } else if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                 absl::StrContains(status.error_message(), "out of stock")) {
        ++out_of_stock;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(succeeded.load(), 5);
  EXPECT_EQ(out_of_stock.load(), 15);
  EXPECT_EQ(other.load(), 0);
  RewardItem ticket = ItemNow("ticket");
  EXPECT_EQ(ticket.stock(), 0);
  EXPECT_EQ(ticket.reserved(), 5);
  int64_t held = 0;
  for (int i = 0; i < 20; ++i) held += Balance(absl::StrCat("p", i)).held();
  EXPECT_EQ(held, 50);
}

TEST_F(RewardsApi, Redeem_PendingHoldsShareTheLedgersCapPerPerson) {
  ASSERT_TRUE(Create(admin_, Item("sticker", 1, -1)).ok());
  Give("alice", 1000);
  const std::string alice = Member("alice");
  for (int i = 0; i < ledger::kMaxPendingRedemptionsPerPerson; ++i) {
    ASSERT_TRUE(Redeem(alice, absl::StrCat("r", i), "sticker", 1).ok()) << i;
  }
  grpc::Status cap = Redeem(alice, "one-more", "sticker", 1);
  EXPECT_EQ(cap.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(cap.error_message(), "pending redemptions")) << cap.error_message();
  // The ledger's own redemptions count against the same cap.
  ledger::v1::CreateRedemptionRequest ledger_request;
  ledger_request.set_request_id("free-text");
  ledger_request.set_reward("lunch");
  ledger_request.set_points(1);
  ledger::v1::CreateRedemptionResponse ledger_response;
  EXPECT_EQ(ledger_->CreateRedemption(harness::Context(alice).get(), ledger_request,
                                      &ledger_response)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(RewardsApi, Listing_KeepsTheNewestPerPersonAndFinishedRecordsExpire) {
  ASSERT_TRUE(Create(admin_, Item("sticker", 1, -1)).ok());
  Give("alice", 10);
  const std::string alice = Member("alice");
  const int total = ledger::kMaxListedRedemptionsPerPerson + 3;
  std::string first_id;
  std::string last_id;
  for (int i = 0; i < total; ++i) {
    RewardRedemption redemption;
    ASSERT_TRUE(Redeem(alice, absl::StrCat("r", i), "sticker", 1, &redemption).ok()) << i;
    ASSERT_TRUE(Cancel(alice, redemption.redemption_id()).ok()) << i;
    if (i == 0) first_id = redemption.redemption_id();
    last_id = redemption.redemption_id();
  }
  // Pages of at most page_size, newest first, the listing bounded.
  ledger::v1::ListRewardRedemptionsRequest request;
  request.set_page_size(ledger::kMaxRewardPageSize);
  std::vector<std::string> ids;
  for (int page = 0; page < 10; ++page) {
    ledger::v1::ListRewardRedemptionsResponse listed;
    ASSERT_TRUE(
        rewards_->ListRewardRedemptions(harness::Context(alice).get(), request, &listed).ok());
    EXPECT_LE(listed.redemptions_size(), ledger::kMaxRewardPageSize);
    for (const RewardRedemption& r : listed.redemptions()) ids.push_back(r.redemption_id());
    if (listed.next_page_token().empty()) break;
    request.set_page_token(listed.next_page_token());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(ledger::kMaxListedRedemptionsPerPerson));
  EXPECT_EQ(ids.front(), last_id);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), first_id), ids.end());
  // The oldest left the listing but is still readable by id until it expires.
  ledger::v1::GetRewardRedemptionRequest get;
  get.set_redemption_id(first_id);
  ledger::v1::GetRewardRedemptionResponse got;
  ASSERT_TRUE(rewards_->GetRewardRedemption(harness::Context(alice).get(), get, &got).ok());
  auto ttl = env_->pool().Run({"TTL", absl::StrCat("ledger:{", org_, "}:rdm:", first_id)});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, ledger::kFinishedRedemptionTtlSeconds);
  // A page token of another listing is refused.
  request.set_person_id("alice");
  ledger::v1::ListRewardRedemptionsResponse listed;
  ledger::v1::ListRewardRedemptionsRequest admin_all;
  admin_all.set_page_token(request.page_token());
  EXPECT_EQ(rewards_->ListRewardRedemptions(harness::Context(admin_).get(), admin_all, &listed)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RewardsApi, Ledger_RedemptionRpcsRefuseCatalogRedemptions) {
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 1)).ok());
  Give("alice", 100);
  RewardRedemption redemption;
  ASSERT_TRUE(Redeem(Member("alice"), "r1", "mug", 1, &redemption).ok());
  // LedgerService would release the hold but never the stock.
  ledger::v1::CancelRedemptionRequest cancel;
  cancel.set_redemption_id(redemption.redemption_id());
  ledger::v1::CancelRedemptionResponse cancelled;
  grpc::Status status =
      ledger_->CancelRedemption(harness::Context(Member("alice")).get(), cancel, &cancelled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "RewardsService"))
      << status.error_message();
  ledger::v1::FulfillRedemptionRequest fulfill;
  fulfill.set_redemption_id(redemption.redemption_id());
  ledger::v1::FulfillRedemptionResponse fulfilled;
  EXPECT_EQ(ledger_->FulfillRedemption(harness::Context(admin_).get(), fulfill, &fulfilled)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Balance("alice").held(), 10);
  EXPECT_EQ(ItemNow("mug").stock(), 0);
  EXPECT_EQ(ItemNow("mug").reserved(), 1);
}

TEST_F(RewardsApi, WriteConcern_RewardsWritesWaitForReplicasAndRetriesApplyOnce) {
  // A second replica of the service asking for a replica acknowledgement no
  // Redis of this test has: each write is applied on the primary, then the
  // call is UNAVAILABLE saying so; a retry (here on the other replica) finds it.
  harness::Service waiting(LEDGER_BINARY, env_->redis().address(),
                           {"--redis_wait_replicas=1", "--redis_wait_timeout_ms=50"});
  auto waiting_ledger = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(waiting.address(), grpc::InsecureChannelCredentials()));
  WaitUntilServing(*waiting_ledger, admin_);
  auto waiting_rewards = RewardsService::NewStub(
      grpc::CreateChannel(waiting.address(), grpc::InsecureChannelCredentials()));
  Give("alice", 100);

  ledger::v1::CreateRewardItemRequest create;
  *create.mutable_item() = Item("mug", 10, 3);
  ledger::v1::CreateRewardItemResponse created;
  grpc::Status status =
      waiting_rewards->CreateRewardItem(harness::Context(admin_).get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "replicas")) << status.error_message();
  ledger::v1::CreateRewardItemResponse retried;
  ASSERT_TRUE(Create(admin_, Item("mug", 10, 3), &retried).ok());
  EXPECT_FALSE(retried.created());  // applied by the first call

  ledger::v1::RedeemRewardItemRequest redeem;
  redeem.set_request_id("r1");
  redeem.set_item_id("mug");
  ledger::v1::RedeemRewardItemResponse redeemed;
  EXPECT_EQ(waiting_rewards->RedeemRewardItem(harness::Context(Member("alice")).get(), redeem,
                                              &redeemed)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  RewardRedemption again;
  ASSERT_TRUE(Redeem(Member("alice"), "r1", "mug", 1, &again).ok());
  EXPECT_EQ(ItemNow("mug").stock(), 2);
  EXPECT_EQ(Balance("alice").held(), 10);
  EXPECT_EQ(AuditCount("rewards.redeem_item"), 1);
}

// ---- custom rewards ----------------------------------------------------------------

TEST_F(RewardsApi, Custom_NeedsAnAdminsApprovalThenHoldsAndFulfils) {
  Give("alice", 100);
  const std::string alice = Member("alice");
  RewardRedemption asked;
  ASSERT_TRUE(Custom(alice, "c1", "A day of training", 70, &asked).ok());
  EXPECT_EQ(asked.state(), ledger::v1::REWARD_REDEMPTION_STATE_AWAITING_APPROVAL);
  EXPECT_EQ(asked.kind(), ledger::v1::REWARD_REDEMPTION_KIND_CUSTOM);
  EXPECT_EQ(Balance("alice").held(), 0);  // nothing held before approval
  RewardRedemption retried;
  ASSERT_TRUE(Custom(alice, "c1", "A day of training", 70, &retried).ok());
  EXPECT_EQ(retried.redemption_id(), asked.redemption_id());
  EXPECT_EQ(Custom(alice, "c1", "A day of training", 71).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Fulfill(admin_, asked.redemption_id()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Approve(alice, asked.redemption_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ledger::v1::ListRewardRedemptionsRequest open;
  open.set_open_only(true);
  ledger::v1::ListRewardRedemptionsResponse queue;
  ASSERT_TRUE(rewards_->ListRewardRedemptions(harness::Context(admin_).get(), open, &queue).ok());
  ASSERT_EQ(queue.redemptions_size(), 1);

  RewardRedemption approved;
  ASSERT_TRUE(Approve(admin_, asked.redemption_id(), &approved).ok());
  EXPECT_EQ(approved.state(), ledger::v1::REWARD_REDEMPTION_STATE_PENDING);
  EXPECT_EQ(approved.decided_by(), "root");
  EXPECT_EQ(Balance("alice").held(), 70);
  ASSERT_TRUE(Approve(admin_, asked.redemption_id(), &approved).ok());  // a retry
  EXPECT_EQ(Balance("alice").held(), 70);
  ASSERT_TRUE(Fulfill(admin_, asked.redemption_id()).ok());
  EXPECT_EQ(Balance("alice").balance(), 30);
  EXPECT_EQ(Balance("alice").held(), 0);

  // Approval needs the points then: FAILED_PRECONDITION with the numbers,
  // and the request keeps waiting.
  RewardRedemption too_big;
  ASSERT_TRUE(Custom(alice, "c2", "A bike", 50, &too_big).ok());
  grpc::Status funds = Approve(admin_, too_big.redemption_id());
  EXPECT_EQ(funds.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(funds.error_message(), "30 points available"))
      << funds.error_message();
  RewardRedemption declined;
  ASSERT_TRUE(Decline(admin_, too_big.redemption_id(), "not in the budget", &declined).ok());
  EXPECT_EQ(declined.state(), ledger::v1::REWARD_REDEMPTION_STATE_DECLINED);

  // At most kMaxAwaitingCustomRewardsPerPerson waiting at once.
  for (int i = 0; i < ledger::kMaxAwaitingCustomRewardsPerPerson; ++i) {
    ASSERT_TRUE(Custom(alice, absl::StrCat("wait-", i), "a book", 5).ok()) << i;
  }
  grpc::Status cap = Custom(alice, "wait-more", "a book", 5);
  EXPECT_EQ(cap.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(cap.error_message(), "awaiting approval")) << cap.error_message();
  EXPECT_EQ(AuditCount("rewards.approve_custom"), 1);
  ExpectLedgerConsistent();
}

// ---- the liability report ------------------------------------------------------------

TEST_F(RewardsApi, Liability_EqualsTheEarnedBalancesWithHeldPointsApartInMoney) {
  ledger::v1::UpdateRewardSettingsRequest settings;
  settings.mutable_settings()->set_currency_name("coins");
  settings.mutable_settings()->set_money_currency_code("EUR");
  settings.mutable_settings()->set_money_nanos_per_point(12'500'000);  // 0.0125 EUR a point
  ledger::v1::UpdateRewardSettingsResponse stored;
  ASSERT_TRUE(rewards_->UpdateRewardSettings(harness::Context(admin_).get(), settings, &stored)
                  .ok());
  ASSERT_TRUE(Create(admin_, Item("mug", 25, 10)).ok());
  const std::vector<std::string> people = {"alice", "bob", "carol", "dan"};
  for (size_t i = 0; i < people.size(); ++i) Give(people[i], 100 * (i + 1));
  RewardRedemption pending;
  RewardRedemption done;
  ASSERT_TRUE(Redeem(Member("alice"), "a1", "mug", 2, &pending).ok());
  ASSERT_TRUE(Redeem(Member("bob"), "b1", "mug", 1, &done).ok());
  ASSERT_TRUE(Fulfill(admin_, done.redemption_id()).ok());
  ASSERT_TRUE(Custom(Member("carol"), "c1", "training", 40).ok());
  // A ledger redemption (free text) is held too.
  ledger::v1::CreateRedemptionRequest free_text;
  free_text.set_request_id("lunch");
  free_text.set_reward("lunch");
  free_text.set_points(15);
  ledger::v1::CreateRedemptionResponse free_text_out;
  ASSERT_TRUE(ledger_->CreateRedemption(harness::Context(Member("dan")).get(), free_text,
                                        &free_text_out)
                  .ok());

  int64_t balances = 0;
  int64_t held = 0;
  for (const std::string& person : people) {
    balances += Balance(person).balance();
    held += Balance(person).held();
  }
  ASSERT_EQ(balances, 1000 - 25);
  ASSERT_EQ(held, 50 + 15);

  ledger::v1::GetRewardLiabilityResponse report;
  EXPECT_EQ(rewards_->GetRewardLiability(harness::Context(Member("alice")).get(),
                                         ledger::v1::GetRewardLiabilityRequest(), &report)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(rewards_->GetRewardLiability(harness::Context(admin_).get(),
                                           ledger::v1::GetRewardLiabilityRequest(), &report)
                  .ok());
  EXPECT_EQ(report.outstanding_points(), balances);
  EXPECT_EQ(report.held_points(), held);
  EXPECT_EQ(report.available_points(), balances - held);
  EXPECT_EQ(report.awaiting_approval_points(), 40);
  EXPECT_EQ(report.people(), 4);
  EXPECT_EQ(report.settings().currency_name(), "coins");
  // 975 points x 0.0125 = 12.1875 EUR.
  EXPECT_EQ(report.outstanding_money().currency_code(), "EUR");
  EXPECT_EQ(report.outstanding_money().units(), 12);
  EXPECT_EQ(report.outstanding_money().nanos(), 187'500'000);
  // 65 x 0.0125 = 0.8125.
  EXPECT_EQ(report.held_money().units(), 0);
  EXPECT_EQ(report.held_money().nanos(), 812'500'000);
  ExpectLedgerConsistent();
}

}  // namespace
}  // namespace ledger_test
