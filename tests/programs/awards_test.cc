// Awards and program budgets (issue 18, parts 2 and 4) end to end: the real
// programs_server and ledger_server over gRPC against a real redis-server.
// Each test uses its own org, so they share one set of servers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "google/protobuf/util/time_util.h"
#include "tests/harness/eventually.h"
#include "tests/programs/awards_env.h"

namespace awards_test {
namespace {

using google::protobuf::util::TimeUtil;
using programs::v1::Award;
using programs::v1::Budget;
using programs::v1::Nomination;

class AwardsApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new AwardsEnv(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override {
    org_ = TestOrg("aw-");
    admin_ = harness::MintToken(org_, "root", {"admin"});
    awards_ = env_->Awards(env_->programs());
    budgets_ = env_->Budgets(env_->programs());
    ledger_ = env_->Ledger();
    WaitUntilServing(*budgets_, admin_);
  }

  std::string Member(const std::string& person) { return harness::MintToken(org_, person); }

  grpc::Status CreateBudget(const std::string& token, const Budget& budget,
                            Budget* out = nullptr) {
    programs::v1::CreateBudgetRequest request;
    *request.mutable_budget() = budget;
    programs::v1::CreateBudgetResponse response;
    grpc::Status status = budgets_->CreateBudget(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.budget();
    return status;
  }

  Budget GetBudget(const std::string& id) {
    programs::v1::GetBudgetRequest request;
    request.set_budget_id(id);
    programs::v1::GetBudgetResponse response;
    grpc::Status status = budgets_->GetBudget(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.budget();
  }

  grpc::Status CreateAward(const std::string& token, const Award& award) {
    programs::v1::CreateAwardRequest request;
    *request.mutable_award() = award;
    programs::v1::CreateAwardResponse response;
    return awards_->CreateAward(harness::Context(token).get(), request, &response);
  }

  Award GetAward(const std::string& id) {
    programs::v1::GetAwardRequest request;
    request.set_award_id(id);
    programs::v1::GetAwardResponse response;
    grpc::Status status = awards_->GetAward(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.award();
  }

  grpc::Status Nominate(const std::string& nominator, const std::string& award_id,
                        const std::string& nominee, const std::string& request_id,
                        Nomination* out = nullptr, const std::string& reason = "Always on time") {
    programs::v1::NominateRequest request;
    request.set_request_id(request_id);
    request.set_award_id(award_id);
    request.set_nominee_id(nominee);
    request.set_reason(reason);
    programs::v1::NominateResponse response;
    grpc::Status status =
        awards_->Nominate(harness::Context(Member(nominator)).get(), request, &response);
    if (out != nullptr) *out = response.nomination();
    return status;
  }

  grpc::Status Approve(const std::string& approver, const std::string& award_id,
                       const std::string& nomination_id, int stage, const std::string& request_id,
                       Nomination* out = nullptr) {
    programs::v1::ApproveNominationRequest request;
    request.set_request_id(request_id);
    request.set_award_id(award_id);
    request.set_nomination_id(nomination_id);
    request.set_stage(stage);
    request.set_comment("well deserved");
    programs::v1::ApproveNominationResponse response;
    grpc::Status status =
        awards_->ApproveNomination(harness::Context(Member(approver)).get(), request, &response);
    if (out != nullptr) *out = response.nomination();
    return status;
  }

  grpc::Status Decline(const std::string& approver, const std::string& award_id,
                       const std::string& nomination_id, int stage,
                       const std::string& request_id) {
    programs::v1::DeclineNominationRequest request;
    request.set_request_id(request_id);
    request.set_award_id(award_id);
    request.set_nomination_id(nomination_id);
    request.set_stage(stage);
    programs::v1::DeclineNominationResponse response;
    return awards_->DeclineNomination(harness::Context(Member(approver)).get(), request,
                                      &response);
  }

  grpc::Status Select(const std::string& token, const std::string& award_id,
                      std::vector<std::string> winners, const std::string& request_id,
                      Award* out = nullptr) {
    programs::v1::SelectWinnersRequest request;
    request.set_request_id(request_id);
    request.set_award_id(award_id);
    for (std::string& winner : winners) request.add_winner_ids(std::move(winner));
    programs::v1::SelectWinnersResponse response;
    grpc::Status status =
        awards_->SelectWinners(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response.award();
    return status;
  }

  // A nomination of `nominee` by `nominator` approved by every stage.
  std::string ApprovedNomination(const std::string& award_id, const std::string& nominator,
                                 const std::string& nominee, int stages) {
    Nomination nomination;
    grpc::Status status = Nominate(nominator, award_id, nominee, "nom-" + nominee, &nomination);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (int stage = 0; stage < stages; ++stage) {
      status = Approve(absl::StrCat("approver", stage), award_id, nomination.nomination_id(),
                       stage, absl::StrCat("ok-", nominee, "-", stage));
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return nomination.nomination_id();
  }

  // Audit actions of the org, oldest first.
  std::vector<std::string> AuditActions() {
    absl::StatusOr<common::redis::Reply> reply =
        env_->pool().Run({"XRANGE", common::audit::StreamKey(org_), "-", "+"});
    std::vector<std::string> actions;
    if (!reply.ok()) return actions;
    for (const common::redis::Reply& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "action") actions.push_back(fields[i + 1].str);
      }
    }
    return actions;
  }

  static AwardsEnv* env_;
  std::string org_;
  std::string admin_;
  std::unique_ptr<programs::v1::AwardService::Stub> awards_;
  std::unique_ptr<programs::v1::BudgetService::Stub> budgets_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_;
};

AwardsEnv* AwardsApi::env_ = nullptr;

TEST_F(AwardsApi, NominationsThroughTwoStagesToWinnersPaidOnceFromTheBudget) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("q4", 1000, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(Member("erin"), OpenAward("star", "q4", 2, 2, 150, absl::Now())).ok());
  ApprovedNomination("star", "alice", "bob", 2);
  ApprovedNomination("star", "alice", "carol", 2);

  Award award;
  grpc::Status status = Select(Member("erin"), "star", {"bob", "carol"}, "pick-1", &award);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(award.state(), programs::v1::AWARD_STATE_PAID);
  ASSERT_EQ(award.winners_size(), 2);
  EXPECT_EQ(award.winners(0).transfer_id(), "award:star:bob");
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 150);
  EXPECT_EQ(Earned(*ledger_, org_, "carol"), 150);

  // A retry of the same request, and the sweep, pay nothing more.
  status = Select(Member("erin"), "star", {"bob", "carol"}, "pick-1", &award);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(award.state(), programs::v1::AWARD_STATE_PAID);
  Budget budget = GetBudget("q4");
  EXPECT_EQ(budget.spent(), 300);
  EXPECT_EQ(budget.reserved(), 0);
  EXPECT_EQ(budget.remaining(), 700);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 150);
  ledger::v1::VerifyLedgerResponse verified = Verify(*ledger_, org_);
  EXPECT_TRUE(verified.consistent());
  EXPECT_EQ(verified.transfer_count(), 2);

  std::vector<std::string> actions = AuditActions();
  for (const char* action : {"budget.create", "award.create", "award.nominate", "award.approve",
                             "award.select_winners", "award.paid"}) {
    EXPECT_NE(std::find(actions.begin(), actions.end(), action), actions.end()) << action;
  }
  programs::v1::ListBudgetHistoryRequest history_request;
  history_request.set_budget_id("q4");
  programs::v1::ListBudgetHistoryResponse history;
  ASSERT_TRUE(
      budgets_->ListBudgetHistory(harness::Context(admin_).get(), history_request, &history).ok());
  ASSERT_GE(history.entries_size(), 3);
  EXPECT_EQ(history.entries(0).action(), "paid");
  EXPECT_EQ(history.entries(1).action(), "reserved");
  EXPECT_EQ(history.entries(1).points(), 300);
}

TEST_F(AwardsApi, Nominate_RetryReturnsTheSameNominationAndTheSamePairAgainIsAlreadyExists) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("a", "b", 1, 1, 10, absl::Now())).ok());
  Nomination first;
  Nomination again;
  ASSERT_TRUE(Nominate("alice", "a", "bob", "r1", &first).ok());
  grpc::Status status = Nominate("alice", "a", "bob", "r1", &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(again.nomination_id(), first.nomination_id());

  status = Nominate("alice", "a", "bob", "r2");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "already nominated by 'alice'"))
      << status.error_message();
  status = Nominate("alice", "a", "carol", "r1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  // Another nominator may nominate the same person.
  EXPECT_TRUE(Nominate("dave", "a", "bob", "r1").ok());

  programs::v1::ListNominationsRequest list;
  list.set_award_id("a");
  programs::v1::ListNominationsResponse listed;
  ASSERT_TRUE(awards_->ListNominations(harness::Context(admin_).get(), list, &listed).ok());
  EXPECT_EQ(listed.nominations_size(), 2);
  // A member sees only their own.
  ASSERT_TRUE(
      awards_->ListNominations(harness::Context(Member("dave")).get(), list, &listed).ok());
  ASSERT_EQ(listed.nominations_size(), 1);
  EXPECT_EQ(listed.nominations(0).nominator_id(), "dave");
}

