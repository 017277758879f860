#include "tests/ledger/ledger_test_util.h"

#include <thread>

#include "absl/time/clock.h"
#include "common/auth/auth.h"

namespace ledger_test {

Account Allowance(const std::string& person) {
  Account a;
  a.set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  a.set_person_id(person);
  return a;
}

Account Earned(const std::string& person) {
  Account a;
  a.set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  a.set_person_id(person);
  return a;
}

Account Issuer() {
  Account a;
  a.set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
  return a;
}

Account Rewards() {
  Account a;
  a.set_type(ledger::v1::ACCOUNT_TYPE_REWARDS);
  return a;
}

Transfer Kudos(const std::string& id, const std::string& from, const std::string& to,
               int64_t amount, const std::string& reference) {
  Transfer t;
  t.set_transfer_id(id);
  *t.mutable_debit_account() = Allowance(from);
  *t.mutable_credit_account() = Earned(to);
  t.set_amount(amount);
  t.set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  t.set_reference(reference);
  (*t.mutable_tags())["giver"] = from;
  (*t.mutable_tags())["team"] = "";
  (*t.mutable_tags())["values"] = "teamwork";
  return t;
}

std::string ServiceToken(const std::string& org) {
  auto token = common::auth::MintServiceToken("kudos", org, common::auth::kDevServiceSecret,
                                              absl::Now());
  if (!token.ok()) throw std::runtime_error(std::string(token.status().message()));
  return *token;
}

LedgerEnv::LedgerEnv()
    : redis_(std::make_unique<harness::RedisServer>()),
      ledger_(std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address())) {
  common::redis::PoolOptions options;
  options.endpoint.port = redis_->port();
  options.size = 2;
  pool_ = std::make_unique<common::redis::Pool>(options);
}

std::unique_ptr<ledger::v1::LedgerService::Stub> LedgerEnv::NewStub() {
  return ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
}

void WaitUntilServing(ledger::v1::LedgerService::Stub& stub, const std::string& token) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto context = harness::Context(token, std::chrono::milliseconds(500));
    context->set_wait_for_ready(true);
    ledger::v1::GetAllowanceResponse response;
    ledger::v1::GetAllowanceRequest request;
    request.set_person_id("probe");
    grpc::Status status = stub.GetAllowance(context.get(), request, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace ledger_test
