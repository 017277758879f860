// Attack tests against the real ledger (issue 12, findings 7, 9 and 11): a
// real redis-server and the real ledger_server over gRPC. Each test uses its
// own org. Every refusal is checked for its code, a message a client can act
// on, and that nothing changed (balances, the outbox, the audit stream).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/redis/redis_client.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

namespace lv1 = ledger::v1;
using grpc::StatusCode;

// The ledger's bounds (services/ledger/ledger_rules.h), restated: the test
// pins the contract, not the constant.
constexpr int64_t kMaxAmount = 1'000'000'000'000;        // 10^12
constexpr int64_t kMaxBalance = 1'000'000'000'000'000;   // 10^15
constexpr int kMaxPendingRedemptions = 20;

lv1::Account Allowance(const std::string& person) {
  lv1::Account a;
  a.set_type(lv1::ACCOUNT_TYPE_ALLOWANCE);
  a.set_person_id(person);
  return a;
}

lv1::Account Earned(const std::string& person) {
  lv1::Account a;
  a.set_type(lv1::ACCOUNT_TYPE_EARNED);
  a.set_person_id(person);
  return a;
}

lv1::Account Issuer() {
  lv1::Account a;
  a.set_type(lv1::ACCOUNT_TYPE_ISSUER);
  return a;
}

lv1::Transfer Kudos(const std::string& id, const std::string& from, const std::string& to,
                    int64_t amount) {
  lv1::Transfer t;
  t.set_transfer_id(id);
  *t.mutable_debit_account() = Allowance(from);
  *t.mutable_credit_account() = Earned(to);
  t.set_amount(amount);
  t.set_kind(lv1::TRANSFER_KIND_KUDOS);
  t.set_reference(id);
  (*t.mutable_tags())["giver"] = from;
  return t;
}

std::string ServiceToken(const std::string& service, const std::string& org) {
  auto token = common::auth::MintServiceToken(service, org, common::auth::kDevServiceSecret,
                                              absl::Now());
  if (!token.ok()) throw std::runtime_error(std::string(token.status().message()));
  return *token;
}

// An org per test, within the platform's id rule (at most 64 characters):
// long test names are shortened and kept apart by a hash of the full name.
std::string TestOrg(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = prefix + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-", absl::Hex(std::hash<std::string>()(name) & 0xffffffff,
                                                       absl::kZeroPad8));
}

