// Integration tests: the real ledger_server over gRPC against a real
// redis-server. Each test uses its own org, so they share one server pair.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/audit.h"
#include "common/auth/auth.h"
#include "common/redis/org_registry.h"
#include "services/ledger/ledger_rules.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledger_test {
namespace {

using ledger::v1::LedgerEvent;
using ledger::v1::PostTransfersRequest;
using ledger::v1::PostTransfersResponse;

// An org per test, within the platform's id rule (at most 64 characters):
// long test names are shortened and kept apart by a hash of the full name.
std::string TestOrg(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = prefix + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-", absl::Hex(std::hash<std::string>()(name) & 0xffffffff,
                                                       absl::kZeroPad8));
}

class LedgerApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new LedgerEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg("org-");
    stub_ = env_->NewStub();
    admin_ = harness::MintToken(org_, "root", {"admin"});
    service_ = ServiceToken(org_);
  }

  std::string Member(const std::string& person) { return harness::MintToken(org_, person); }

  grpc::Status Post(const std::string& token, const std::vector<Transfer>& transfers, bool linked,
                    PostTransfersResponse* out = nullptr) {
    PostTransfersRequest request;
    for (const Transfer& t : transfers) *request.add_transfers() = t;
    request.set_linked(linked);
    PostTransfersResponse response;
    grpc::Status status = stub_->PostTransfers(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  ledger::v1::GetBalanceResponse BalanceInfo(const Account& account) {
    ledger::v1::GetBalanceRequest request;
    *request.mutable_account() = account;
    ledger::v1::GetBalanceResponse response;
    grpc::Status status = stub_->GetBalance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  int64_t Balance(const Account& account) { return BalanceInfo(account).balance(); }

  grpc::Status GetBalanceAs(const std::string& token, const Account& account) {
    ledger::v1::GetBalanceRequest request;
    *request.mutable_account() = account;
    ledger::v1::GetBalanceResponse response;
    return stub_->GetBalance(harness::Context(token).get(), request, &response);
  }

  grpc::Status SetPolicy(int64_t points, common::v1::AllowancePeriod period,
                         const std::string& token = "") {
    ledger::v1::SetAllowancePolicyRequest request;
    request.mutable_policy()->set_points_per_period(points);
    request.mutable_policy()->set_period(period);
    ledger::v1::SetAllowancePolicyResponse response;
    return stub_->SetAllowancePolicy(harness::Context(token.empty() ? admin_ : token).get(),
                                     request, &response);
  }

  std::vector<LedgerEvent> Outbox() {
    auto reply = env_->pool().Run({"XRANGE", "ledger:{" + org_ + "}:outbox", "-", "+"});
    EXPECT_TRUE(reply.ok());
    std::vector<LedgerEvent> events;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      EXPECT_EQ(fields[0].str, "event");
      LedgerEvent event;
      EXPECT_TRUE(event.ParseFromString(fields[1].str));
      events.push_back(event);
    }
    return events;
  }

  ledger::v1::VerifyLedgerResponse Verify() {
    ledger::v1::VerifyLedgerResponse response;
    grpc::Status status = stub_->VerifyLedger(harness::Context(admin_).get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Redeem(const std::string& token, const std::string& request_id, int64_t points,
                      ledger::v1::Redemption* out, int64_t hold_seconds = 0,
                      const std::string& person = "") {
    ledger::v1::CreateRedemptionRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_reward("mug");
    request.set_points(points);
    request.set_hold_seconds(hold_seconds);
    ledger::v1::CreateRedemptionResponse response;
    grpc::Status status =
        stub_->CreateRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Fulfill(const std::string& token, const std::string& id,
                       ledger::v1::Redemption* out = nullptr) {
    ledger::v1::FulfillRedemptionRequest request;
    request.set_redemption_id(id);
    ledger::v1::FulfillRedemptionResponse response;
    grpc::Status status =
        stub_->FulfillRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Cancel(const std::string& token, const std::string& id,
                      ledger::v1::Redemption* out = nullptr) {
    ledger::v1::CancelRedemptionRequest request;
    request.set_redemption_id(id);
    ledger::v1::CancelRedemptionResponse response;
    grpc::Status status =
        stub_->CancelRedemption(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.redemption();
    return status;
  }

  grpc::Status Adjust(const std::string& request_id, const std::string& person, int64_t amount,
                      const std::string& reason, Transfer* out = nullptr,
                      const std::string& token = "") {
    ledger::v1::AdjustBalanceRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_amount(amount);
    request.set_reason(reason);
    ledger::v1::AdjustBalanceResponse response;
    grpc::Status status = stub_->AdjustBalance(
        harness::Context(token.empty() ? admin_ : token).get(), request, &response);
    if (out != nullptr) *out = response.transfer();
    return status;
  }

  static LedgerEnv* env_;
  std::string org_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  std::string admin_;
  std::string service_;
};

LedgerEnv* LedgerApi::env_ = nullptr;

// ---- posting ----------------------------------------------------------------------

TEST_F(LedgerApi, PostTransfers_MovesPointsFromAllowanceToEarned) {
  PostTransfersResponse response;
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5), Kudos("k2", "alice", "carol", 3)},
                   true, &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_TRUE(response.results(0).created());
  EXPECT_EQ(response.results(0).status_code(), 0);
  EXPECT_EQ(response.results(0).transfer().sequence(), 1);
  EXPECT_EQ(response.results(1).transfer().sequence(), 2);
  EXPECT_GT(response.results(0).transfer().post_time().seconds(), 0);
  EXPECT_EQ(Balance(Allowance("alice")), -8);
  EXPECT_EQ(Balance(Earned("bob")), 5);
  EXPECT_EQ(Balance(Earned("carol")), 3);
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(LedgerApi, PostTransfers_RetryWithSamePayloadReturnsOriginal) {
  PostTransfersResponse first, second;
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5)}, true, &first).ok());
  // A fresh message: its tags map may serialize in another order, still the same payload.
  Transfer again = Kudos("k1", "alice", "bob", 5);
  ASSERT_TRUE(Post(service_, {again}, true, &second).ok());
  ASSERT_EQ(second.results_size(), 1);
  EXPECT_FALSE(second.results(0).created());
  EXPECT_EQ(second.results(0).status_code(), 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(second.results(0).transfer(), first.results(0).transfer()));
  EXPECT_EQ(Balance(Earned("bob")), 5);
  EXPECT_EQ(Outbox().size(), 1u);  // no second event
}

TEST_F(LedgerApi, PostTransfers_SameIdWithDifferentPayloadIsAlreadyExists) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5)}, true).ok());
  grpc::Status status =
      Post(service_, {Kudos("k0", "alice", "bob", 1), Kudos("k1", "alice", "bob", 7)}, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(),
            "transfers[1]: transfer_id 'k1' was already posted with a different payload "
            "(amount: posted 5, now 7)");
  EXPECT_EQ(Balance(Earned("bob")), 5);  // k0 was not applied either
}

