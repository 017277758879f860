// The awards library (programs_lib) against a real redis-server and the real
// ledger_server: what needs an injected clock or a crash at an exact step.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "services/programs/awards_payments.h"
#include "services/programs/awards_store.h"
#include "services/programs/programs_host.h"
#include "tests/programs/awards_env.h"

namespace awards_test {
namespace {

using common::auth::Principal;
using common::auth::Role;
using programs::v1::Award;

Principal Person(const std::string& org, const std::string& subject, Role role = Role::kMember) {
  Principal who;
  who.org = org;
  who.subject = subject;
  who.roles = static_cast<uint32_t>(role);
  return who;
}

absl::Time Paris(int y, int m, int d, int hh, int mm) {
  absl::TimeZone zone;
  EXPECT_TRUE(absl::LoadTimeZone("Europe/Paris", &zone));
  return absl::FromCivil(absl::CivilMinute(y, m, d, hh, mm), zone);
}

class AwardsLib : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new AwardsEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg("al-");
    store_ = std::make_unique<programs::ProgramsStore>(env_->pool());
    book_ = std::make_unique<programs::AwardsBook>(*store_);
    auto channel =
        grpc::CreateChannel(env_->ledger().address(), grpc::InsecureChannelCredentials());
    auto authorization = [](absl::string_view org) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> token = common::auth::MintServiceToken(
          programs::kServiceName, org, common::auth::kDevServiceSecret, absl::Now());
      if (!token.ok()) return token.status();
      return absl::StrCat("Bearer ", *token);
    };
    payments_ = std::make_unique<programs::AwardPayments>(
        *book_, programs::LedgerPoster(channel, authorization, std::chrono::seconds(3)));
    ledger_ = env_->Ledger();
    admin_ = Person(org_, "root", Role::kAdmin);
  }

  // An award whose one winner `bob` is approved, at `now`.
  void ApprovedAward(const std::string& award_id, const std::string& budget_id, int64_t points,
                     absl::Time now) {
    ASSERT_TRUE(
        book_->CreateAward(admin_, OpenAward(award_id, budget_id, 1, 1, points, now), now).ok());
    programs::v1::NominateRequest nominate;
    nominate.set_request_id("n-" + award_id);
    nominate.set_award_id(award_id);
    nominate.set_nominee_id("bob");
    nominate.set_reason("Fixed the outage");
    absl::StatusOr<programs::v1::NominateResponse> nominated =
        book_->Nominate(Person(org_, "alice"), nominate, now);
    ASSERT_TRUE(nominated.ok()) << nominated.status();
    programs::DecisionInput decision;
    decision.request_id = "d-" + award_id;
    decision.award_id = award_id;
    decision.nomination_id = nominated->nomination().nomination_id();
    decision.stage = 0;
    decision.approve = true;
    absl::StatusOr<programs::v1::Nomination> decided =
        book_->Decide(Person(org_, "approver0"), decision, now);
    ASSERT_TRUE(decided.ok()) << decided.status();
  }

  programs::v1::SelectWinnersRequest Pick(const std::string& award_id) {
    programs::v1::SelectWinnersRequest request;
    request.set_request_id("pick-" + award_id);
    request.set_award_id(award_id);
    request.add_winner_ids("bob");
    return request;
  }

  static AwardsEnv* env_;
  std::string org_;
  Principal admin_;
  std::unique_ptr<programs::ProgramsStore> store_;
  std::unique_ptr<programs::AwardsBook> book_;
  std::unique_ptr<programs::AwardPayments> payments_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_;
};

AwardsEnv* AwardsLib::env_ = nullptr;