TEST_F(AwardsApi, Nominate_OutsideTheWindowIsFailedPreconditionAndRulesAreEnforced) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"})).ok());
  Award later = OpenAward("later", "b", 1, 1, 10, absl::Now() + absl::Hours(3));
  Award closed = OpenAward("closed", "b", 1, 1, 10, absl::Now() - absl::Hours(3));
  Award listed = OpenAward("listed", "b", 1, 1, 10, absl::Now());
  listed.set_nominator_rule(programs::v1::NOMINATOR_RULE_LIST);
  listed.add_nominator_ids("alice");
  Award managers = OpenAward("managers", "b", 1, 1, 10, absl::Now());
  managers.set_nominator_rule(programs::v1::NOMINATOR_RULE_ROLES);
  managers.add_nominator_roles("manager");
  for (const Award& award : {later, closed, listed, managers}) {
    ASSERT_TRUE(CreateAward(admin_, award).ok()) << award.award_id();
  }
  grpc::Status status = Nominate("alice", "later", "bob", "r");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "nominations open at"));
  status = Nominate("alice", "closed", "bob", "r");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "nominations closed at"));

  EXPECT_EQ(Nominate("dave", "listed", "bob", "r").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Nominate("alice", "listed", "bob", "r").ok());
  EXPECT_EQ(Nominate("alice", "managers", "bob", "r2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  programs::v1::NominateRequest request;
  request.set_request_id("m");
  request.set_award_id("managers");
  request.set_nominee_id("bob");
  request.set_reason("Unblocked the release");
  programs::v1::NominateResponse response;
  std::string manager = harness::MintToken(org_, "erin", {"member", "manager"});
  EXPECT_TRUE(awards_->Nominate(harness::Context(manager).get(), request, &response)
                  .ok());

  status = Nominate("alice", "listed", "alice", "self");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Nominate("alice", "listed", "carol", "empty", nullptr, "").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Nominate("alice", "nope", "carol", "x").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AwardsApi, Decisions_OnlyTheStagesApproversInOrderAndDeclinedIsFinal) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("a", "b", 2, 1, 10, absl::Now())).ok());
  Nomination nomination;
  ASSERT_TRUE(Nominate("alice", "a", "bob", "r", &nomination).ok());
  const std::string id = nomination.nomination_id();

  EXPECT_EQ(Approve("approver1", "a", id, 0, "x").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Approve("approver1", "a", id, 1, "x").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // waits for stage 0
  ASSERT_TRUE(Approve("approver0", "a", id, 0, "s0", &nomination).ok());
  EXPECT_EQ(nomination.current_stage(), 1);
  EXPECT_EQ(nomination.state(), programs::v1::NOMINATION_STATE_PENDING);
  // The same request again is answered as before, not refused.
  ASSERT_TRUE(Approve("approver0", "a", id, 0, "s0", &nomination).ok());
  EXPECT_EQ(nomination.decisions_size(), 1);
  EXPECT_EQ(Approve("approver0", "a", id, 0, "s0-again").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Decline("approver1", "a", id, 1, "no").ok());
  EXPECT_EQ(Approve("approver1", "a", id, 1, "yes").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Approve("approver0", "a", "missing", 0, "m").error_code(),
            grpc::StatusCode::NOT_FOUND);
  // A declined nominee cannot win.
  grpc::Status status = Select(admin_, "a", {"bob"}, "pick");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "approved by every stage"));
}