TEST_F(LedgerApi, PostTransfers_LinkedBatchIsAllOrNone) {
  ASSERT_TRUE(SetPolicy(10, common::v1::ALLOWANCE_PERIOD_MONTH).ok());
  // Each fits alone, together they exceed alice's 10 points.
  grpc::Status status = Post(
      service_, {Kudos("k1", "alice", "bob", 6), Kudos("k2", "alice", "carol", 6)}, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StartsWith(status.error_message(),
                               "transfers[1]: allowance: 'alice' has 4 of 10 points left"))
      << status.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_EQ(Balance(Allowance("alice")), 0);
  EXPECT_TRUE(Outbox().empty());
  // Nothing was recorded: k1 can now be posted with another payload.
  EXPECT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 2)}, true).ok());
}

TEST_F(LedgerApi, PostTransfers_UnlinkedBatchReportsEachResult) {
  ASSERT_TRUE(SetPolicy(10, common::v1::ALLOWANCE_PERIOD_MONTH).ok());
  Transfer invalid = Kudos("k2", "alice", "alice", 1);
  PostTransfersResponse response;
  ASSERT_TRUE(Post(service_,
                   {Kudos("k1", "alice", "bob", 6), invalid, Kudos("k3", "alice", "carol", 6),
                    Kudos("k4", "dave", "carol", 2)},
                   false, &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 4);
  EXPECT_EQ(response.results(0).status_code(), 0);
  EXPECT_TRUE(response.results(0).created());
  EXPECT_EQ(response.results(1).status_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(response.results(1).error_message(),
                               "transfers[1].credit_account.person_id"));
  EXPECT_EQ(response.results(2).status_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(response.results(2).transfer_id(), "k3");
  EXPECT_EQ(response.results(3).status_code(), 0);
  EXPECT_EQ(Balance(Earned("carol")), 2);
  EXPECT_EQ(Balance(Earned("bob")), 6);
  std::vector<LedgerEvent> events = Outbox();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].transfers_posted().transfers_size(), 2);
}