TEST_F(AwardsLib, CrashBetweenReserveAndPay_TheSweepPaysOnceAndCommitsTheBudget) {
  absl::Time now = absl::Now();
  ASSERT_TRUE(book_->CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"}), now).ok());
  ApprovedAward("a", "b", 70, now);
  // The reserve step alone: as if the replica died before calling the ledger.
  absl::StatusOr<Award> reserved = book_->ReserveWinners(admin_, Pick("a"), now);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  EXPECT_EQ(reserved->state(), programs::v1::AWARD_STATE_PAYING);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 0);

  // Within the grace the sweep leaves it to the request in flight.
  absl::StatusOr<programs::SweepStats> early = payments_->RunOnce(org_, now);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->finished, 0);
  absl::StatusOr<programs::SweepStats> swept = payments_->RunOnce(org_, now + absl::Seconds(10));
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->finished, 1);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 70);
  absl::StatusOr<std::pair<programs::Record, programs::v1::Budget>> budget =
      book_->ReadBudget(org_, "b");
  ASSERT_TRUE(budget.ok());
  EXPECT_EQ(budget->second.spent(), 70);
  EXPECT_EQ(budget->second.reserved(), 0);

  // Twice more (another replica, a late retry): nothing more is paid.
  ASSERT_TRUE(payments_->RunOnce(org_, now + absl::Seconds(20)).ok());
  absl::StatusOr<Award> finished = payments_->Finish(org_, "a", "root", now + absl::Seconds(30));
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state(), programs::v1::AWARD_STATE_PAID);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 70);
  EXPECT_TRUE(Verify(*ledger_, org_).consistent());
}

TEST_F(AwardsLib, CrashAfterPayBeforeCommit_TheSweepCommitsWithoutPayingTwice) {
  absl::Time now = absl::Now();
  ASSERT_TRUE(book_->CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"}), now).ok());
  ApprovedAward("a", "b", 30, now);
  absl::StatusOr<Award> reserved = book_->ReserveWinners(admin_, Pick("a"), now);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  // The ledger got the transfers, then the replica died before committing.
  ledger::v1::PostTransfersRequest transfers = programs::AwardTransfers(*reserved);
  ledger::v1::PostTransfersResponse posted;
  absl::StatusOr<std::string> service_token = common::auth::MintServiceToken(
      programs::kServiceName, org_, common::auth::kDevServiceSecret, absl::Now());
  ASSERT_TRUE(service_token.ok());
  auto context = harness::Context(*service_token);
  ASSERT_TRUE(ledger_->PostTransfers(context.get(), transfers, &posted).ok());
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 30);

  ASSERT_TRUE(payments_->RunOnce(org_, now + absl::Seconds(10)).ok());
  absl::StatusOr<std::pair<programs::Record, Award>> award = book_->ReadAward(org_, "a");
  ASSERT_TRUE(award.ok());
  EXPECT_EQ(award->second.state(), programs::v1::AWARD_STATE_PAID);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 30);
  ledger::v1::VerifyLedgerResponse verified = Verify(*ledger_, org_);
  EXPECT_TRUE(verified.consistent());
  EXPECT_EQ(verified.transfer_count(), 1);
}

TEST_F(AwardsLib, MonthlyBudget_RefillsAtMidnightInItsZoneWithPaymentsInFlightCounted) {
  absl::Time november = Paris(2026, 11, 30, 23, 0);
  ASSERT_TRUE(book_->CreateBudget(admin_, MonthlyBudget("m", 100, {"erin"}), november).ok());
  ApprovedAward("a", "m", 60, november);
  ApprovedAward("b", "m", 60, november);
  absl::StatusOr<Award> first = book_->ReserveWinners(admin_, Pick("a"), november);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(payments_->Finish(org_, first->award_id(), "root", november).ok());
  // 40 left in November (Paris), so b does not fit...
  absl::StatusOr<Award> refused = book_->ReserveWinners(admin_, Pick("b"), november);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  // ...at 23:59 Paris it still does not (22:59 UTC is still November in UTC too)...
  EXPECT_FALSE(book_->ReserveWinners(admin_, Pick("b"), Paris(2026, 11, 30, 23, 59)).ok());
  // ...and at 00:01 Paris on 1 December (23:01 UTC on 30 November) the budget is full again.
  absl::Time december = Paris(2026, 12, 1, 0, 1);
  absl::StatusOr<programs::v1::Budget> budget = book_->GetBudget(admin_, "m", december);
  ASSERT_TRUE(budget.ok());
  EXPECT_EQ(budget->period(), "2026-12");
  EXPECT_EQ(budget->spent(), 0);
  EXPECT_EQ(budget->remaining(), 100);
  absl::StatusOr<Award> reserved = book_->ReserveWinners(admin_, Pick("b"), december);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  // A payment in flight across the next boundary stays counted in January.
  absl::StatusOr<programs::v1::Budget> january =
      book_->GetBudget(admin_, "m", Paris(2027, 1, 1, 0, 1));
  ASSERT_TRUE(january.ok());
  EXPECT_EQ(january->period(), "2027-01");
  EXPECT_EQ(january->spent(), 60);
  EXPECT_EQ(january->reserved(), 60);
}

