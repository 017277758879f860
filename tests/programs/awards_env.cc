#include "tests/programs/awards_env.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace awards_test {

AwardsEnv::AwardsEnv() {
  redis_ = std::make_unique<harness::RedisServer>();
  ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
  programs_ = std::make_unique<harness::Service>(
      PROGRAMS_BINARY, redis_->address(),
      std::vector<std::string>{"--ledger=" + ledger_->address(), "--call_timeout_ms=3000",
                               "--awards_sweep_interval_ms=200"});
  absl::StatusOr<common::redis::PoolOptions> options =
      common::redis::PoolOptionsFor(redis_->address());
  pool_ = std::make_unique<common::redis::Pool>(*options);
}

std::unique_ptr<programs::v1::AwardService::Stub> AwardsEnv::Awards(
    const harness::Service& server) {
  return programs::v1::AwardService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
}

std::unique_ptr<programs::v1::BudgetService::Stub> AwardsEnv::Budgets(
    const harness::Service& server) {
  return programs::v1::BudgetService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
}

std::unique_ptr<ledger::v1::LedgerService::Stub> AwardsEnv::Ledger() {
  return ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
}

void WaitUntilServing(programs::v1::BudgetService::Stub& stub, const std::string& token) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto context = harness::Context(token, std::chrono::milliseconds(500));
    context->set_wait_for_ready(true);
    programs::v1::ListBudgetsResponse response;
    grpc::Status status = stub.ListBudgets(context.get(), {}, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string TestOrg(const std::string& prefix) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string org = prefix + name;
  if (org.size() <= 64) return org;
  return absl::StrCat(org.substr(0, 55), "-",
                      absl::Hex(std::hash<std::string>()(name) & 0xffffffff, absl::kZeroPad8));
}

programs::v1::Budget MonthlyBudget(const std::string& id, int64_t amount,
                                   std::vector<std::string> owners, const std::string& zone) {
  programs::v1::Budget budget;
  budget.set_budget_id(id);
  budget.set_name("Budget " + id);
  budget.set_kind(programs::v1::BUDGET_KIND_PROGRAM);
  for (std::string& owner : owners) budget.add_owner_ids(std::move(owner));
  budget.set_amount_per_period(amount);
  budget.set_refresh(programs::v1::BUDGET_REFRESH_MONTHLY);
  budget.set_time_zone(zone);
  return budget;
}

programs::v1::Award OpenAward(const std::string& id, const std::string& budget_id, int stages,
                              int winners, int64_t points, absl::Time now) {
  using google::protobuf::util::TimeUtil;
  programs::v1::Award award;
  award.set_award_id(id);
  award.set_name("Award " + id);
  award.set_description("For outstanding service");
  award.set_budget_id(budget_id);
  *award.mutable_nomination_start() =
      TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(now - absl::Hours(1)));
  *award.mutable_nomination_end() =
      TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(now + absl::Hours(1)));
  award.set_nominator_rule(programs::v1::NOMINATOR_RULE_EVERYONE);
  for (int i = 0; i < stages; ++i) {
    programs::v1::ApprovalStage* stage = award.add_stages();
    stage->set_name(absl::StrCat("stage ", i));
    stage->add_approver_ids(absl::StrCat("approver", i));
  }
  award.set_number_of_winners(winners);
  award.set_points_per_winner(points);
  return award;
}

int64_t Earned(ledger::v1::LedgerService::Stub& ledger, const std::string& org,
               const std::string& person) {
  ledger::v1::GetBalanceRequest request;
  request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  request.mutable_account()->set_person_id(person);
  ledger::v1::GetBalanceResponse response;
  grpc::Status status = ledger.GetBalance(
      harness::Context(harness::MintToken(org, "root", {"admin"})).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.balance();
}

ledger::v1::VerifyLedgerResponse Verify(ledger::v1::LedgerService::Stub& ledger,
                                        const std::string& org) {
  ledger::v1::VerifyLedgerResponse response;
  grpc::Status status = ledger.VerifyLedger(
      harness::Context(harness::MintToken(org, "root", {"admin"})).get(), {}, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

}  // namespace awards_test