TEST_F(LedgerApi, PostTransfers_AllowanceExhaustedIsResourceExhaustedAndChangesNothing) {
  grpc::Status first = Post(service_, {Kudos("k1", "alice", "bob", 80)}, true);
  ASSERT_TRUE(first.ok()) << first.error_code() << " " << first.error_message();
  ledger::v1::GetAllowanceRequest request;
  ledger::v1::GetAllowanceResponse allowance;
  ASSERT_TRUE(stub_->GetAllowance(harness::Context(Member("alice")).get(), request, &allowance)
                  .ok());
  EXPECT_EQ(allowance.person_id(), "alice");
  EXPECT_EQ(allowance.spent_points(), 80);
  EXPECT_EQ(allowance.remaining_points(), 20);
  EXPECT_EQ(allowance.policy().points_per_period(), 100);

  grpc::Status status = Post(service_, {Kudos("k2", "alice", "carol", 30)}, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            absl::StrCat("transfers[0]: allowance: 'alice' has 20 of 100 points left in period ",
                         allowance.period(), ", 30 requested"));
  EXPECT_EQ(Balance(Earned("carol")), 0);
  EXPECT_EQ(Balance(Allowance("alice")), -80);
  EXPECT_EQ(Outbox().size(), 1u);
  // Exactly the rest still fits.
  EXPECT_TRUE(Post(service_, {Kudos("k2", "alice", "carol", 20)}, true).ok());
}

TEST_F(LedgerApi, PostTransfers_RejectsInvalidRequestsNamingTheField) {
  Transfer t = Kudos("k1", "alice", "bob", 5);
  t.set_kind(ledger::v1::TRANSFER_KIND_REDEMPTION);
  grpc::Status status = Post(service_, {Kudos("k0", "alice", "bob", 1), t}, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "transfers[1].kind:"));
  std::vector<Transfer> many;
  for (int i = 0; i < 101; ++i) many.push_back(Kudos(absl::StrCat("k", i), "alice", "bob", 1));
  EXPECT_EQ(Post(service_, many, false).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Post(service_, {}, false).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LedgerApi, PostTransfers_OutboxEventDecodesToTheCreatedTransfers) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5)}, true).ok());
  PostTransfersResponse response;
  // k1 is a retry: only k2 and k3 are new, so only they are in the event.
  ASSERT_TRUE(Post(service_,
                   {Kudos("k1", "alice", "bob", 5), Kudos("k2", "alice", "carol", 2),
                    Kudos("k3", "dave", "bob", 4)},
                   true, &response)
                  .ok());
  std::vector<LedgerEvent> events = Outbox();
  ASSERT_EQ(events.size(), 2u);
  const ledger::v1::TransfersPosted& posted = events[1].transfers_posted();
  EXPECT_EQ(posted.org_id(), org_);
  EXPECT_GT(posted.post_time().seconds(), 0);
  ASSERT_EQ(posted.transfers_size(), 2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(posted.transfers(0), response.results(1).transfer()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(posted.transfers(1), response.results(2).transfer()));
  EXPECT_EQ(posted.transfers(1).transfer_id(), "k3");
  EXPECT_EQ(posted.transfers(1).sequence(), 3);
  EXPECT_EQ(posted.transfers(1).tags().at("giver"), "dave");
  EXPECT_EQ(posted.transfers(1).debit_account().person_id(), "dave");
  EXPECT_EQ(posted.transfers(1).amount(), 4);
  // The org is registered for consumers, in the registry of its own slot.
  auto member = env_->pool().Run({"SISMEMBER", common::redis::OrgRegistryKey(org_), org_});
  ASSERT_TRUE(member.ok());
  EXPECT_EQ(member->integer, 1);
}