TEST_F(AwardsLib, Bounds_NominationsPerAwardAndBudgetsPerOrg) {
  absl::Time now = absl::Now();
  ASSERT_TRUE(book_->CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"}), now).ok());
  ASSERT_TRUE(book_->CreateAward(admin_, OpenAward("a", "b", 1, 1, 10, now), now).ok());
  programs::v1::NominateRequest nominate;
  nominate.set_award_id("a");
  nominate.set_nominee_id("bob");
  nominate.set_reason("Helped");
  for (int i = 0; i < programs::kMaxNominations; ++i) {
    nominate.set_request_id(absl::StrCat("r", i));
    absl::StatusOr<programs::v1::NominateResponse> nominated =
        book_->Nominate(Person(org_, absl::StrCat("p", i)), nominate, now);
    ASSERT_TRUE(nominated.ok()) << i << ": " << nominated.status();
  }
  nominate.set_request_id("one-more");
  absl::StatusOr<programs::v1::NominateResponse> refused =
      book_->Nominate(Person(org_, "late"), nominate, now);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "at most 500 nominations"));

  for (int i = 1; i < programs::kMaxBudgets; ++i) {
    ASSERT_TRUE(
        book_->CreateBudget(admin_, MonthlyBudget(absl::StrCat("b", i), 10, {"erin"}), now).ok())
        << i;
  }
  absl::StatusOr<programs::v1::CreateBudgetResponse> over =
      book_->CreateBudget(admin_, MonthlyBudget("over", 10, {"erin"}), now);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(AwardsLib, Bounds_AwardsPerOrgAndBudgetHistoryLength) {
  absl::Time now = absl::Now();
  ASSERT_TRUE(book_->CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"}), now).ok());
  for (int i = 0; i < programs::kMaxAwards; ++i) {
    ASSERT_TRUE(
        book_->CreateAward(admin_, OpenAward(absl::StrCat("a", i), "b", 1, 1, 10, now), now).ok())
        << i;
  }
  absl::StatusOr<programs::v1::CreateAwardResponse> over =
      book_->CreateAward(admin_, OpenAward("over", "b", 1, 1, 10, now), now);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);

  // Each update adds a history entry; the stream keeps the newest kMaxHistory.
  programs::v1::UpdateBudgetRequest update;
  *update.mutable_budget() = MonthlyBudget("b", 1000, {"erin"});
  for (int i = 0; i < programs::kMaxHistory + 10; ++i) {
    update.set_request_id(absl::StrCat("u", i));
    update.mutable_budget()->set_amount_per_period(1000 + i);
    ASSERT_TRUE(book_->UpdateBudget(admin_, update, now).ok()) << i;
  }
  absl::StatusOr<common::redis::Reply> length =
      env_->pool().Run({"XLEN", programs::keys::BudgetHistory(org_, "b")});
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(length->integer, programs::kMaxHistory);
  absl::StatusOr<std::vector<programs::v1::BudgetHistoryEntry>> newest =
      book_->History(admin_, "b", 1, now);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].action(), "updated");
}

}  // namespace
}  // namespace awards_test