class LedgerHardening : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    common::redis::PoolOptions options;
    options.endpoint.port = redis_->port();
    options.size = 2;
    pool_ = new common::redis::Pool(options);
  }
  static void TearDownTestSuite() {
    delete pool_;
    delete ledger_;
    delete redis_;
  }

  void SetUp() override {
    org_ = TestOrg("hard-");
    stub_ = lv1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = harness::MintToken(org_, "root", {"admin"});
    kudos_ = ServiceToken("kudos", org_);
  }

  std::string Member(const std::string& person) { return harness::MintToken(org_, person); }
  std::string Key(const std::string& suffix) { return "ledger:{" + org_ + "}:" + suffix; }

  grpc::Status Post(const std::string& token, const std::vector<lv1::Transfer>& transfers,
                    bool linked = true) {
    lv1::PostTransfersRequest request;
    for (const lv1::Transfer& t : transfers) *request.add_transfers() = t;
    request.set_linked(linked);
    lv1::PostTransfersResponse response;
    return stub_->PostTransfers(harness::Context(token).get(), request, &response);
  }

  lv1::GetBalanceResponse BalanceInfo(const lv1::Account& account) {
    lv1::GetBalanceRequest request;
    *request.mutable_account() = account;
    lv1::GetBalanceResponse response;
    grpc::Status status = stub_->GetBalance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  int64_t Balance(const lv1::Account& account) { return BalanceInfo(account).balance(); }

  grpc::Status Adjust(const std::string& token, const std::string& request_id,
                      const std::string& person, int64_t amount) {
    lv1::AdjustBalanceRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_amount(amount);
    request.set_reason("correction");
    lv1::AdjustBalanceResponse response;
    return stub_->AdjustBalance(harness::Context(token).get(), request, &response);
  }

  grpc::Status Redeem(const std::string& token, const std::string& request_id, int64_t points,
                      const std::string& person = "", lv1::Redemption* out = nullptr) {
    lv1::CreateRedemptionRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_reward("mug");
    request.set_points(points);
    lv1::CreateRedemptionResponse response;
    grpc::Status status =
        stub_->CreateRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Fulfill(const std::string& token, const std::string& id) {
    lv1::FulfillRedemptionRequest request;
    request.set_redemption_id(id);
    lv1::FulfillRedemptionResponse response;
    return stub_->FulfillRedemption(harness::Context(token).get(), request, &response);
  }

  grpc::Status Cancel(const std::string& token, const std::string& id) {
    lv1::CancelRedemptionRequest request;
    request.set_redemption_id(id);
    lv1::CancelRedemptionResponse response;
    return stub_->CancelRedemption(harness::Context(token).get(), request, &response);
  }

  grpc::Status SetPolicy(const std::string& token, int64_t points) {
    lv1::SetAllowancePolicyRequest request;
    request.mutable_policy()->set_points_per_period(points);
    lv1::SetAllowancePolicyResponse response;
    return stub_->SetAllowancePolicy(harness::Context(token).get(), request, &response);
  }

  common::redis::Reply Redis(const common::redis::Command& command) {
    absl::StatusOr<common::redis::Reply> reply = pool_->Run(command);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : common::redis::Reply();
  }

  // Everything a refusal must leave as it was: the balances, the journal,
  // the outbox and the audit stream.
  std::string State() {
    std::map<std::string, std::string> balances;
    const auto& flat = Redis({"HGETALL", Key("bal")}).elements;
    for (size_t i = 0; i + 1 < flat.size(); i += 2) balances[flat[i].str] = flat[i + 1].str;
    std::string state;
    for (const auto& [account, balance] : balances) absl::StrAppend(&state, account, "=", balance, " ");
    absl::StrAppend(&state, "journal=", Redis({"LLEN", Key("journal")}).integer,
                    " outbox=", Redis({"XLEN", Key("outbox")}).integer,
                    " audit=", Redis({"XLEN", "audit:{" + org_ + "}"}).integer);
    return state;
  }

  // {action, actor, target} of each audit entry of the org, oldest first.
  std::vector<std::map<std::string, std::string>> Audit() {
    common::redis::Reply reply = Redis({"XRANGE", "audit:{" + org_ + "}", "-", "+"});
    std::vector<std::map<std::string, std::string>> entries;
    for (const auto& entry : reply.elements) {
      std::map<std::string, std::string> fields;
      const auto& flat = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < flat.size(); i += 2) fields[flat[i].str] = flat[i + 1].str;
      entries.push_back(fields);
    }
    return entries;
  }

  // How often Redis ran `command` (scripts' calls included) since `reset`.
  int64_t CommandCalls(const std::string& command) {
    std::string info = Redis({"INFO", "commandstats"}).str;
    std::string prefix = "cmdstat_" + command + ":calls=";
    for (absl::string_view line : absl::StrSplit(info, "\r\n")) {
      if (!absl::ConsumePrefix(&line, prefix)) continue;
      int64_t calls = 0;
      EXPECT_TRUE(absl::SimpleAtoi(line.substr(0, line.find(',')), &calls));
      return calls;
    }
    return 0;
  }

  static harness::RedisServer* redis_;
  static harness::Service* ledger_;
  static common::redis::Pool* pool_;
  std::unique_ptr<lv1::LedgerService::Stub> stub_;
  std::string org_, admin_, kudos_;
};