TEST_F(LedgerApi, PostTransfers_LargestValidRequestIsAccepted) {
  std::vector<Transfer> transfers;
  for (int i = 0; i < 100; ++i) {
    Transfer t = Kudos(absl::StrCat(i, "-", std::string(120, 'x')), "alice", "bob", 1,
                       std::string(256, 'r'));
    t.mutable_tags()->clear();
    for (int tag = 0; tag < 16; ++tag) {
      (*t.mutable_tags())[absl::StrCat(tag, std::string(250, 'k'))] = std::string(256, 'v');
    }
    transfers.push_back(t);
  }
  PostTransfersResponse response;
  grpc::Status status = Post(service_, transfers, true, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results_size(), 100);
  EXPECT_EQ(Balance(Earned("bob")), 100);  // exactly the default 100-point allowance
  std::vector<LedgerEvent> events = Outbox();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].transfers_posted().transfers_size(), 100);
}

TEST_F(LedgerApi, PostTransfers_ConcurrentCallersNeverOverspendAnAllowance) {
  ASSERT_TRUE(SetPolicy(50, common::v1::ALLOWANCE_PERIOD_MONTH).ok());
  std::atomic<int> accepted{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int worker = 0; worker < 6; ++worker) {
    threads.emplace_back([&, worker] {
      auto stub = env_->NewStub();
      for (int i = 0; i < 15; ++i) {
        PostTransfersRequest request;
        *request.add_transfers() =
            Kudos(absl::StrCat("w", worker, "-", i), "alice", absl::StrCat("p", worker), 1);
        request.set_linked(true);
        PostTransfersResponse response;
        grpc::Status status =
            stub->PostTransfers(harness::Context(service_).get(), request, &response);
        if (status.ok()) {
          ++accepted;
        } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 50);
  EXPECT_EQ(refused.load(), 40);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(Balance(Allowance("alice")), -50);
  ledger::v1::VerifyLedgerResponse verify = Verify();
  EXPECT_TRUE(verify.consistent());
  EXPECT_EQ(verify.transfer_count(), 50);
}

// ---- permissions --------------------------------------------------------------------

TEST_F(LedgerApi, Permissions_OnlyTheKudosServicePosts) {
  grpc::Status status = Post(Member("alice"), {Kudos("k1", "alice", "bob", 5)}, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Post(harness::MintToken(org_, "tv", {"screen"}), {Kudos("k1", "alice", "bob", 5)},
                 true)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Admins move points with AdjustBalance, which is audited.
  EXPECT_EQ(Post(admin_, {Kudos("k1", "alice", "bob", 5)}, true).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5)}, true).ok());
}

// Issue 18: the programs service pays awards and celebrations from the
// org's issuer; each service posts only its own kinds.
TEST_F(LedgerApi, PostTransfers_ProgramsServicePostsAwardFromIssuerOnly) {
  absl::StatusOr<std::string> minted = common::auth::MintServiceToken(
      ledger::kProgramsServiceSubject, org_, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(minted.ok()) << minted.status();
  const std::string programs = *minted;
  auto award = [](const std::string& id, ledger::v1::TransferKind kind, int64_t amount) {
    Transfer t;
    t.set_transfer_id(id);
    *t.mutable_debit_account() = Issuer();
    *t.mutable_credit_account() = Earned("bob");
    t.set_amount(amount);
    t.set_kind(kind);
    t.set_reference("award-" + id);
    return t;
  };
  PostTransfersResponse paid;
  grpc::Status status = Post(programs, {award("a1", ledger::v1::TRANSFER_KIND_AWARD, 50),
                                        award("c1", ledger::v1::TRANSFER_KIND_CELEBRATION, 10)},
                             true, &paid);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(paid.results_size(), 2);
  EXPECT_TRUE(paid.results(0).created());
  PostTransfersResponse retried;
  ASSERT_TRUE(Post(programs, {award("a1", ledger::v1::TRANSFER_KIND_AWARD, 50)}, true, &retried)
                  .ok());
  EXPECT_FALSE(retried.results(0).created()) << "a retry with the same id is applied once";
  EXPECT_EQ(Balance(Earned("bob")), 60);
  EXPECT_EQ(Balance(Issuer()), -60);

  grpc::Status kudos_by_programs = Post(programs, {Kudos("k1", "alice", "bob", 5)}, true);
  EXPECT_EQ(kudos_by_programs.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(kudos_by_programs.error_message(), "transfers[0].kind"))
      << kudos_by_programs.error_message();
  EXPECT_EQ(Post(service_, {award("a2", ledger::v1::TRANSFER_KIND_AWARD, 5)}, true).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  Transfer from_allowance = award("a3", ledger::v1::TRANSFER_KIND_AWARD, 5);
  *from_allowance.mutable_debit_account() = Allowance("alice");
  grpc::Status wrong_debit = Post(programs, {from_allowance}, true);
  EXPECT_EQ(wrong_debit.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(wrong_debit.error_message(), "must be ISSUER"))
      << wrong_debit.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 60) << "refused posts move nothing";

  ledger::v1::VerifyLedgerResponse verify;
  ASSERT_TRUE(stub_->VerifyLedger(harness::Context(admin_).get(), {}, &verify).ok());
  EXPECT_TRUE(verify.consistent()) << verify.DebugString();
}

TEST_F(LedgerApi, Permissions_MemberReadsOnlyOwnAccounts) {
  EXPECT_TRUE(GetBalanceAs(Member("bob"), Earned("bob")).ok());
  EXPECT_TRUE(GetBalanceAs(Member("bob"), Allowance("bob")).ok());
  EXPECT_EQ(GetBalanceAs(Member("bob"), Earned("alice")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetBalanceAs(Member("bob"), Issuer()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(GetBalanceAs(service_, Earned("alice")).ok());
  EXPECT_TRUE(GetBalanceAs(admin_, Rewards()).ok());

  ledger::v1::ListTransfersRequest list;
  *list.mutable_account() = Earned("alice");
  ledger::v1::ListTransfersResponse listed;
  EXPECT_EQ(stub_->ListTransfers(harness::Context(Member("bob")).get(), list, &listed)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::GetAllowanceRequest allowance;
  allowance.set_person_id("alice");
  ledger::v1::GetAllowanceResponse allowance_response;
  EXPECT_EQ(stub_->GetAllowance(harness::Context(Member("bob")).get(), allowance,
                                &allowance_response)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(LedgerApi, Permissions_ScreenIsDeniedAndNoTokenIsUnauthenticated) {
  std::string screen = harness::MintToken(org_, "tv", {"screen"});
  EXPECT_EQ(GetBalanceAs(screen, Earned("tv")).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::GetBalanceRequest request;
  *request.mutable_account() = Earned("bob");
  ledger::v1::GetBalanceResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub_->GetBalance(&context, request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(LedgerApi, Permissions_OnlyAdminOrServiceSetsPolicy) {
  EXPECT_EQ(SetPolicy(5, common::v1::ALLOWANCE_PERIOD_WEEK, Member("alice")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(SetPolicy(5, common::v1::ALLOWANCE_PERIOD_WEEK, service_).ok());
  ledger::v1::GetAllowanceRequest request;
  request.set_person_id("alice");
  ledger::v1::GetAllowanceResponse response;
  ASSERT_TRUE(stub_->GetAllowance(harness::Context(admin_).get(), request, &response).ok());
  EXPECT_EQ(response.policy().points_per_period(), 5);
  EXPECT_TRUE(absl::StrContains(response.period(), "-W")) << response.period();
  EXPECT_LT(response.period_start().seconds(), response.period_end().seconds());
  EXPECT_EQ(response.remaining_points(), 5);
  EXPECT_EQ(Post(service_, {Kudos("k1", "alice", "bob", 6)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// ---- redemptions --------------------------------------------------------------------

TEST_F(LedgerApi, Redemption_HoldThenFulfilPostsToRewards) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 50)}, true).ok());
  ledger::v1::Redemption redemption;
  ASSERT_TRUE(Redeem(Member("bob"), "r1", 30, &redemption).ok());
  EXPECT_EQ(redemption.state(), ledger::v1::REDEMPTION_STATE_PENDING);
  EXPECT_EQ(redemption.person_id(), "bob");
  ledger::v1::GetBalanceResponse balance = BalanceInfo(Earned("bob"));
  EXPECT_EQ(balance.balance(), 50);
  EXPECT_EQ(balance.held(), 30);
  EXPECT_EQ(balance.available(), 20);

  // Retrying the create returns the same redemption and holds nothing more.
  ledger::v1::Redemption again;
  ASSERT_TRUE(Redeem(Member("bob"), "r1", 30, &again).ok());
  EXPECT_EQ(again.redemption_id(), redemption.redemption_id());
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 30);
  EXPECT_EQ(Redeem(Member("bob"), "r1", 31, nullptr).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  // Held points cannot be spent twice.
  grpc::Status status = Redeem(Member("bob"), "r2", 21, nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(),
            "points: 'bob' has 20 points available (balance 50, held 30), 21 needed");

  EXPECT_EQ(Fulfill(Member("bob"), redemption.redemption_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::Redemption fulfilled;
  ASSERT_TRUE(Fulfill(admin_, redemption.redemption_id(), &fulfilled).ok());
  EXPECT_EQ(fulfilled.state(), ledger::v1::REDEMPTION_STATE_FULFILLED);
  EXPECT_EQ(fulfilled.transfer_id(), "redemption:" + redemption.redemption_id());
  balance = BalanceInfo(Earned("bob"));
  EXPECT_EQ(balance.balance(), 20);
  EXPECT_EQ(balance.held(), 0);
  EXPECT_EQ(Balance(Rewards()), 30);
  // Fulfilling twice is a no-op.
  ASSERT_TRUE(Fulfill(admin_, redemption.redemption_id()).ok());
  EXPECT_EQ(Balance(Rewards()), 30);
  EXPECT_EQ(Cancel(admin_, redemption.redemption_id()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  std::vector<LedgerEvent> events = Outbox();
  ASSERT_EQ(events.size(), 2u);
  const Transfer& posted = events[1].transfers_posted().transfers(0);
  EXPECT_EQ(posted.kind(), ledger::v1::TRANSFER_KIND_REDEMPTION);
  EXPECT_EQ(posted.amount(), 30);
  EXPECT_EQ(posted.credit_account().type(), ledger::v1::ACCOUNT_TYPE_REWARDS);
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(LedgerApi, Redemption_CancelReleasesHoldAndCancelledCannotBeFulfilled) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 40)}, true).ok());
  ledger::v1::Redemption redemption;
  ASSERT_TRUE(Redeem(Member("bob"), "r1", 40, &redemption).ok());
  EXPECT_EQ(Cancel(Member("carol"), redemption.redemption_id()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ledger::v1::Redemption cancelled;
  ASSERT_TRUE(Cancel(Member("bob"), redemption.redemption_id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), ledger::v1::REDEMPTION_STATE_CANCELLED);
  EXPECT_EQ(BalanceInfo(Earned("bob")).available(), 40);
  grpc::Status status = Fulfill(admin_, redemption.redemption_id());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "cancelled")) << status.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 40);
  EXPECT_EQ(Fulfill(admin_, "rdm_nope").error_code(), grpc::StatusCode::NOT_FOUND);
  // Admins redeem for others, members only for themselves.
  EXPECT_EQ(Redeem(Member("carol"), "r9", 1, nullptr, 0, "bob").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Redeem(admin_, "r9", 1, nullptr, 0, "bob").ok());
}

TEST_F(LedgerApi, Redemption_HoldExpiresLazily) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 10)}, true).ok());
  ledger::v1::Redemption redemption;
  ASSERT_TRUE(Redeem(Member("bob"), "r1", 10, &redemption, /*hold_seconds=*/1).ok());
  EXPECT_EQ(BalanceInfo(Earned("bob")).available(), 0);
  EXPECT_EQ(Redeem(Member("bob"), "r2", 1, nullptr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ledger::v1::GetBalanceResponse balance = BalanceInfo(Earned("bob"));
  EXPECT_EQ(balance.held(), 0);
  EXPECT_EQ(balance.available(), 10);
  grpc::Status status = Fulfill(admin_, redemption.redemption_id());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "expired")) << status.error_message();
  ledger::v1::Redemption cancelled;
  ASSERT_TRUE(Cancel(admin_, redemption.redemption_id(), &cancelled).ok());
  EXPECT_EQ(cancelled.state(), ledger::v1::REDEMPTION_STATE_EXPIRED);
  EXPECT_TRUE(Redeem(Member("bob"), "r2", 10, nullptr).ok());
  EXPECT_EQ(Balance(Earned("bob")), 10);
}

// ---- adjustments ----------------------------------------------------------------------

// Holds created before the held counter existed (no counter key) are
// summed once, then counted as they are created, cancelled and fulfilled.
TEST_F(LedgerApi, Redemption_HeldCounterTakesOverHoldsMadeBeforeIt) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 50)}, true).ok());
  std::string bob = Member("bob");
  ledger::v1::Redemption five, six;
  ASSERT_TRUE(Redeem(bob, "r5", 5, &five).ok());
  ASSERT_TRUE(Redeem(bob, "r6", 6, &six).ok());
  ASSERT_TRUE(Redeem(bob, "r7", 7, nullptr).ok());
  ASSERT_TRUE(env_->pool().Run({"DEL", "ledger:{" + org_ + "}:held:bob"}).ok());
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 18);
  ASSERT_TRUE(Cancel(bob, six.redemption_id()).ok());
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 12);
  ASSERT_TRUE(Fulfill(admin_, five.redemption_id()).ok());
  ASSERT_TRUE(Redeem(bob, "r4", 4, nullptr).ok());
  ledger::v1::GetBalanceResponse balance = BalanceInfo(Earned("bob"));
  EXPECT_EQ(balance.balance(), 45);
  EXPECT_EQ(balance.held(), 11);
  EXPECT_EQ(balance.available(), 34);
  EXPECT_TRUE(Verify().consistent());
}

