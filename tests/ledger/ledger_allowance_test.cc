// Issue 18 (ALLOW): the ledger side of retraction (RETRACTION reverses one
// KUDOS or BOOST transfer, once), season prizes paid by the leaderboard, and
// allowance rules and boosts. The real ledger_server over gRPC against a
// real redis-server; "time passes" tests drive LedgerStore with an injected
// now over the same Redis.
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "common/auth/auth.h"
#include "services/ledger/allowance_rules.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledger_test {
namespace {

using ledger::v1::LedgerEvent;
using ledger::v1::PostTransfersRequest;
using ledger::v1::PostTransfersResponse;

std::string TestOrg(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = prefix + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-",
                      absl::Hex(std::hash<std::string>()(name) & 0xffffffff, absl::kZeroPad8));
}

std::string ServiceTokenOf(const std::string& subject, const std::string& org) {
  absl::StatusOr<std::string> token =
      common::auth::MintServiceToken(subject, org, common::auth::kDevServiceSecret, absl::Now());
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : "";
}

Transfer Boost(const std::string& id, const std::string& from, const std::string& to,
               int64_t amount) {
  Transfer t = Kudos(id, from, to, amount);
  t.set_kind(ledger::v1::TRANSFER_KIND_BOOST);
  return t;
}

// The reversal of `original` as the kudos service posts it.
Transfer Reversal(const std::string& id, const Transfer& original) {
  Transfer t;
  t.set_transfer_id(id);
  t.set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
  *t.mutable_debit_account() = original.credit_account();
  *t.mutable_credit_account() = original.debit_account();
  t.set_amount(original.amount());
  t.set_reference(original.reference());
  t.set_reverses_transfer_id(original.transfer_id());
  (*t.mutable_tags())["retracted_by"] = "root";
  return t;
}

Transfer Prize(const std::string& id, const std::string& to, int64_t amount) {
  Transfer t;
  t.set_transfer_id(id);
  t.set_kind(ledger::v1::TRANSFER_KIND_SEASON_PRIZE);
  *t.mutable_debit_account() = Issuer();
  *t.mutable_credit_account() = Earned(to);
  t.set_amount(amount);
  t.set_reference("season-q4");
  return t;
}

class AllowanceApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new LedgerEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg("alw-");
    stub_ = env_->NewStub();
    admin_ = harness::MintToken(org_, "root", {"admin"});
    kudos_ = ServiceToken(org_);
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

  ledger::v1::GetAllowanceResponse AllowanceOf(const std::string& person) {
    ledger::v1::GetAllowanceRequest request;
    request.set_person_id(person);
    ledger::v1::GetAllowanceResponse response;
    grpc::Status status = stub_->GetAllowance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::vector<LedgerEvent> Outbox() {
    auto reply = env_->pool().Run({"XRANGE", "ledger:{" + org_ + "}:outbox", "-", "+"});
    EXPECT_TRUE(reply.ok());
    std::vector<LedgerEvent> events;
    for (const auto& entry : reply->elements) {
      LedgerEvent event;
      EXPECT_TRUE(event.ParseFromString(entry.elements[1].elements[1].str));
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

  static LedgerEnv* env_;
  std::string org_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  std::string admin_;
  std::string kudos_;
};

LedgerEnv* AllowanceApi::env_ = nullptr;

// ---- retraction ---------------------------------------------------------------

TEST_F(AllowanceApi, Retraction_LinkedReversalOfKudosAndBoostMovesPointsBackOnceAndVerifies) {
  Transfer kudos = Kudos("k1", "alice", "bob", 10);
  (*kudos.mutable_tags())["visibility"] = "private";
  Transfer boost = Boost("b1", "carol", "bob", 5);
  ASSERT_TRUE(Post(kudos_, {kudos}, true).ok());
  ASSERT_TRUE(Post(kudos_, {boost}, true).ok());
  ASSERT_EQ(AllowanceOf("alice").remaining_points(), 90);
  const size_t events_before = Outbox().size();

  PostTransfersResponse reversed;
  grpc::Status status =
      Post(kudos_, {Reversal("k1:retract", kudos), Reversal("b1:retract", boost)}, true,
           &reversed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(reversed.results_size(), 2);
  EXPECT_TRUE(reversed.results(0).created());
  EXPECT_TRUE(reversed.results(1).created());
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_EQ(Balance(ledger_test::Allowance("alice")), 0);
  EXPECT_EQ(Balance(ledger_test::Allowance("carol")), 0);
  // The kudos is of this period: the givers' allowances come back.
  EXPECT_EQ(AllowanceOf("alice").remaining_points(), 100);
  EXPECT_EQ(AllowanceOf("carol").remaining_points(), 100);

  // One outbox event with both reversals, the originals' tags plus
  // "retracts" (private stays private) and the caller's own tags.
  std::vector<LedgerEvent> events = Outbox();
  ASSERT_EQ(events.size(), events_before + 1);
  const ledger::v1::TransfersPosted& posted = events.back().transfers_posted();
  ASSERT_EQ(posted.transfers_size(), 2);
  const Transfer& first = posted.transfers(0);
  EXPECT_EQ(first.kind(), ledger::v1::TRANSFER_KIND_RETRACTION);
  EXPECT_EQ(first.reverses_transfer_id(), "k1");
  EXPECT_EQ(first.tags().at("retracts"), "k1");
  EXPECT_EQ(first.tags().at("visibility"), "private");
  EXPECT_EQ(first.tags().at("giver"), "alice");
  EXPECT_EQ(first.tags().at("retracted_by"), "root");
  // The original's post time, so boards subtract in the original's periods.
  const Transfer& original = events[events_before - 2].transfers_posted().transfers(0);
  ASSERT_EQ(original.transfer_id(), "k1");
  EXPECT_EQ(first.tags().at("retracts_post_ms"),
            absl::StrCat(absl::ToUnixMillis(ledger::FromTimestamp(original.post_time()))));
  EXPECT_EQ(posted.transfers(1).tags().at("retracts"), "b1");

  // The same ids again: the stored reversals, nothing moves, no event.
  PostTransfersResponse retried;
  ASSERT_TRUE(
      Post(kudos_, {Reversal("k1:retract", kudos), Reversal("b1:retract", boost)}, true, &retried)
          .ok());
  EXPECT_FALSE(retried.results(0).created());
  EXPECT_FALSE(retried.results(1).created());
  EXPECT_EQ(retried.results(0).transfer().tags().at("retracts"), "k1");
  EXPECT_EQ(Outbox().size(), events_before + 1);

  // Another reversal of the same transfer: refused, naming the first.
  grpc::Status again = Post(kudos_, {Reversal("k1:other", kudos)}, true);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS) << again.error_message();
  EXPECT_TRUE(absl::StrContains(again.error_message(), "already reversed by transfer 'k1:retract'"))
      << again.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 0);

  ledger::v1::VerifyLedgerResponse verify = Verify();
  EXPECT_TRUE(verify.consistent()) << verify.DebugString();
  EXPECT_EQ(verify.transfer_count(), 4);
}

TEST_F(AllowanceApi, Retraction_TwoReversalsOfOneTransferInOneCallReverseItOnce) {
  Transfer kudos = Kudos("k1", "alice", "bob", 10);
  ASSERT_TRUE(Post(kudos_, {kudos}, true).ok());
  grpc::Status linked = Post(kudos_, {Reversal("r1", kudos), Reversal("r2", kudos)}, true);
  EXPECT_EQ(linked.error_code(), grpc::StatusCode::ALREADY_EXISTS) << linked.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 10) << "a refused linked call moves nothing";

  PostTransfersResponse unlinked;
  ASSERT_TRUE(Post(kudos_, {Reversal("r1", kudos), Reversal("r2", kudos)}, false, &unlinked).ok());
  ASSERT_EQ(unlinked.results_size(), 2);
  EXPECT_EQ(unlinked.results(0).status_code(), 0);
  EXPECT_EQ(unlinked.results(1).status_code(), static_cast<int>(grpc::StatusCode::ALREADY_EXISTS))
      << unlinked.results(1).error_message();
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(AllowanceApi, Retraction_BadReversalsAreRefusedWithClearStatusesAndMoveNothing) {
  Transfer kudos = Kudos("k1", "alice", "bob", 10);
  ASSERT_TRUE(Post(kudos_, {kudos}, true).ok());
  ASSERT_TRUE(Post(ServiceTokenOf("leaderboard", org_), {Prize("p1", "bob", 7)}, true).ok());
  auto expect = [&](const Transfer& t, grpc::StatusCode code, const std::string& part,
                    const std::string& token) {
    grpc::Status status = Post(token, {t}, true);
    EXPECT_EQ(status.error_code(), code) << t.transfer_id() << ": " << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), part))
        << t.transfer_id() << ": " << status.error_message();
  };
  Transfer missing = Reversal("r-missing", kudos);
  missing.set_reverses_transfer_id("nope");
  expect(missing, grpc::StatusCode::NOT_FOUND,
         "transfers[0].reverses_transfer_id: no transfer 'nope'", kudos_);
  Transfer of_prize = Reversal("r-prize", Prize("p1", "bob", 7));
  *of_prize.mutable_credit_account() = ledger_test::Allowance("alice");
  expect(of_prize, grpc::StatusCode::FAILED_PRECONDITION,
         "transfer 'p1' is TRANSFER_KIND_SEASON_PRIZE; only KUDOS and BOOST", kudos_);
  Transfer amount = Reversal("r-amount", kudos);
  amount.set_amount(9);
  expect(amount, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].amount: must be the reversed transfer's amount 10, got 9", kudos_);
  Transfer debit = Reversal("r-debit", kudos);
  *debit.mutable_debit_account() = Earned("carol");
  expect(debit, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].debit_account: must be the reversed transfer's credit account earned:bob",
         kudos_);
  Transfer credit = Reversal("r-credit", kudos);
  *credit.mutable_credit_account() = ledger_test::Allowance("carol");
  expect(credit, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].credit_account: must be the reversed transfer's debit account "
         "allowance:alice",
         kudos_);
  Transfer no_ref = Reversal("r-noref", kudos);
  no_ref.clear_reverses_transfer_id();
  expect(no_ref, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].reverses_transfer_id: is required", kudos_);
  Transfer wrong_way = Reversal("r-way", kudos);
  std::swap(*wrong_way.mutable_debit_account(), *wrong_way.mutable_credit_account());
  expect(wrong_way, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].debit_account.type: must be EARNED for RETRACTION", kudos_);
  Transfer kudos_with_ref = Kudos("k2", "alice", "bob", 1);
  kudos_with_ref.set_reverses_transfer_id("k1");
  expect(kudos_with_ref, grpc::StatusCode::INVALID_ARGUMENT,
         "transfers[0].reverses_transfer_id: only a RETRACTION reverses a transfer", kudos_);
  // Only the kudos service retracts.
  expect(Reversal("r-programs", kudos), grpc::StatusCode::PERMISSION_DENIED,
         "transfers[0].kind: the programs service may not post TRANSFER_KIND_RETRACTION",
         ServiceTokenOf("programs", org_));
  expect(Reversal("r-admin", kudos), grpc::StatusCode::PERMISSION_DENIED, "PostTransfers",
         admin_);
  // A reversal of a reversal is refused too.
  ASSERT_TRUE(Post(kudos_, {Reversal("r-ok", kudos)}, true).ok());
  Transfer of_reversal = Reversal("r-of-r", Reversal("r-ok", kudos));
  std::swap(*of_reversal.mutable_debit_account(), *of_reversal.mutable_credit_account());
  expect(of_reversal, grpc::StatusCode::FAILED_PRECONDITION,
         "transfer 'r-ok' is TRANSFER_KIND_RETRACTION; only KUDOS and BOOST", kudos_);

  EXPECT_EQ(Balance(Earned("bob")), 7) << "only the valid reversal moved points";
  EXPECT_TRUE(Verify().consistent());
}

// The choice for a recipient who already redeemed or holds the points: the
// reversal is FAILED_PRECONDITION with the numbers and what to do; nothing
// moves (earned never goes negative, VerifyLedger stays clean).
TEST_F(AllowanceApi, Retraction_RecipientWhoseHeldPointsDoNotCoverItIsFailedPrecondition) {
  Transfer kudos = Kudos("k1", "alice", "bob", 10);
  ASSERT_TRUE(Post(kudos_, {kudos}, true).ok());
  ledger::v1::CreateRedemptionRequest redeem;
  redeem.set_request_id("mug");
  redeem.set_reward("mug");
  redeem.set_points(8);
  ledger::v1::CreateRedemptionResponse redeemed;
  ASSERT_TRUE(
      stub_->CreateRedemption(harness::Context(Member("bob")).get(), redeem, &redeemed).ok());

  grpc::Status refused = Post(kudos_, {Reversal("r1", kudos)}, true);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(refused.error_message(),
                                "'bob' has 2 points available (balance 10, held 8), 10 needed to "
                                "reverse transfer 'k1'"))
      << refused.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 10);
  EXPECT_EQ(AllowanceOf("alice").remaining_points(), 90);

  ledger::v1::CancelRedemptionRequest cancel;
  cancel.set_redemption_id(redeemed.redemption().redemption_id());
  ledger::v1::CancelRedemptionResponse cancelled;
  ASSERT_TRUE(stub_->CancelRedemption(harness::Context(admin_).get(), cancel, &cancelled).ok());
  ASSERT_TRUE(Post(kudos_, {Reversal("r1", kudos)}, true).ok());
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_TRUE(Verify().consistent());
}

