// Shared by the ledger's integration and property tests: a real
// redis-server, the real ledger_server, tokens per role and small helpers.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "common/redis/redis_client.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace ledger_test {

using ledger::v1::Account;
using ledger::v1::Transfer;

Account Allowance(const std::string& person);
Account Earned(const std::string& person);
Account Issuer();
Account Rewards();

Transfer Kudos(const std::string& id, const std::string& from, const std::string& to,
               int64_t amount, const std::string& reference = "kudos-1");

std::string ServiceToken(const std::string& org);

// One redis-server and one ledger_server shared by a test suite.
class LedgerEnv {
 public:
  LedgerEnv();
  harness::RedisServer& redis() { return *redis_; }
  harness::Service& ledger() { return *ledger_; }
  // A fresh channel (after a restart the old one reconnects too).
  std::unique_ptr<ledger::v1::LedgerService::Stub> NewStub();
  // Direct Redis access for assertions (outbox, audit, tampering).
  common::redis::Pool& pool() { return *pool_; }

 private:
  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<common::redis::Pool> pool_;
};

// Blocks until the ledger answers (after a restart).
void WaitUntilServing(ledger::v1::LedgerService::Stub& stub, const std::string& token);

}  // namespace ledger_test