TEST_F(AwardsApi, SelectWinners_RulesAndPermissions) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("a", "b", 1, 1, 10, absl::Now())).ok());
  ApprovedNomination("a", "alice", "bob", 1);
  ApprovedNomination("a", "alice", "carol", 1);
  EXPECT_EQ(Select(Member("mallory"), "a", {"bob"}, "p").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Select(admin_, "a", {"bob", "carol"}, "p").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // one winner only
  EXPECT_EQ(Select(admin_, "a", {}, "p2").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Select(admin_, "a", {"bob"}, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Select(Member("erin"), "a", {"bob"}, "p3").ok());
  // Winners are chosen once; the same id with another payload is refused.
  EXPECT_EQ(Select(admin_, "a", {"carol"}, "p4").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Select(Member("erin"), "a", {"carol"}, "p3").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // Nominations close once winners are chosen.
  EXPECT_EQ(Nominate("dave", "a", "frank", "late").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 10);
  EXPECT_EQ(Earned(*ledger_, org_, "carol"), 0);
}

TEST_F(AwardsApi, SelectWinners_BudgetExhaustedIsResourceExhaustedAndPaysNothing) {
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("small", 250, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("first", "small", 1, 2, 100, absl::Now())).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("second", "small", 1, 1, 100, absl::Now())).ok());
  ApprovedNomination("first", "alice", "bob", 1);
  ApprovedNomination("first", "alice", "carol", 1);
  ApprovedNomination("second", "alice", "dave", 1);
  ASSERT_TRUE(Select(admin_, "first", {"bob", "carol"}, "p1").ok());
  grpc::Status status = Select(admin_, "second", {"dave"}, "p2");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "100 points needed, 50 left in period"))
      << status.error_message();
  EXPECT_EQ(Earned(*ledger_, org_, "dave"), 0);
  EXPECT_EQ(GetAward("second").state(), programs::v1::AWARD_STATE_OPEN);
  EXPECT_EQ(GetBudget("small").spent(), 200);
  EXPECT_TRUE(Verify(*ledger_, org_).consistent());
}