// During a rolling update an older replica adds or releases holds without the
// counter: a counter that cannot be right is summed again from the holds,
// never trusted (a negative one used to abort the ledger on every read).
TEST_F(LedgerApi, Redemption_HeldCounterThatCannotBeRightIsRepairedFromTheHolds) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 50)}, true).ok());
  std::string bob = Member("bob");
  ASSERT_TRUE(Redeem(bob, "r5", 5, nullptr).ok());
  ASSERT_TRUE(Redeem(bob, "r6", 6, nullptr).ok());
  const std::string counter = "ledger:{" + org_ + "}:held:bob";
  for (const char* wrong : {"-7", "0"}) {
    ASSERT_TRUE(env_->pool().Run({"SET", counter, wrong}).ok());
    ledger::v1::GetBalanceResponse balance = BalanceInfo(Earned("bob"));
    EXPECT_EQ(balance.held(), 11) << "counter was " << wrong;
    EXPECT_EQ(balance.available(), 39) << "counter was " << wrong;
  }
  // Holds all released by an older replica: a counter left above zero frees.
  ASSERT_TRUE(env_->pool().Run({"DEL", "ledger:{" + org_ + "}:holds:bob"}).ok());
  ASSERT_TRUE(env_->pool().Run({"SET", counter, "11"}).ok());
  EXPECT_EQ(BalanceInfo(Earned("bob")).held(), 0);
}