// A kudos of an earlier allowance period: the reversal moves the points but
// gives no allowance back to the current period (it was spent back then).
TEST_F(AllowanceApi, Retraction_OfAnEarlierPeriodsKudosGivesNoAllowanceBackNow) {
  ledger::LedgerStore store(env_->pool());
  auto post = [&](const Transfer& t, absl::Time now) {
    absl::StatusOr<std::vector<ledger::PostResult>> out;
    store.Post(org_, {{0, t}}, true, now,
               std::chrono::steady_clock::now() + std::chrono::seconds(10),
               [&out](absl::StatusOr<std::vector<ledger::PostResult>> r) { out = std::move(r); });
    return out;
  };
  const absl::Time october = absl::FromCivil(absl::CivilSecond(2026, 10, 15, 12, 0, 0),
                                             absl::UTCTimeZone());
  const absl::Time november = absl::FromCivil(absl::CivilSecond(2026, 11, 10, 12, 0, 0),
                                              absl::UTCTimeZone());
  Transfer old_kudos = Kudos("k-oct", "alice", "bob", 30);
  Transfer new_kudos = Kudos("k-nov", "alice", "carol", 20);
  ASSERT_TRUE(post(old_kudos, october).ok());
  ASSERT_TRUE(post(new_kudos, november).ok());
  auto spent = [&](const std::string& period) {
    auto reply = env_->pool().Run({"GET", "ledger:{" + org_ + "}:spent:alice:" + period});
    return reply.ok() && !reply->is_nil() ? std::stoll(reply->str) : 0;
  };
  ASSERT_EQ(spent("2026-10"), 30);
  ASSERT_EQ(spent("2026-11"), 20);

  absl::StatusOr<std::vector<ledger::PostResult>> old_reversal =
      post(Reversal("r-oct", old_kudos), november);
  ASSERT_TRUE(old_reversal.ok()) << old_reversal.status();
  ASSERT_TRUE((*old_reversal)[0].status.ok()) << (*old_reversal)[0].status;
  EXPECT_EQ(spent("2026-11"), 20) << "October's kudos gives nothing back in November";
  EXPECT_EQ(spent("2026-10"), 30) << "a closed period is history";
  ASSERT_TRUE(post(Reversal("r-nov", new_kudos), november).ok());
  EXPECT_EQ(spent("2026-11"), 0) << "November's kudos gives November's allowance back";
  EXPECT_EQ(Balance(Earned("bob")), 0);
  EXPECT_EQ(Balance(Earned("carol")), 0);
  EXPECT_TRUE(Verify().consistent());
}

// ---- season prizes --------------------------------------------------------------

TEST_F(AllowanceApi, SeasonPrize_OnlyTheLeaderboardPaysItFromTheIssuerOnce) {
  const std::string leaderboard = ServiceTokenOf("leaderboard", org_);
  PostTransfersResponse paid;
  ASSERT_TRUE(Post(leaderboard, {Prize("season:q4:1:bob", "bob", 50)}, true, &paid).ok());
  EXPECT_TRUE(paid.results(0).created());
  ASSERT_TRUE(Post(leaderboard, {Prize("season:q4:1:bob", "bob", 50)}, true, &paid).ok());
  EXPECT_FALSE(paid.results(0).created()) << "a retry pays once";
  EXPECT_EQ(Balance(Earned("bob")), 50);
  EXPECT_EQ(Balance(Issuer()), -50);

  grpc::Status by_kudos = Post(kudos_, {Prize("p2", "bob", 5)}, true);
  EXPECT_EQ(by_kudos.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(by_kudos.error_message(), "SEASON_PRIZE: the leaderboard"))
      << by_kudos.error_message();
  EXPECT_EQ(Post(ServiceTokenOf("programs", org_), {Prize("p3", "bob", 5)}, true).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Post(leaderboard, {Kudos("k1", "alice", "bob", 5)}, true).error_code(),
            grpc::StatusCode::PERMISSION_DENIED)
      << "the leaderboard posts prizes only";
  Transfer from_allowance = Prize("p4", "bob", 5);
  *from_allowance.mutable_debit_account() = ledger_test::Allowance("alice");
  grpc::Status wrong = Post(leaderboard, {from_allowance}, true);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(wrong.error_message(), "must be ISSUER")) << wrong.error_message();
  EXPECT_EQ(Balance(Earned("bob")), 50);
  EXPECT_TRUE(Verify().consistent());
}


// ---- allowance rules, profiles and boosts ---------------------------------------

ledger::v1::AllowanceRule RoleRule(const std::string& id, ledger::v1::AllowanceRole role,
                                   int64_t extra) {
  ledger::v1::AllowanceRule rule;
  rule.set_rule_id(id);
  rule.set_scope(ledger::v1::ALLOWANCE_RULE_SCOPE_ROLE);
  rule.set_role(role);
  rule.set_extra_points(extra);
  return rule;
}

ledger::v1::AllowanceRule TeamRule(const std::string& id, const std::string& team, int64_t extra) {
  ledger::v1::AllowanceRule rule;
  rule.set_rule_id(id);
  rule.set_scope(ledger::v1::ALLOWANCE_RULE_SCOPE_TEAM);
  rule.set_team_id(team);
  rule.set_extra_points(extra);
  return rule;
}

ledger::v1::AllowanceRule ManagerRule(const std::string& id, int64_t per_report, int64_t extra) {
  ledger::v1::AllowanceRule rule;
  rule.set_rule_id(id);
  rule.set_scope(ledger::v1::ALLOWANCE_RULE_SCOPE_MANAGER);
  rule.set_points_per_direct_report(per_report);
  rule.set_extra_points(extra);
  return rule;
}