harness::RedisServer* LedgerHardening::redis_ = nullptr;
harness::Service* LedgerHardening::ledger_ = nullptr;
common::redis::Pool* LedgerHardening::pool_ = nullptr;

// ---- finding 7: who may move points ------------------------------------------------

// An org admin used to post KUDOS from any member's allowance to anyone,
// themselves included, with no audit entry.
TEST_F(LedgerHardening, PostTransfers_RefusesAdminsAndPointsThemToAdjustBalance) {
  std::string before = State();
  grpc::Status status = Post(admin_, {Kudos("steal", "alice", "root", 100)});
  EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "AdjustBalance"))
      << status.error_message();
  EXPECT_EQ(State(), before);
  EXPECT_EQ(Balance(Earned("root")), 0);
  // The kudos service still posts.
  EXPECT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 5)}).ok());
}

// Service identities are told apart by subject: the gateway (and any other
// service but kudos) moves no points, whatever roles its token claims.
TEST_F(LedgerHardening, PostTransfers_AndAdjustBalance_RefuseEveryServiceButKudos) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 50)}).ok());
  lv1::Redemption pending;
  ASSERT_TRUE(Redeem(admin_, "r1", 10, "bob", &pending).ok());
  std::string before = State();

  common::auth::TokenRequest admin_claims;
  admin_claims.subject = "gateway";
  admin_claims.org = org_;
  admin_claims.roles = {"service", "admin"};
  admin_claims.audience = common::auth::kServiceAudience;
  auto service_admin =
      common::auth::MintHs256(admin_claims, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(service_admin.ok());
  for (const std::string& token :
       {ServiceToken("gateway", org_), ServiceToken("leaderboard", org_), *service_admin}) {
    for (grpc::Status status :
         {Post(token, {Kudos("k2", "alice", "bob", 5)}), Adjust(token, "a1", "bob", 1000),
          SetPolicy(token, 1'000'000), Fulfill(token, pending.redemption_id()),
          Cancel(token, pending.redemption_id())}) {
      // PERMISSION_DENIED here; UNAUTHENTICATED once the auth layer refuses
      // service tokens that claim more than the service role.
      EXPECT_TRUE(status.error_code() == StatusCode::PERMISSION_DENIED ||
                  status.error_code() == StatusCode::UNAUTHENTICATED)
          << status.error_code() << " " << status.error_message();
    }
  }
  EXPECT_EQ(State(), before);
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 10);
}

// Whatever an admin may do to points is in the org's audit stream, written
// in the same atomic step; a retry that changes nothing writes no entry, and
// what members do for themselves is not an admin action.
TEST_F(LedgerHardening, AdminLedgerActions_AreEachAudited) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 50)}).ok());
  ASSERT_TRUE(Redeem(Member("bob"), "own", 5).ok());
  lv1::Redemption own;
  ASSERT_TRUE(Redeem(Member("bob"), "own2", 5, "", &own).ok());
  ASSERT_TRUE(Cancel(Member("bob"), own.redemption_id()).ok());
  // The kudos service mirrors org settings (kudos audits UpdateOrgSettings).
  ASSERT_TRUE(SetPolicy(kudos_, 100).ok());
  ASSERT_TRUE(Audit().empty());

  lv1::Redemption first, second;
  ASSERT_TRUE(Redeem(admin_, "for-bob-1", 10, "bob", &first).ok());
  ASSERT_TRUE(Redeem(admin_, "for-bob-1", 10, "bob").ok());  // a retry
  ASSERT_TRUE(Redeem(admin_, "for-bob-2", 7, "bob", &second).ok());
  ASSERT_TRUE(Fulfill(admin_, first.redemption_id()).ok());
  ASSERT_TRUE(Fulfill(admin_, first.redemption_id()).ok());  // a retry
  ASSERT_TRUE(Cancel(admin_, second.redemption_id()).ok());
  ASSERT_TRUE(SetPolicy(admin_, 40).ok());
  ASSERT_TRUE(Adjust(admin_, "adj-1", "bob", 3).ok());

  std::vector<std::map<std::string, std::string>> audit = Audit();
  std::vector<std::string> actions;
  for (auto& entry : audit) {
    actions.push_back(entry["action"]);
    EXPECT_EQ(entry["actor"], "root");
    EXPECT_FALSE(entry["time"].empty());
  }
  EXPECT_EQ(actions, (std::vector<std::string>{
                         "ledger.create_redemption", "ledger.create_redemption",
                         "ledger.fulfill_redemption", "ledger.cancel_redemption",
                         "ledger.set_allowance_policy", "ledger.adjust_balance"}));
  ASSERT_EQ(audit.size(), 6u);
  EXPECT_EQ(audit[0]["target"], "earned:bob");
  EXPECT_EQ(audit[0]["redemption_id"], first.redemption_id());
  EXPECT_EQ(audit[0]["points"], "10");
  EXPECT_EQ(audit[2]["redemption_id"], first.redemption_id());
  EXPECT_EQ(audit[2]["transfer_id"], "redemption:" + first.redemption_id());
  EXPECT_EQ(audit[3]["redemption_id"], second.redemption_id());
  EXPECT_EQ(audit[4]["points_per_period"], "40");
}