TEST_F(LedgerApi, AdjustBalance_PostsFromIssuerAndWritesOneAuditEntry) {
  Transfer transfer;
  ASSERT_TRUE(Adjust("a1", "bob", 25, "welcome bonus", &transfer).ok());
  EXPECT_EQ(transfer.kind(), ledger::v1::TRANSFER_KIND_ADJUSTMENT);
  EXPECT_EQ(transfer.debit_account().type(), ledger::v1::ACCOUNT_TYPE_ISSUER);
  EXPECT_EQ(Balance(Earned("bob")), 25);
  EXPECT_EQ(Balance(Issuer()), -25);
  // A retry returns the same transfer and writes no second audit entry.
  Transfer again;
  ASSERT_TRUE(Adjust("a1", "bob", 25, "welcome bonus", &again).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, transfer));
  EXPECT_EQ(Adjust("a1", "bob", 26, "welcome bonus").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  auto audit = env_->pool().Run({"XRANGE", common::audit::StreamKey(org_), "-", "+"});
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->elements.size(), 1u);
  std::map<std::string, std::string> fields;
  const auto& flat = audit->elements[0].elements[1].elements;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) fields[flat[i].str] = flat[i + 1].str;
  EXPECT_EQ(fields["actor"], "root");
  EXPECT_EQ(fields["action"], "ledger.adjust_balance");
  EXPECT_EQ(fields["target"], "earned:bob");
  EXPECT_EQ(fields["reason"], "welcome bonus");
  EXPECT_EQ(fields["amount"], "25");
  EXPECT_FALSE(fields["time"].empty());
  EXPECT_EQ(Outbox().size(), 1u);
}

