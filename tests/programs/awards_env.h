// Shared by the awards tests: a real redis-server, the real ledger_server and
// programs_server over gRPC, tokens, and builders for budgets and awards.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "programs/v1/awards.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace awards_test {

// One redis-server, one ledger_server and one programs_server (its ledger is
// the real one; kudos is not started: budgets name their zone).
class AwardsEnv {
 public:
  AwardsEnv();
  harness::RedisServer& redis() { return *redis_; }
  harness::Service& ledger() { return *ledger_; }
  harness::Service& programs() { return *programs_; }
  common::redis::Pool& pool() { return *pool_; }
  std::unique_ptr<programs::v1::AwardService::Stub> Awards(const harness::Service& server);
  std::unique_ptr<programs::v1::BudgetService::Stub> Budgets(const harness::Service& server);
  std::unique_ptr<ledger::v1::LedgerService::Stub> Ledger();

 private:
  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> programs_;
  std::unique_ptr<common::redis::Pool> pool_;
};

// Blocks until `server`'s BudgetService answers.
void WaitUntilServing(programs::v1::BudgetService::Stub& stub, const std::string& token);

// An org per test, within the id rule.
std::string TestOrg(const std::string& prefix);

programs::v1::Budget MonthlyBudget(const std::string& id, int64_t amount,
                                   std::vector<std::string> owners,
                                   const std::string& zone = "Europe/Paris");
// An award open for nominations around `now`, EVERYONE nominates, `stages`
// stages with one approver each ("approver0", "approver1", ...).
programs::v1::Award OpenAward(const std::string& id, const std::string& budget_id, int stages,
                              int winners, int64_t points, absl::Time now);

// The EARNED balance of `person` (admin read).
int64_t Earned(ledger::v1::LedgerService::Stub& ledger, const std::string& org,
               const std::string& person);
// VerifyLedger's answer for `org`.
ledger::v1::VerifyLedgerResponse Verify(ledger::v1::LedgerService::Stub& ledger,
                                        const std::string& org);

}  // namespace awards_test