TEST_F(AwardsApi, Budgets_AdminsCreateOwnersReadAndBadInputIsInvalidArgument) {
  Budget budget = MonthlyBudget("team", 500, {"erin"});
  EXPECT_EQ(CreateBudget(Member("erin"), budget).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  Budget created;
  ASSERT_TRUE(CreateBudget(admin_, budget, &created).ok());
  EXPECT_EQ(created.remaining(), 500);
  EXPECT_FALSE(created.period().empty());
  // Idempotent by id; another payload under it is ALREADY_EXISTS.
  EXPECT_TRUE(CreateBudget(admin_, budget).ok());
  budget.set_amount_per_period(600);
  EXPECT_EQ(CreateBudget(admin_, budget).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  Budget bad = MonthlyBudget("bad", 0, {"erin"});
  EXPECT_EQ(CreateBudget(admin_, bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = MonthlyBudget("bad", 10, {}, "Mars/Olympus");
  EXPECT_EQ(CreateBudget(admin_, bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = MonthlyBudget("bad", 10, {"erin"}, "Mars/Olympus");
  grpc::Status status = CreateBudget(admin_, bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "budget.time_zone"))
      << status.error_message();
  bad = MonthlyBudget("bad id", 10, {"erin"});
  EXPECT_EQ(CreateBudget(admin_, bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  programs::v1::GetBudgetRequest get;
  get.set_budget_id("team");
  programs::v1::GetBudgetResponse got;
  EXPECT_TRUE(budgets_->GetBudget(harness::Context(Member("erin")).get(), get, &got).ok());
  EXPECT_EQ(budgets_->GetBudget(harness::Context(Member("bob")).get(), get, &got).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  programs::v1::ListBudgetsResponse listed;
  ASSERT_TRUE(budgets_->ListBudgets(harness::Context(Member("bob")).get(), {}, &listed).ok());
  EXPECT_EQ(listed.budgets_size(), 0);
  ASSERT_TRUE(budgets_->ListBudgets(harness::Context(Member("erin")).get(), {}, &listed).ok());
  EXPECT_EQ(listed.budgets_size(), 1);

  // An award from someone else's budget; from a missing budget.
  EXPECT_EQ(CreateAward(Member("bob"), OpenAward("x", "team", 1, 1, 10, absl::Now())).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CreateAward(admin_, OpenAward("x", "none", 1, 1, 10, absl::Now())).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  Award no_stages = OpenAward("x", "team", 0, 1, 10, absl::Now());
  EXPECT_EQ(CreateAward(admin_, no_stages).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  programs::v1::UpdateBudgetRequest update;
  update.set_request_id("u1");
  *update.mutable_budget() = MonthlyBudget("team", 800, {"erin", "frank"});
  programs::v1::UpdateBudgetResponse updated;
  ASSERT_TRUE(budgets_->UpdateBudget(harness::Context(admin_).get(), update, &updated).ok());
  EXPECT_EQ(updated.budget().remaining(), 800);
  EXPECT_EQ(updated.budget().owner_ids_size(), 2);
  update.mutable_budget()->set_amount_per_period(900);
  EXPECT_EQ(budgets_->UpdateBudget(harness::Context(admin_).get(), update, &updated).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);  // u1 was used for 800
}

TEST_F(AwardsApi, Payment_LedgerDownStaysInFlightAndAnotherReplicasSweepPaysOnce) {
  // A replica whose ledger is unreachable: the winners are reserved, the
  // payment's answer unknown.
  harness::Service blind(PROGRAMS_BINARY, env_->redis().address(),
                         {"--ledger=127.0.0.1:" + std::to_string(harness::FreePort()),
                          "--call_timeout_ms=500", "--awards_sweep_interval_ms=3600000"});
  auto blind_awards = env_->Awards(blind);
  auto blind_budgets = env_->Budgets(blind);
  WaitUntilServing(*blind_budgets, admin_);
  ASSERT_TRUE(CreateBudget(admin_, MonthlyBudget("b", 1000, {"erin"})).ok());
  ASSERT_TRUE(CreateAward(admin_, OpenAward("a", "b", 1, 1, 40, absl::Now())).ok());
  ApprovedNomination("a", "alice", "bob", 1);

  programs::v1::SelectWinnersRequest request;
  request.set_request_id("pick");
  request.set_award_id("a");
  request.add_winner_ids("bob");
  programs::v1::SelectWinnersResponse response;
  grpc::Status status =
      blind_awards->SelectWinners(harness::Context(admin_).get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "payment in flight"));
  EXPECT_EQ(GetAward("a").state(), programs::v1::AWARD_STATE_PAYING);
  EXPECT_EQ(GetBudget("b").reserved(), 40);

  // The shared replica's sweep (every 200 ms) finishes it.
  ASSERT_TRUE(harness::Eventually(
      [&] { return GetAward("a").state() == programs::v1::AWARD_STATE_PAID; }));
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 40);
  Budget budget = GetBudget("b");
  EXPECT_EQ(budget.spent(), 40);
  EXPECT_EQ(budget.reserved(), 0);
  // The blind replica's retry answers the paid award without paying again.
  status = blind_awards->SelectWinners(harness::Context(admin_).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.award().state(), programs::v1::AWARD_STATE_PAID);
  EXPECT_EQ(Earned(*ledger_, org_, "bob"), 40);
  ledger::v1::VerifyLedgerResponse verified = Verify(*ledger_, org_);
  EXPECT_TRUE(verified.consistent());
  EXPECT_EQ(verified.transfer_count(), 1);
}

}  // namespace
}  // namespace awards_test