TEST_F(LedgerApi, AdjustBalance_NeverTakesEarnedBelowZero) {
  ASSERT_TRUE(Adjust("a1", "bob", 10, "bonus").ok());
  grpc::Status status = Adjust("a2", "bob", -11, "correction");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(status.error_message(),
                               "amount: 'bob' has 10 points available (balance 10, held 0), 11"))
      << status.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 10);
  Transfer transfer;
  ASSERT_TRUE(Adjust("a3", "bob", -10, "correction", &transfer).ok());
  EXPECT_EQ(transfer.debit_account().type(), ledger::v1::ACCOUNT_TYPE_EARNED);
  EXPECT_EQ(transfer.amount(), 10);
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_EQ(Balance(Issuer()), 0);
  auto audit = env_->pool().Run({"XLEN", common::audit::StreamKey(org_)});
  EXPECT_EQ(audit->integer, 2);  // the refused one left no entry
}

TEST_F(LedgerApi, AdjustBalance_RequiresReasonAndAdmin) {
  grpc::Status status = Adjust("a1", "bob", 5, "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "reason: is required");
  EXPECT_EQ(Adjust("a1", "bob", 5, "bonus", nullptr, Member("bob")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Adjust("a1", "bob", 5, "bonus", nullptr, service_).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// ---- listing and verification -------------------------------------------------------------

TEST_F(LedgerApi, ListTransfers_PagesNewestFirstWithoutSkipOrRepeat) {
  ASSERT_TRUE(SetPolicy(1000, common::v1::ALLOWANCE_PERIOD_MONTH).ok());
  std::vector<Transfer> batch;
  for (int i = 0; i < 23; ++i) {
    batch.push_back(Kudos(absl::StrCat("k", i), i % 2 ? "alice" : "dave", "bob", 1 + i));
  }
  ASSERT_TRUE(Post(service_, batch, true).ok());
  ASSERT_TRUE(Post(service_, {Kudos("other", "alice", "carol", 1)}, true).ok());

  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    ledger::v1::ListTransfersRequest request;
    *request.mutable_account() = Earned("bob");
    request.set_page_size(5);
    request.set_page_token(token);
    ledger::v1::ListTransfersResponse response;
    ASSERT_TRUE(stub_->ListTransfers(harness::Context(Member("bob")).get(), request, &response)
                    .ok());
    for (const Transfer& t : response.transfers()) seen.push_back(t.transfer_id());
    token = response.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  ASSERT_EQ(seen.size(), 23u);
  EXPECT_EQ(pages, 5);
  for (int i = 0; i < 23; ++i) EXPECT_EQ(seen[i], absl::StrCat("k", 22 - i));
}

TEST_F(LedgerApi, ListTransfers_RejectsBadTokenAndPageSize) {
  ledger::v1::ListTransfersRequest request;
  *request.mutable_account() = Earned("bob");
  request.set_page_token("not-a-token");
  ledger::v1::ListTransfersResponse response;
  grpc::Status status = stub_->ListTransfers(harness::Context(admin_).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "page_token"));
  request.clear_page_token();
  request.set_page_size(501);
  EXPECT_EQ(stub_->ListTransfers(harness::Context(admin_).get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(LedgerApi, VerifyLedger_ReportsTamperedBalances) {
  ASSERT_TRUE(Post(service_, {Kudos("k1", "alice", "bob", 5)}, true).ok());
  ASSERT_TRUE(Adjust("a1", "carol", 3, "bonus").ok());
  ledger::v1::VerifyLedgerResponse ok = Verify();
  EXPECT_TRUE(ok.consistent());
  EXPECT_EQ(ok.transfer_count(), 2);
  EXPECT_EQ(ok.sum_of_balances(), 0);

  ASSERT_TRUE(env_->pool().Run({"HINCRBY", "ledger:{" + org_ + "}:bal", "earned:bob", "-7"}).ok());
  ledger::v1::VerifyLedgerResponse bad = Verify();
  EXPECT_FALSE(bad.consistent());
  EXPECT_EQ(bad.sum_of_balances(), -7);
  ASSERT_EQ(bad.differences_size(), 1);
  EXPECT_EQ(bad.differences(0).account().person_id(), "bob");
  EXPECT_EQ(bad.differences(0).stored_balance(), -2);
  EXPECT_EQ(bad.differences(0).recomputed_balance(), 5);
  EXPECT_EQ(bad.negative_earned_accounts_size(), 1);
  ledger::v1::VerifyLedgerResponse response;
  EXPECT_EQ(stub_->VerifyLedger(harness::Context(Member("bob")).get(), {}, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace ledger_test