// ---- finding 9: redemption holds ----------------------------------------------------

// A member used to open any number of holds; every balance read and debit
// then summed them one HGET each inside Redis.
TEST_F(LedgerHardening, CreateRedemption_RefusesPendingHoldsPastThePersonsCap) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 100)}).ok());
  std::string bob = Member("bob");
  std::vector<lv1::Redemption> holds(kMaxPendingRedemptions);
  for (int i = 0; i < kMaxPendingRedemptions; ++i) {
    ASSERT_TRUE(Redeem(bob, absl::StrCat("r", i), 1, "", &holds[i]).ok()) << i;
  }
  std::string before = State();
  long long holds_before = Redis({"ZCARD", Key("holds:bob")}).integer;
  grpc::Status refused = Redeem(bob, "one-more", 1);
  EXPECT_EQ(refused.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(refused.error_message(),
                                absl::StrCat(kMaxPendingRedemptions, " pending redemptions")))
      << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "cancel")) << refused.error_message();
  EXPECT_EQ(State(), before);
  EXPECT_EQ(Redis({"ZCARD", Key("holds:bob")}).integer, holds_before);
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), kMaxPendingRedemptions);
  // An admin cannot exceed it for bob either; a retry of an existing one is
  // still answered.
  EXPECT_EQ(Redeem(admin_, "admin-one-more", 1, "bob").error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(Redeem(bob, "r0", 1).ok());
  // Settling one makes room for one.
  ASSERT_TRUE(Cancel(bob, holds[0].redemption_id()).ok());
  ASSERT_TRUE(Fulfill(admin_, holds[1].redemption_id()).ok());
  EXPECT_TRUE(Redeem(bob, "one-more", 1).ok());
  EXPECT_TRUE(Redeem(bob, "two-more", 1).ok());
  EXPECT_EQ(Redeem(bob, "three-more", 1).error_code(), StatusCode::FAILED_PRECONDITION);
  lv1::GetBalanceResponse balance = BalanceInfo(Earned("bob"));
  EXPECT_EQ(balance.balance(), 99);
  EXPECT_EQ(balance.held(), kMaxPendingRedemptions);
  EXPECT_EQ(balance.available(), 99 - kMaxPendingRedemptions);
}