class AllowanceRulesApi : public AllowanceApi {
 protected:
  grpc::Status SetRule(const ledger::v1::AllowanceRule& rule, const std::string& token = "",
                       ledger::v1::SetAllowanceRuleResponse* out = nullptr) {
    ledger::v1::SetAllowanceRuleRequest request;
    *request.mutable_rule() = rule;
    ledger::v1::SetAllowanceRuleResponse response;
    grpc::Status status = stub_->SetAllowanceRule(
        harness::Context(token.empty() ? admin_ : token).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  grpc::Status SetProfile(const std::string& person, std::vector<ledger::v1::AllowanceRole> roles,
                          const std::string& team, int reports, const std::string& token = "") {
    ledger::v1::SetAllowanceProfileRequest request;
    request.mutable_profile()->set_person_id(person);
    for (auto role : roles) request.mutable_profile()->add_roles(role);
    request.mutable_profile()->set_team_id(team);
    request.mutable_profile()->set_direct_reports(reports);
    ledger::v1::SetAllowanceProfileResponse response;
    return stub_->SetAllowanceProfile(harness::Context(token.empty() ? admin_ : token).get(),
                                      request, &response);
  }

  grpc::Status Grant(const std::string& request_id, const std::string& person, int64_t points,
                     bool recurring, std::optional<absl::Time> start, std::optional<absl::Time> end,
                     ledger::v1::GrantAllowanceBoostResponse* out = nullptr,
                     const std::string& token = "") {
    ledger::v1::GrantAllowanceBoostRequest request;
    request.set_request_id(request_id);
    request.set_person_id(person);
    request.set_points(points);
    request.set_recurring(recurring);
    request.set_reason("launch week");
    if (start) ledger::SetTimestamp(request.mutable_start_time(), *start);
    if (end) ledger::SetTimestamp(request.mutable_end_time(), *end);
    ledger::v1::GrantAllowanceBoostResponse response;
    grpc::Status status = stub_->GrantAllowanceBoost(
        harness::Context(token.empty() ? admin_ : token).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  int64_t AuditCount(const std::string& action) {
    auto reply = env_->pool().Run({"XRANGE", "audit:{" + org_ + "}", "-", "+"});
    EXPECT_TRUE(reply.ok());
    int64_t count = 0;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "action" && fields[i + 1].str == action) ++count;
      }
    }
    return count;
  }
};

TEST_F(AllowanceRulesApi, Rules_RoleTeamAndManagerRulesAddUpAndBoundWhatAGiverMaySpend) {
  ASSERT_TRUE(SetRule(RoleRule("managers", ledger::v1::ALLOWANCE_ROLE_MANAGER, 20)).ok());
  ASSERT_TRUE(SetRule(TeamRule("platform", "platform", 10)).ok());
  ASSERT_TRUE(SetRule(ManagerRule("per-report", 5, 0)).ok());
  ASSERT_TRUE(SetProfile("erin", {ledger::v1::ALLOWANCE_ROLE_MANAGER}, "platform", 3).ok());
  ASSERT_TRUE(SetProfile("frank", {ledger::v1::ALLOWANCE_ROLE_MEMBER}, "support", 0, kudos_).ok())
      << "the kudos service may mirror profiles";

  ledger::v1::GetAllowanceResponse erin = AllowanceOf("erin");
  EXPECT_EQ(erin.base_points(), 100);
  EXPECT_EQ(erin.policy().points_per_period(), 145) << erin.DebugString();
  ASSERT_EQ(erin.contributions_size(), 3) << erin.DebugString();
  EXPECT_EQ(erin.contributions(0).id(), "managers");
  EXPECT_EQ(erin.contributions(0).points(), 20);
  EXPECT_EQ(erin.contributions(1).id(), "per-report");
  EXPECT_EQ(erin.contributions(1).points(), 15);
  EXPECT_EQ(erin.contributions(1).description(), "3 direct reports x 5 + 0");
  EXPECT_EQ(erin.contributions(2).description(), "team platform");
  EXPECT_EQ(AllowanceOf("frank").policy().points_per_period(), 100);
  EXPECT_EQ(AllowanceOf("alice").policy().points_per_period(), 100) << "no profile: base only";

  // The post enforces the same effective allowance.
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "erin", "bob", 140)}, true).ok());
  grpc::Status over = Post(kudos_, {Kudos("k2", "erin", "bob", 10)}, true);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(over.error_message(), "'erin' has 5 of 145 points left"))
      << over.error_message();
  EXPECT_EQ(Post(kudos_, {Kudos("k3", "alice", "bob", 101)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Unlinked, givers with different allowances in one call.
  PostTransfersResponse mixed;
  ASSERT_TRUE(
      Post(kudos_, {Kudos("k4", "erin", "bob", 5), Kudos("k5", "alice", "bob", 100)}, false, &mixed)
          .ok());
  EXPECT_EQ(mixed.results(0).status_code(), 0) << mixed.results(0).error_message();
  EXPECT_EQ(mixed.results(1).status_code(), 0) << mixed.results(1).error_message();

  // A deleted rule stops counting.
  ledger::v1::DeleteAllowanceRuleRequest del;
  del.set_rule_id("per-report");
  ledger::v1::DeleteAllowanceRuleResponse deleted;
  ASSERT_TRUE(stub_->DeleteAllowanceRule(harness::Context(admin_).get(), del, &deleted).ok());
  EXPECT_TRUE(deleted.deleted());
  ASSERT_TRUE(stub_->DeleteAllowanceRule(harness::Context(admin_).get(), del, &deleted).ok());
  EXPECT_FALSE(deleted.deleted()) << "a retried delete changes nothing";
  EXPECT_EQ(AllowanceOf("erin").policy().points_per_period(), 130);
  EXPECT_EQ(AuditCount("ledger.set_allowance_rule"), 3);
  EXPECT_EQ(AuditCount("ledger.delete_allowance_rule"), 1);
  EXPECT_EQ(AuditCount("ledger.set_allowance_profile"), 1) << "the kudos service's is not";
  EXPECT_TRUE(Verify().consistent());
}

TEST_F(AllowanceRulesApi, Rules_AtMostFiftyPerOrgRetriesChangeNothingBadInputsNameTheField) {
  for (int i = 0; i < ledger::kMaxAllowanceRules; ++i) {
    ASSERT_TRUE(SetRule(TeamRule(absl::StrCat("r", i), absl::StrCat("t", i), 1)).ok()) << i;
  }
  grpc::Status full = SetRule(TeamRule("one-more", "t", 1));
  EXPECT_EQ(full.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(full.error_message(), "already has 50 allowance rules"))
      << full.error_message();
  ledger::v1::SetAllowanceRuleResponse replaced;
  ASSERT_TRUE(SetRule(TeamRule("r0", "t0", 2), "", &replaced).ok()) << "replacing one is fine";
  EXPECT_TRUE(replaced.changed());
  ASSERT_TRUE(SetRule(TeamRule("r0", "t0", 2), "", &replaced).ok());
  EXPECT_FALSE(replaced.changed());
  ledger::v1::ListAllowanceRulesResponse listed;
  ASSERT_TRUE(stub_->ListAllowanceRules(harness::Context(admin_).get(), {}, &listed).ok());
  EXPECT_EQ(listed.rules_size(), 50);
  EXPECT_EQ(listed.rules(0).rule_id(), "r0");
  EXPECT_EQ(listed.rules(0).extra_points(), 2);

  auto invalid = [&](ledger::v1::AllowanceRule rule, const std::string& part) {
    grpc::Status status = SetRule(rule);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << part;
    EXPECT_TRUE(absl::StrContains(status.error_message(), part)) << status.error_message();
  };
  invalid(TeamRule("", "t", 1), "rule.rule_id: is required");
  invalid(TeamRule("bad id", "t", 1), "rule.rule_id");
  invalid(TeamRule("x", "", 1), "rule.team_id: is required for scope TEAM");
  invalid(RoleRule("x", ledger::v1::ALLOWANCE_ROLE_UNSPECIFIED, 1),
          "rule.role: is required for scope ROLE");
  ledger::v1::AllowanceRule no_scope = TeamRule("x", "t", 1);
  no_scope.set_scope(ledger::v1::ALLOWANCE_RULE_SCOPE_UNSPECIFIED);
  invalid(no_scope, "rule.scope: is required");
  ledger::v1::AllowanceRule team_with_role = TeamRule("x", "t", 1);
  team_with_role.set_role(ledger::v1::ALLOWANCE_ROLE_ADMIN);
  invalid(team_with_role, "rule.role: only for scope ROLE");
  invalid(TeamRule("x", "t", -1), "rule.extra_points: must be in 0..1000000000000, got -1");
  invalid(TeamRule("x", "t", 0), "a rule must add points");
  invalid(ManagerRule("x", 1'000'000'001, 0), "rule.points_per_direct_report: must be in 0..");
  ledger::v1::AllowanceRule team_per_report = TeamRule("x", "t", 1);
  team_per_report.set_points_per_direct_report(3);
  invalid(team_per_report, "rule.points_per_direct_report: only for scope MANAGER");

  EXPECT_EQ(SetRule(TeamRule("x", "t", 1), Member("alice")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetRule(TeamRule("x", "t", 1), kudos_).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stub_->ListAllowanceRules(harness::Context(Member("alice")).get(), {}, &listed)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetProfile("bob", {}, "t", -1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetProfile("bob", {}, "bad team", 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetProfile("bob", {}, "t", 1, Member("bob")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED)
      << "nobody raises their own allowance";
  EXPECT_EQ(SetProfile("bob", {}, "t", 1, ServiceTokenOf("leaderboard", org_)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AllowanceRulesApi, Profiles_AtMostOneHundredThousandPerOrg) {
  // Filled directly (100,000 RPCs would take long): the bound counts fields.
  const std::string profiles = "ledger:{" + org_ + "}:alw:profiles";
  for (int batch = 0; batch < ledger::kMaxAllowanceProfiles / 5000; ++batch) {
    common::redis::Command hset = {"HSET", profiles};
    for (int i = 0; i < 5000; ++i) {
      ledger::v1::AllowanceProfile profile;
      profile.set_person_id(absl::StrCat("p", batch * 5000 + i));
      hset.push_back(profile.person_id());
      hset.push_back(profile.SerializeAsString());
    }
    ASSERT_TRUE(env_->pool().Run(hset).ok());
  }
  grpc::Status full = SetProfile("newcomer", {}, "t", 0);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(full.error_message(), "already has 100000 allowance profiles"))
      << full.error_message();
  EXPECT_TRUE(SetProfile("p7", {ledger::v1::ALLOWANCE_ROLE_ADMIN}, "t", 2).ok())
      << "an existing profile can still change";
}

TEST_F(AllowanceRulesApi, Boosts_OneOffAndRecurringAddToTheirPeriodsAndGrantsAreIdempotent) {
  const absl::Time now = absl::Now();
  ledger::v1::GrantAllowanceBoostResponse one_off;
  ASSERT_TRUE(Grant("g1", "alice", 50, false, std::nullopt, std::nullopt, &one_off).ok());
  EXPECT_TRUE(one_off.created());
  EXPECT_EQ(one_off.boost().period(), AllowanceOf("alice").period());
  ledger::v1::GrantAllowanceBoostResponse retried;
  ASSERT_TRUE(Grant("g1", "alice", 50, false, std::nullopt, std::nullopt, &retried).ok());
  EXPECT_FALSE(retried.created());
  EXPECT_EQ(retried.boost().boost_id(), one_off.boost().boost_id());
  grpc::Status conflict = Grant("g1", "alice", 60, false, std::nullopt, std::nullopt);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ALREADY_EXISTS) << conflict.error_message();

  // Next period's one-off does not count now; a recurring one does.
  ASSERT_TRUE(Grant("g2", "alice", 7, false, now + absl::Hours(24 * 40), std::nullopt).ok());
  ledger::v1::GrantAllowanceBoostResponse recurring;
  ASSERT_TRUE(
      Grant("g3", "alice", 30, true, std::nullopt, now + absl::Hours(24 * 90), &recurring).ok());
  ledger::v1::GetAllowanceResponse alice = AllowanceOf("alice");
  EXPECT_EQ(alice.policy().points_per_period(), 180) << alice.DebugString();
  ASSERT_EQ(alice.contributions_size(), 2);
  EXPECT_EQ(alice.contributions(0).source(), "boost");
  ASSERT_TRUE(Post(kudos_, {Kudos("k1", "alice", "bob", 180)}, true).ok());
  EXPECT_EQ(Post(kudos_, {Kudos("k2", "alice", "bob", 1)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Cancelled: adds nothing, listed until it ends; a second cancel returns it.
  ledger::v1::CancelAllowanceBoostRequest cancel;
  cancel.set_person_id("alice");
  cancel.set_boost_id(recurring.boost().boost_id());
  ledger::v1::CancelAllowanceBoostResponse cancelled;
  ASSERT_TRUE(stub_->CancelAllowanceBoost(harness::Context(admin_).get(), cancel, &cancelled).ok());
  EXPECT_TRUE(cancelled.boost().cancelled());
  ASSERT_TRUE(stub_->CancelAllowanceBoost(harness::Context(admin_).get(), cancel, &cancelled).ok());
  EXPECT_EQ(AllowanceOf("alice").policy().points_per_period(), 150);
  cancel.set_boost_id("bst_nope");
  EXPECT_EQ(stub_->CancelAllowanceBoost(harness::Context(admin_).get(), cancel, &cancelled)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  ledger::v1::ListAllowanceBoostsRequest list;
  ledger::v1::ListAllowanceBoostsResponse listed;
  ASSERT_TRUE(
      stub_->ListAllowanceBoosts(harness::Context(Member("alice")).get(), list, &listed).ok());
  EXPECT_EQ(listed.boosts_size(), 3) << "a member lists their own";
  list.set_person_id("alice");
  EXPECT_EQ(stub_->ListAllowanceBoosts(harness::Context(Member("bob")).get(), list, &listed)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(AuditCount("ledger.grant_allowance_boost"), 3);
  EXPECT_EQ(AuditCount("ledger.cancel_allowance_boost"), 1);
}

TEST_F(AllowanceRulesApi, Boosts_BadGrantsAreInvalidArgumentAndMembersCannotGrant) {
  const absl::Time now = absl::Now();
  auto invalid = [&](grpc::Status status, const std::string& part) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << part;
    EXPECT_TRUE(absl::StrContains(status.error_message(), part)) << status.error_message();
  };
  invalid(Grant("", "alice", 5, false, std::nullopt, std::nullopt), "request_id: is required");
  invalid(Grant("g", "", 5, false, std::nullopt, std::nullopt), "person_id: is required");
  invalid(Grant("g", "alice", 0, false, std::nullopt, std::nullopt), "points: must be in 1..");
  invalid(Grant("g", "alice", 5, true, std::nullopt, std::nullopt),
          "end_time: is required for a recurring boost");
  invalid(Grant("g", "alice", 5, false, std::nullopt, now + absl::Hours(48)),
          "end_time: only for a recurring boost");
  invalid(Grant("g", "alice", 5, true, now + absl::Hours(48), now + absl::Hours(24)),
          "end_time: must be after start_time");
  invalid(Grant("g", "alice", 5, true, std::nullopt, now + absl::Hours(24 * 366 * 6)),
          "at most 5 years");
  invalid(Grant("g", "alice", 5, false, now - absl::Hours(24 * 100), std::nullopt),
          "has ended");
  EXPECT_EQ(Grant("g", "alice", 5, false, std::nullopt, std::nullopt, nullptr, Member("alice"))
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Grant("g", "alice", 5, false, std::nullopt, std::nullopt, nullptr, kudos_)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// The bound per person is hit; boosts that ended are dropped at the next
// grant, so the bound counts live ones (time injected through the store).
TEST_F(AllowanceRulesApi, Boosts_AtMostTwentyPerPersonEndedOnesMakeRoom) {
  ledger::LedgerStore store(env_->pool());
  const absl::Time t0 = absl::FromCivil(absl::CivilSecond(2027, 3, 10, 12, 0, 0),
                                        absl::UTCTimeZone());
  auto grant = [&](const std::string& request_id, absl::Time now) {
    ledger::v1::GrantAllowanceBoostRequest request;
    request.set_request_id(request_id);
    request.set_person_id("alice");
    request.set_points(5);
    request.set_reason("sprint");
    absl::StatusOr<ledger::AllowanceBoost> boost =
        ledger::BoostFromGrant(request, "root", ledger::DefaultPolicy(), now);
    EXPECT_TRUE(boost.ok()) << boost.status();
    absl::Status status;
    store.GrantBoost(org_, "root", *boost, ledger::BoostFingerprint(request), now,
                     std::chrono::steady_clock::now() + std::chrono::seconds(10),
                     [&status](absl::StatusOr<std::pair<ledger::AllowanceBoost, bool>> r) {
                       status = r.status();
                     });
    return status;
  };
  for (int i = 0; i < ledger::kMaxBoostsPerPerson; ++i) {
    ASSERT_TRUE(grant(absl::StrCat("g", i), t0).ok()) << i;
  }
  absl::Status full = grant("one-more", t0);
  EXPECT_EQ(full.code(), absl::StatusCode::kFailedPrecondition) << full;
  EXPECT_TRUE(absl::StrContains(full.message(), "already has 20 allowance boosts")) << full;
  // A month later March's one-offs have ended: the grant prunes them.
  EXPECT_TRUE(grant("one-more", t0 + absl::Hours(24 * 31)).ok());
  auto fields = env_->pool().Run({"HLEN", "ledger:{" + org_ + "}:alw:boosts:alice"});
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(fields->integer, 2) << "one boost (and its meta) left";
}

// ---- the post's allowance inputs: cached per replica, checked by post.lua ----

// A replica keeps the policy, rules, profiles and boosts it posted with
// (allowance_cache.h); a change made through another replica, or written by
// an older version straight into Redis, is seen by this replica's very next
// post (post.lua compares what the limits were computed from).
TEST_F(AllowanceRulesApi, AllowanceCache_AChangeOnAnotherReplicaIsSeenByItsNextPost) {
  harness::Service other(LEDGER_BINARY, env_->redis().address());
  auto other_stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(other.address(), grpc::InsecureChannelCredentials()));
  WaitUntilServing(*other_stub, admin_);
  auto over_message = [](const grpc::Status& status) {
    return absl::StrCat(status.error_code(), " ", status.error_message());
  };

  // This replica learns the org: default policy (100 a month), no rules.
  ASSERT_TRUE(Post(kudos_, {Kudos("c1", "alice", "bob", 60)}, true).ok());

  // Another replica adds a rule alice matches: 150 for her from now on.
  {
    ledger::v1::SetAllowanceRuleRequest request;
    *request.mutable_rule() = RoleRule("members", ledger::v1::ALLOWANCE_ROLE_MEMBER, 50);
    ledger::v1::SetAllowanceRuleResponse response;
    ASSERT_TRUE(other_stub->SetAllowanceRule(harness::Context(admin_).get(), request, &response)
                    .ok());
    ledger::v1::SetAllowanceProfileRequest profile;
    profile.mutable_profile()->set_person_id("alice");
    profile.mutable_profile()->add_roles(ledger::v1::ALLOWANCE_ROLE_MEMBER);
    ledger::v1::SetAllowanceProfileResponse set;
    ASSERT_TRUE(
        other_stub->SetAllowanceProfile(harness::Context(kudos_).get(), profile, &set).ok());
  }
  grpc::Status raised = Post(kudos_, {Kudos("c2", "alice", "bob", 80)}, true);
  EXPECT_TRUE(raised.ok()) << "60 + 80 <= 150: " << over_message(raised);

  // The other replica deletes it: back to 100, of which 140 are spent.
  {
    ledger::v1::DeleteAllowanceRuleRequest request;
    request.set_rule_id("members");
    ledger::v1::DeleteAllowanceRuleResponse response;
    ASSERT_TRUE(
        other_stub->DeleteAllowanceRule(harness::Context(admin_).get(), request, &response).ok());
  }
  grpc::Status lowered = Post(kudos_, {Kudos("c3", "alice", "bob", 1)}, true);
  EXPECT_EQ(lowered.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << over_message(lowered);
  EXPECT_TRUE(absl::StrContains(lowered.error_message(), "has 0 of 100 points left"))
      << lowered.error_message();

  // A boost granted there counts here at once, and its cancellation too.
  ledger::v1::GrantAllowanceBoostRequest grant;
  grant.set_request_id("launch");
  grant.set_person_id("alice");
  grant.set_points(100);
  grant.set_reason("launch week");
  ledger::v1::GrantAllowanceBoostResponse granted;
  ASSERT_TRUE(
      other_stub->GrantAllowanceBoost(harness::Context(admin_).get(), grant, &granted).ok());
  grpc::Status boosted = Post(kudos_, {Kudos("c4", "alice", "bob", 50)}, true);
  EXPECT_TRUE(boosted.ok()) << "140 + 50 <= 200: " << over_message(boosted);
  ledger::v1::CancelAllowanceBoostRequest cancel;
  cancel.set_person_id("alice");
  cancel.set_boost_id(granted.boost().boost_id());
  ledger::v1::CancelAllowanceBoostResponse cancelled;
  ASSERT_TRUE(
      other_stub->CancelAllowanceBoost(harness::Context(admin_).get(), cancel, &cancelled).ok());
  EXPECT_EQ(Post(kudos_, {Kudos("c5", "alice", "bob", 1)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  // The policy changed through the other replica: seen by the next post here.
  {
    ledger::v1::SetAllowancePolicyRequest request;
    request.mutable_policy()->set_points_per_period(1000);
    request.mutable_policy()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
    request.mutable_policy()->set_time_zone("UTC");
    ledger::v1::SetAllowancePolicyResponse response;
    ASSERT_TRUE(
        other_stub->SetAllowancePolicy(harness::Context(admin_).get(), request, &response).ok());
  }
  grpc::Status wider = Post(kudos_, {Kudos("c6", "alice", "bob", 500)}, true);
  EXPECT_TRUE(wider.ok()) << "190 + 500 <= 1000: " << over_message(wider);
  EXPECT_EQ(Balance(Earned("bob")), 690);
  EXPECT_TRUE(Verify().consistent());
}

// This replica's own changes drop the org from its cache (the next post
// reads instead of paying a stale round), and the cache is bounded in orgs
// and in people over all orgs.
TEST_F(AllowanceRulesApi, AllowanceCache_OwnWritesDropTheOrgAndTheCacheIsBounded) {
  ledger::LedgerStore store(env_->pool());
  const auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(10); };
  auto post = [&](const std::string& id, int64_t amount) {
    absl::Status status;
    store.Post(org_, {{0, Kudos(id, "alice", "bob", amount)}}, true, absl::Now(), deadline(),
               [&status](absl::StatusOr<std::vector<ledger::PostResult>> results) {
                 status = results.ok() ? (*results)[0].status : results.status();
               });
    return status;
  };
  ASSERT_TRUE(post("o1", 10).ok());
  EXPECT_EQ(store.allowance_cache().org_count(), 1u);
  EXPECT_EQ(store.allowance_cache().person_count(), 0u)
      << "no rules and no boosts: nothing kept per person";
  bool changed = false;
  store.SetAllowanceRule(org_, "root", RoleRule("members", ledger::v1::ALLOWANCE_ROLE_MEMBER, 5),
                         deadline(), [&changed](absl::StatusOr<bool> r) { changed = r.value_or(false); });
  EXPECT_TRUE(changed);
  EXPECT_EQ(store.allowance_cache().org_count(), 0u) << "its own rule change drops the org";
  ASSERT_TRUE(post("o2", 10).ok());
  EXPECT_EQ(store.allowance_cache().person_count(), 1u) << "with rules the giver's profile is kept";
  absl::Status policy_set;
  store.SetPolicy(org_, "", ledger::DefaultPolicy(), std::nullopt, deadline(),
                  [&policy_set](absl::Status s) { policy_set = s; });
  ASSERT_TRUE(policy_set.ok()) << policy_set;
  EXPECT_EQ(store.allowance_cache().org_count(), 0u) << "so does its own policy change";

  // Bounds: the least recently used org leaves; people over all orgs.
  ledger::AllowanceCache cache(ledger::AllowanceCache::Options{2, 3, std::chrono::milliseconds(1000)});
  auto read_of = [](const std::vector<std::string>& givers, bool with_rules,
                    const std::string& version = "7") {
    ledger::PostAllowance read;
    read.version = version;
    read.inputs.policy = ledger::DefaultPolicy();
    if (with_rules) {
      read.inputs.rules.push_back(RoleRule("r", ledger::v1::ALLOWANCE_ROLE_MEMBER, 1));
    }
    for (const std::string& giver : givers) {
      read.inputs.profiles[giver].set_person_id(giver);
      read.inputs.boosts[giver];
    }
    return read;
  };
  const auto t0 = ledger::AllowanceCache::Clock::now();
  cache.Put("o-a", read_of({"p1"}, false), t0);
  cache.Put("o-b", read_of({"p1"}, false), t0);
  ASSERT_TRUE(cache.Lookup("o-a", {"p1"}, t0).has_value()) << "o-a used after o-b";
  cache.Put("o-c", read_of({"p1"}, false), t0);
  EXPECT_EQ(cache.org_count(), 2u);
  EXPECT_FALSE(cache.Lookup("o-b", {"p1"}, t0).has_value()) << "the least recently used org left";
  EXPECT_TRUE(cache.Lookup("o-a", {"p1"}, t0).has_value());
  std::optional<ledger::PostAllowance> someone = cache.Lookup("o-c", {"someone"}, t0);
  ASSERT_TRUE(someone.has_value())
      << "no rules: a giver without an entry has no boosts (a grant moves the version)";
  EXPECT_EQ(someone->version, "7") << "what post.lua compares";
  // Writes of a previous version do not move the version: an entry is read
  // again once it is max_age old.
  EXPECT_TRUE(cache.Lookup("o-c", {"p1"}, t0 + std::chrono::milliseconds(1000)).has_value());
  EXPECT_FALSE(cache.Lookup("o-c", {"p1"}, t0 + std::chrono::milliseconds(1001)).has_value());
  cache.Put("o-a", read_of({"p1", "p2", "p3", "p4"}, true), t0);
  EXPECT_LE(cache.person_count(), 3u);
  EXPECT_FALSE(cache.Lookup("o-a", {"p1", "p2", "p3", "p4"}, t0).has_value())
      << "with rules every giver's profile is needed; one did not fit";
  ASSERT_TRUE(cache.Lookup("o-a", {"p4"}, t0).has_value());
  cache.Put("o-a", read_of({"p5"}, true, "8"), t0);
  EXPECT_EQ(cache.person_count(), 1u);
  EXPECT_FALSE(cache.Lookup("o-a", {"p4"}, t0).has_value())
      << "people read under another version are dropped";
  EXPECT_EQ(cache.Lookup("o-a", {"p5"}, t0)->version, "8");
  cache.DropOrg("o-a");
  EXPECT_EQ(cache.person_count(), 0u);
  EXPECT_EQ(cache.org_count(), 1u);
}

// A directory import syncs every person's profile. A profile counts only
// through rules, so in an org without any it leaves the allowance version
// (and every replica's cache) as it is; a rule added later moves it, and the
// profile set before counts from the next post on. With rules, a profile
// moves the version as before.
TEST_F(AllowanceRulesApi, AllowanceCache_AProfileWithoutRulesKeepsTheVersionARuleLaterCountsIt) {
  auto version = [&] {
    auto reply = env_->pool().Run({"GET", "ledger:{" + org_ + "}:alw:ver"});
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply->str : std::string("?");
  };
  ASSERT_TRUE(Post(kudos_, {Kudos("w1", "alice", "bob", 10)}, true).ok());
  const std::string before = version();
  const int64_t audited = AuditCount("ledger.set_allowance_profile");
  ASSERT_TRUE(SetProfile("alice", {ledger::v1::ALLOWANCE_ROLE_MANAGER}, "platform", 4).ok());
  EXPECT_EQ(version(), before) << "no rules: the profile changes no allowance";
  EXPECT_EQ(AuditCount("ledger.set_allowance_profile"), audited + 1) << "still audited";
  EXPECT_EQ(Post(kudos_, {Kudos("w2", "alice", "bob", 91)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "10 + 91 > 100: without rules the profile adds nothing";

  // A store of its own (a replica's cache): its own profile write keeps the org.
  ledger::LedgerStore store(env_->pool());
  const auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(10); };
  absl::Status posted;
  store.Post(org_, {{0, Kudos("w3", "alice", "bob", 1)}}, true, absl::Now(), deadline(),
             [&posted](absl::StatusOr<std::vector<ledger::PostResult>> results) {
               posted = results.ok() ? (*results)[0].status : results.status();
             });
  ASSERT_TRUE(posted.ok()) << posted;
  ASSERT_EQ(store.allowance_cache().org_count(), 1u);
  ledger::v1::AllowanceProfile carol;
  carol.set_person_id("carol");
  carol.set_direct_reports(2);
  absl::Status set;
  store.SetAllowanceProfile(org_, "", carol, deadline(), [&set](absl::Status s) { set = s; });
  ASSERT_TRUE(set.ok()) << set;
  EXPECT_EQ(store.allowance_cache().org_count(), 1u) << "nothing it holds changed";
  EXPECT_EQ(version(), before);

  // A rule moves the version; alice's profile, set before it, counts now.
  ASSERT_TRUE(SetRule(ManagerRule("per-report", 10, 0)).ok());
  EXPECT_NE(version(), before);
  grpc::Status raised = Post(kudos_, {Kudos("w4", "alice", "bob", 120)}, true);
  EXPECT_TRUE(raised.ok()) << "11 + 120 <= 100 + 4 x 10: " << raised.error_message();

  // With rules, a profile moves the version (and this replica drops the org).
  const std::string with_rules = version();
  carol.set_direct_reports(3);
  store.SetAllowanceProfile(org_, "", carol, deadline(), [&set](absl::Status s) { set = s; });
  ASSERT_TRUE(set.ok()) << set;
  EXPECT_NE(version(), with_rules);
  EXPECT_EQ(store.allowance_cache().org_count(), 0u);
  ASSERT_TRUE(SetProfile("alice", {ledger::v1::ALLOWANCE_ROLE_MANAGER}, "platform", 0).ok());
  EXPECT_EQ(Post(kudos_, {Kudos("w5", "alice", "bob", 1)}, true).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "131 spent of 100 once alice has no reports: seen by the very next post";
  EXPECT_TRUE(Verify().consistent());
}

TEST(AllowanceRules, ComputeAllowance_BoostsCoverTheirPeriodsRulesAddInIdOrder) {
  ledger::AllowancePolicy policy = ledger::DefaultPolicy();
  auto period = [&](int y, int m) {
    return *ledger::AllowancePeriodAt(
        policy, absl::FromCivil(absl::CivilSecond(y, m, 15, 0, 0, 0), absl::UTCTimeZone()));
  };
  ledger::AllowanceBoost recurring;
  recurring.set_boost_id("b-rec");
  recurring.set_recurring(true);
  recurring.set_points(10);
  ledger::SetTimestamp(recurring.mutable_start_time(),
                       absl::FromCivil(absl::CivilSecond(2026, 11, 20, 0, 0, 0), absl::UTCTimeZone()));
  ledger::SetTimestamp(recurring.mutable_end_time(),
                       absl::FromCivil(absl::CivilSecond(2027, 1, 1, 0, 0, 0), absl::UTCTimeZone()));
  ledger::AllowanceBoost one_off;
  one_off.set_boost_id("b-one");
  one_off.set_points(3);
  one_off.set_period("2026-12");
  ledger::AllowanceProfile profile;
  profile.add_roles(ledger::v1::ALLOWANCE_ROLE_ADMIN);
  std::vector<ledger::AllowanceRule> rules = {
      RoleRule("z-admins", ledger::v1::ALLOWANCE_ROLE_ADMIN, 1),
      RoleRule("a-admins", ledger::v1::ALLOWANCE_ROLE_ADMIN, 2),
      RoleRule("managers", ledger::v1::ALLOWANCE_ROLE_MANAGER, 50)};
  auto points = [&](int y, int m) {
    return ledger::ComputeAllowance(policy, period(y, m), rules, profile, {recurring, one_off})
        .points;
  };
  EXPECT_EQ(points(2026, 10), 103) << "before the recurring boost starts";
  EXPECT_EQ(points(2026, 11), 113) << "the period it starts in";
  EXPECT_EQ(points(2026, 12), 116) << "both boosts";
  EXPECT_EQ(points(2027, 1), 103) << "ended at the start of January";
  ledger::EffectiveAllowance effective =
      ledger::ComputeAllowance(policy, period(2026, 12), rules, profile, {recurring, one_off});
  ASSERT_EQ(effective.contributions.size(), 4u);
  EXPECT_EQ(effective.contributions[0].id(), "a-admins");
  EXPECT_EQ(effective.contributions[1].id(), "z-admins");
  recurring.set_cancelled(true);
  EXPECT_EQ(ledger::ComputeAllowance(policy, period(2026, 12), rules, profile, {recurring}).points,
            103);
}

}  // namespace
}  // namespace ledger_test
