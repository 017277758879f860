// A reusable fixture for comments, reactions, reports and retraction (issue
// 18 part 6): a real redis-server, the real ledger and kudos binaries over
// real gRPC, a small directory, and helpers to send kudos, boost them, read
// balances, verify the ledger and read the kudos/audit streams. Other suites
// (e.g. the leaderboard rebuild after a retraction) can derive from it and
// add their own services in SetUp.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "kudos/v1/social.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace social_test {

inline constexpr char kOrg[] = "acme";

class SocialFixture : public ::testing::Test {
 protected:
  // Extra kudos_server flags (bounds) for a test; call before SetUp runs.
  virtual std::vector<std::string> KudosFlags() { return {}; }

  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    std::vector<std::string> flags = {"--ledger=" + ledger_->address(), "--ledger_timeout_ms=1500",
                                      "--reconcile_after_ms=500"};
    for (const std::string& flag : KudosFlags()) flags.push_back(flag);
    kudos_ = std::make_unique<harness::Service>(KUDOS_BINARY, redis_->address(), flags);
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = kudos::v1::KudosService::NewStub(channel);
    directory_ = kudos::v1::DirectoryService::NewStub(channel);
    social_ = kudos::v1::KudosSocialService::NewStub(channel);
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
    admin_ = harness::MintToken(kOrg, "root", {"member", "admin"});
    CreateTeam("eng");
    CreateTeam("ops");
    CreatePerson("root", "eng", "");
    CreatePerson("mona", "eng", "");  // bob's manager
    for (const char* id : {"alice", "carol", "dave"}) CreatePerson(id, "eng", "");
    CreatePerson("bob", "ops", "mona");
    CreatePerson("olga", "ops", "");
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status =
        directory_->CreateTeam(harness::Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void CreatePerson(const std::string& id, const std::string& team, const std::string& manager) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_manager_id(manager);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status =
        directory_->CreatePerson(harness::Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static std::string Token(const std::string& who) { return harness::MintToken(kOrg, who); }

  // A committed kudos from `giver` (its id), or "" with the test failed.
  std::string Send(const std::string& giver, const std::string& request_id,
                   std::vector<std::string> recipients, int64_t points,
                   kudos::v1::KudosVisibility visibility = kudos::v1::KUDOS_VISIBILITY_PUBLIC) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    for (const auto& r : recipients) request.add_recipient_ids(r);
    request.set_message("Thank you for following up so quickly!");
    request.add_values("consistent-follow-up");
    request.set_points_per_recipient(points);
    request.set_visibility(visibility);
    kudos::v1::SendKudosResponse response;
    grpc::Status status;
    // UNAVAILABLE says "retry with the same request_id" (a ledger call past
    // its 1.5 s on a loaded machine): a client does, and so does the fixture
    // (bounded), so these tests check the outcome, not the machine's speed.
    for (int attempt = 0; attempt < 20; ++attempt) {
      status = kudos_stub_->SendKudos(harness::Context(Token(giver)).get(), request, &response);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.kudos().kudos_id();
  }

  grpc::Status Boost(const std::string& booster, const std::string& kudos_id,
                     const std::string& request_id, int64_t points) {
    kudos::v1::BoostKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_points(points);
    kudos::v1::BoostKudosResponse response;
    return kudos_stub_->BoostKudos(harness::Context(Token(booster)).get(), request, &response);
  }

  int64_t Balance(ledger::v1::AccountType type, const std::string& person) {
    ledger::v1::GetBalanceRequest request;
    request.mutable_account()->set_type(type);
    request.mutable_account()->set_person_id(person);
    ledger::v1::GetBalanceResponse response;
    grpc::Status status =
        ledger_stub_->GetBalance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.balance();
  }
  int64_t Earned(const std::string& person) {
    return Balance(ledger::v1::ACCOUNT_TYPE_EARNED, person);
  }

  // Allowance points spent this period.
  int64_t Spent(const std::string& person) {
    ledger::v1::GetAllowanceRequest request;
    request.set_person_id(person);
    ledger::v1::GetAllowanceResponse response;
    grpc::Status status =
        ledger_stub_->GetAllowance(harness::Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.spent_points();
  }

  // VerifyLedger's answer (consistent or not), the test failed on an error.
  bool LedgerConsistent() {
    ledger::v1::VerifyLedgerResponse verified;
    grpc::Status status = ledger_stub_->VerifyLedger(harness::Context(admin_).get(),
                                                     ledger::v1::VerifyLedgerRequest(), &verified);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(verified.consistent()) << verified.DebugString();
    return status.ok() && verified.consistent();
  }

  grpc::Status Retract(const std::string& token, const std::string& kudos_id,
                       const std::string& request_id,
                       kudos::v1::RetractKudosResponse* out = nullptr,
                       const std::string& reason = "abusive message") {
    kudos::v1::RetractKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_reason(reason);
    kudos::v1::RetractKudosResponse response;
    grpc::Status status = social_->RetractKudos(harness::Context(token).get(), request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  grpc::Status GetKudos(const std::string& who, const std::string& kudos_id,
                        kudos::v1::Kudos* out = nullptr) {
    kudos::v1::GetKudosRequest request;
    request.set_kudos_id(kudos_id);
    kudos::v1::GetKudosResponse response;
    grpc::Status status =
        kudos_stub_->GetKudos(harness::Context(Token(who)).get(), request, &response);
    if (out != nullptr) *out = response.kudos();
    return status;
  }

  // A blocking Redis pool on the test's server, to read streams directly.
  common::redis::Pool& Redis() {
    if (!pool_) {
      common::redis::PoolOptions options;
      options.endpoint.port = redis_->port();
      pool_ = std::make_unique<common::redis::Pool>(options);
    }
    return *pool_;
  }

  // The events of the org's kudos stream of one kind (KudosEvent's oneof case).
  std::vector<kudos::v1::KudosEvent> KudosEvents(kudos::v1::KudosEvent::EventCase kind) {
    std::vector<kudos::v1::KudosEvent> events;
    absl::StatusOr<common::redis::Reply> reply =
        Redis().Run({"XRANGE", std::string("kudos:{") + kOrg + "}:events", "-", "+"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return events;
    for (const common::redis::Reply& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        kudos::v1::KudosEvent event;
        if (fields[i].str == "event" && event.ParseFromString(fields[i + 1].str) &&
            event.event_case() == kind) {
          events.push_back(event);
        }
      }
    }
    return events;
  }

  // The audit stream's entries with `action`, each as field -> value.
  std::vector<std::map<std::string, std::string>> AuditEntries(const std::string& action) {
    std::vector<std::map<std::string, std::string>> entries;
    absl::StatusOr<common::redis::Reply> reply =
        Redis().Run({"XRANGE", std::string("audit:{") + kOrg + "}", "-", "+"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return entries;
    for (const common::redis::Reply& entry : reply->elements) {
      std::map<std::string, std::string> fields;
      const auto& raw = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < raw.size(); i += 2) fields[raw[i].str] = raw[i + 1].str;
      if (fields["action"] == action) entries.push_back(fields);
    }
    return entries;
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosSocialService::Stub> social_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::string admin_;
};

}  // namespace social_test