// Balance reads and debits read one held counter, whatever the number of
// holds (counted with Redis's own command statistics, scripts included).
TEST_F(LedgerHardening, HeldPoints_AreReadWithoutOneLookupPerHold) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 100)}).ok());
  std::string bob = Member("bob");
  for (int i = 0; i < kMaxPendingRedemptions; ++i) {
    ASSERT_TRUE(Redeem(bob, absl::StrCat("r", i), 2).ok()) << i;
  }
  Redis({"CONFIG", "RESETSTAT"});
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 2 * kMaxPendingRedemptions);
  ASSERT_TRUE(Adjust(admin_, "minus", "bob", -10).ok());
  EXPECT_EQ(Adjust(admin_, "too-much", "bob", -71).error_code(), StatusCode::FAILED_PRECONDITION);
  // A few HGETs per call (balance, idempotency), none per hold: fewer in
  // all than there are holds.
  EXPECT_LT(CommandCalls("hget"), kMaxPendingRedemptions);
  EXPECT_EQ(BalanceInfo(Earned("bob")).available(), 100 - 10 - 2 * kMaxPendingRedemptions);
}

// ---- finding 11: exact arithmetic ---------------------------------------------------

// An HINCRBY overflow in the middle of a linked apply used to leave the
// transfers before it written (Redis does not roll a script back).
TEST_F(LedgerHardening, PostTransfers_LinkedBatchThatWouldOverflowWritesNothing) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k0", "dave", "erin", 1)}).ok());  // the org exists
  // A balance near the top of a 64-bit integer (as a bug or a restore left it).
  Redis({"HSET", Key("bal"), "earned:carol", "9223372036854775800"});
  std::string before = State();
  grpc::Status status =
      Post(kudos_, {Kudos("k1", "alice", "bob", 5), Kudos("k2", "alice", "carol", 90)});
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "transfers[1]")) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "earned:carol"))
      << status.error_message();
  EXPECT_EQ(State(), before);
  EXPECT_EQ(Redis({"KEYS", Key("spent:alice:*")}).elements.size(), 0u);
}

// Balances stay within +-10^15 (amounts within 10^12), so every sum and
// comparison in the scripts is exact in a Lua double (< 2^53).
TEST_F(LedgerHardening, Balances_StayWithinTheBoundAtTheExtremes) {
  ASSERT_TRUE(Post(kudos_, {Kudos("k0", "dave", "erin", 1)}).ok());
  // Credits up to the bound exactly, not one point past it.
  Redis({"HSET", Key("bal"), "earned:bob", absl::StrCat(kMaxBalance - 3)});
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 3)}).ok());
  EXPECT_EQ(Balance(Earned("bob")), kMaxBalance);
  std::string before = State();
  grpc::Status past = Post(kudos_, {Kudos("k2", "alice", "bob", 1)});
  EXPECT_EQ(past.error_code(), StatusCode::FAILED_PRECONDITION) << past.error_message();
  EXPECT_TRUE(absl::StrContains(past.error_message(), "1000000000000000"))
      << past.error_message();
  EXPECT_EQ(Adjust(admin_, "up", "bob", 1).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(State(), before);

  // The issuer, debited by every positive adjustment, has the same floor.
  Redis({"HSET", Key("bal"), "issuer", absl::StrCat(-kMaxBalance + kMaxAmount)});
  ASSERT_TRUE(Adjust(admin_, "largest", "erin", kMaxAmount).ok());
  EXPECT_EQ(Balance(Issuer()), -kMaxBalance);
  EXPECT_EQ(Adjust(admin_, "one-more", "erin", 1).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Adjust(admin_, "too-large", "erin", kMaxAmount + 1).error_code(),
            StatusCode::INVALID_ARGUMENT);

  // A stored balance beyond the bound (above 2^53, where doubles skip
  // integers) is never computed with: it is refused, not rounded.
  Redis({"HSET", Key("bal"), "earned:frank", "9007199254740993"});
  before = State();
  grpc::Status redeem = Redeem(admin_, "big", 1, "frank");
  EXPECT_EQ(redeem.error_code(), StatusCode::FAILED_PRECONDITION) << redeem.error_message();
  EXPECT_EQ(Adjust(admin_, "down", "frank", -1).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Post(kudos_, {Kudos("k3", "alice", "frank", 1)}).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(State(), before);
}

}  // namespace
