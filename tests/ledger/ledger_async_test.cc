// The ledger on the callback API over the asynchronous Redis client (issue
// 13): the real ledger_server and a real redis-server on loopback. Stalls
// are SIGSTOPs of redis-server; GRPC_MAX_THREADS=4 (the fewest a server may
// have) so a handler that held a thread while it waited on Redis would
// starve the next call and the health check.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/redis/redis_client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/stall.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledger_test {
namespace {

using namespace std::chrono_literals;
using google::protobuf::util::MessageDifferencer;
using ledger::v1::PostTransfersRequest;
using ledger::v1::PostTransfersResponse;

constexpr char kOrg[] = "acme";

using harness::FailedOnTime;
using harness::HealthStatus;
using harness::Paused;
using harness::RedisPid;
using harness::ServicePid;

// A redis-server and a ledger_server with `flags`, four sync threads at most.
class AsyncLedger {
 public:
  explicit AsyncLedger(std::vector<std::string> flags)
      : ledger_(LEDGER_BINARY, redis_.address(), std::move(flags), {{"GRPC_MAX_THREADS", "4"}}),
        stub_(ledger::v1::LedgerService::NewStub(
            grpc::CreateChannel(ledger_.address(), grpc::InsecureChannelCredentials()))),
        service_(ServiceToken(kOrg)),
        admin_(harness::MintToken(kOrg, "root", {"admin"})) {}

  grpc::Status Post(const Transfer& transfer, std::chrono::microseconds timeout,
                    PostTransfersResponse* response) {
    PostTransfersRequest request;
    *request.add_transfers() = transfer;
    request.set_linked(true);
    auto context = harness::Context(service_, std::chrono::milliseconds(0));
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->PostTransfers(context.get(), request, response);
  }

  grpc::Status Balance(const std::string& person, int64_t* balance,
                       std::chrono::milliseconds timeout = 10s) {
    ledger::v1::GetBalanceRequest request;
    *request.mutable_account() = Earned(person);
    ledger::v1::GetBalanceResponse response;
    grpc::Status status = stub_->GetBalance(harness::Context(admin_, timeout).get(), request,
                                            &response);
    if (balance != nullptr) *balance = response.balance();
    return status;
  }

  grpc::Status Allowance(const std::string& person, std::chrono::milliseconds timeout) {
    ledger::v1::GetAllowanceRequest request;
    request.set_person_id(person);
    ledger::v1::GetAllowanceResponse response;
    return stub_->GetAllowance(harness::Context(admin_, timeout).get(), request, &response);
  }

  grpc::Status List(const std::string& person, std::chrono::milliseconds timeout) {
    ledger::v1::ListTransfersRequest request;
    *request.mutable_account() = Earned(person);
    ledger::v1::ListTransfersResponse response;
    return stub_->ListTransfers(harness::Context(admin_, timeout).get(), request, &response);
  }

  ledger::v1::VerifyLedgerResponse Verify() {
    ledger::v1::VerifyLedgerResponse response;
    grpc::Status status = stub_->VerifyLedger(harness::Context(admin_, 30s).get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // How many times each transfer id reached the outbox.
  std::map<std::string, int> OutboxCounts() {
    common::redis::Endpoint endpoint;
    endpoint.port = redis_.port();
    common::redis::Connection connection(endpoint, 10s);
    absl::StatusOr<common::redis::Reply> reply =
        connection.Run({"XRANGE", absl::StrCat("ledger:{", kOrg, "}:outbox"), "-", "+"});
    EXPECT_TRUE(reply.ok()) << reply.status();
    std::map<std::string, int> counts;
    if (!reply.ok()) return counts;
    for (const common::redis::Reply& entry : reply->elements) {
      ledger::v1::LedgerEvent event;
      EXPECT_TRUE(event.ParseFromString(entry.elements[1].elements[1].str));
      for (const Transfer& t : event.transfers_posted().transfers()) ++counts[t.transfer_id()];
    }
    return counts;
  }

  harness::RedisServer& redis() { return redis_; }
  harness::Service& ledger() { return ledger_; }

 private:
  harness::RedisServer redis_;
  harness::Service ledger_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
  std::string service_;
  std::string admin_;
};

// Redis pauses every client for 150 ms (CLIENT PAUSE) at offsets from 0 to
// ~3 ms after a post starts, whose client gives up after 60 ms: the pause
// lands before, between and after the ledger's Redis steps, so the script
// runs before the answer, never, or after the ledger already answered
// DEADLINE_EXCEEDED. Whatever the first answer, the retry with the same
// transfer id (the idempotency key) succeeds, a third call gives the very
// same transfer, and every transfer is applied exactly once.
TEST(LedgerAsyncTest, PostTransfers_ClientDeadlineMidCallAppliesOnceOrNotAtAllAndRetriesAgree) {
  AsyncLedger env({});
  common::redis::Endpoint endpoint;
  endpoint.port = env.redis().port();
  common::redis::Connection pauser(endpoint, 10s);
  constexpr int kTransfers = 48;
  int64_t expected = 0;
  int expired = 0;
  int expired_but_applied = 0;
  for (int i = 0; i < kTransfers; ++i) {
    const std::string id = absl::StrCat("deadline-", i);
    const int64_t amount = 1 + i % 3;
    // A giver per transfer: allowances never run out.
    Transfer transfer = Kudos(id, absl::StrCat("giver", i), "bob", amount, id);
    std::thread pause([&pauser, i] {
      std::this_thread::sleep_for(std::chrono::microseconds(250 * (i % 12)));
      absl::StatusOr<common::redis::Reply> paused = pauser.Run({"CLIENT", "PAUSE", "150", "ALL"});
      EXPECT_TRUE(paused.ok()) << paused.status();
    });
    PostTransfersResponse first;
    grpc::Status first_status = env.Post(transfer, 60ms, &first);
    pause.join();
    ASSERT_TRUE(first_status.ok() ||
                first_status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
        << i << ": " << first_status.error_code() << " " << first_status.error_message();
    PostTransfersResponse retry;
    grpc::Status retry_status = env.Post(transfer, 10s, &retry);
    ASSERT_TRUE(retry_status.ok()) << i << ": " << retry_status.error_message();
    ASSERT_EQ(retry.results_size(), 1);
    ASSERT_EQ(retry.results(0).status_code(), 0) << retry.results(0).error_message();
    if (first_status.ok()) {
      EXPECT_FALSE(retry.results(0).created()) << i;
      EXPECT_TRUE(MessageDifferencer::Equals(retry.results(0).transfer(),
                                             first.results(0).transfer()))
          << i;
    } else {
      ++expired;
      if (!retry.results(0).created()) ++expired_but_applied;
    }
    PostTransfersResponse again;
    ASSERT_TRUE(env.Post(transfer, 10s, &again).ok());
    EXPECT_FALSE(again.results(0).created()) << i;
    EXPECT_TRUE(
        MessageDifferencer::Equals(again.results(0).transfer(), retry.results(0).transfer()))
        << i;
    expected += amount;
  }
  std::cout << "[ info ] " << expired << " of " << kTransfers << " first calls expired, "
            << expired_but_applied
            << " of those applied anyway (the script ran as or after the deadline hit)\n";
  int64_t balance = 0;
  ASSERT_TRUE(env.Balance("bob", &balance).ok());
  EXPECT_EQ(balance, expected);
  std::map<std::string, int> outbox = env.OutboxCounts();
  EXPECT_EQ(outbox.size(), static_cast<size_t>(kTransfers));
  for (const auto& [id, count] : outbox) EXPECT_EQ(count, 1) << id;
  EXPECT_TRUE(env.Verify().consistent());
}

// A Redis stall of at least 3 s: ledger calls (reads, scripts, posts) end on
// time with DEADLINE_EXCEEDED or UNAVAILABLE by the ledger's own bound
// (--redis_timeout_ms=1000, well inside the clients' 20 s), health answers
// SERVING all along, and after SIGCONT everything works again, the posts
// retried with their ids applied once.
TEST(LedgerAsyncTest, RedisStall_CallsFailOnTimeHealthKeepsAnsweringAndAllRecoversOnSigcont) {
  AsyncLedger env({"--redis_timeout_ms=1000"});
  PostTransfersResponse warm;
  ASSERT_TRUE(env.Post(Kudos("warm", "alice", "bob", 5, "warm"), 10s, &warm).ok());
  pid_t redis_pid = RedisPid(env.redis());
  ASSERT_GT(redis_pid, 0);

  constexpr int kCalls = 16;  // four times the server's sync threads
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::chrono::steady_clock::duration> took(kCalls);
  std::atomic<int> finished{0};
  std::vector<std::string> health;
  {
    Paused paused(redis_pid);
    ASSERT_TRUE(paused.stopped()) << "redis-server still running 30 s after SIGSTOP";
    const auto stopped_at = std::chrono::steady_clock::now();
    std::vector<std::thread> callers;
    for (int i = 0; i < kCalls; ++i) {
      callers.emplace_back([&, i] {
        auto start = std::chrono::steady_clock::now();
        PostTransfersResponse ignored;
        switch (i % 4) {
          case 0:
            statuses[i] = env.Post(Kudos(absl::StrCat("stall-", i), absl::StrCat("g", i), "bob",
                                         2, absl::StrCat("stall-", i)),
                                   20s, &ignored);
            break;
          case 1:
            statuses[i] = env.Balance("bob", nullptr, 20s);
            break;
          case 2:
            statuses[i] = env.Allowance("alice", 20s);
            break;
          default:
            statuses[i] = env.List("bob", 20s);
        }
        took[i] = std::chrono::steady_clock::now() - start;
        ++finished;
      });
    }
    // Health while the calls wait on Redis, until they all ended and Redis
    // has been stopped for 3 s.
    for (int round = 0; round < 300; ++round) {
      health.push_back(HealthStatus(env.ledger().address(), 5s));
      bool long_enough = std::chrono::steady_clock::now() - stopped_at >= 3s;
      if (finished.load() == kCalls && long_enough && health.size() >= 5) break;
      std::this_thread::sleep_for(100ms);
    }
    for (std::thread& caller : callers) caller.join();
  }
  ASSERT_GE(health.size(), 5u);
  for (size_t i = 0; i < health.size(); ++i) EXPECT_EQ(health[i], "SERVING") << "check " << i;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(FailedOnTime(statuses[i]))
        << i << ": " << statuses[i].error_code() << " " << statuses[i].error_message();
    // The ledger's 1 s bound ended it, not the client's 20 s.
    EXPECT_LT(took[i], 15s) << i;
  }

  // Recovered without a restart: reads, then the stalled posts retried.
  ASSERT_TRUE(harness::Eventually([&] { return env.Balance("bob", nullptr, 2s).ok(); }));
  int64_t expected = 5;
  for (int i = 0; i < kCalls; i += 4) {
    PostTransfersResponse retry;
    grpc::Status status = env.Post(Kudos(absl::StrCat("stall-", i), absl::StrCat("g", i), "bob",
                                         2, absl::StrCat("stall-", i)),
                                   10s, &retry);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(retry.results(0).status_code(), 0) << retry.results(0).error_message();
    expected += 2;
  }
  int64_t balance = 0;
  ASSERT_TRUE(env.Balance("bob", &balance).ok());
  EXPECT_EQ(balance, expected);
  for (const auto& [id, count] : env.OutboxCounts()) EXPECT_EQ(count, 1) << id;
  EXPECT_TRUE(env.Verify().consistent());
  EXPECT_EQ(HealthStatus(env.ledger().address(), 5s), "SERVING");
}

// --max_calls_in_flight bounds the calls one replica serves at once: with
// Redis stopped, three times the bound arrive at once; exactly the bound is
// held, the rest are RESOURCE_EXHAUSTED at once, health still answers, and
// the held calls complete after SIGCONT.
TEST(LedgerAsyncTest, CallsInFlight_PastTheBoundAreResourceExhaustedAndHeldOnesComplete) {
  constexpr int kBound = 4;
  constexpr int kCalls = 3 * kBound;
  AsyncLedger env({absl::StrCat("--max_calls_in_flight=", kBound), "--redis_timeout_ms=60000"});
  ASSERT_TRUE(env.Balance("bob", nullptr).ok());
  pid_t redis_pid = RedisPid(env.redis());
  ASSERT_GT(redis_pid, 0);
  std::vector<grpc::Status> statuses(kCalls);
  std::atomic<int> refused{0};
  std::vector<std::thread> callers;
  {
    Paused paused(redis_pid);
    ASSERT_TRUE(paused.stopped()) << "redis-server still running 30 s after SIGSTOP";
    for (int i = 0; i < kCalls; ++i) {
      callers.emplace_back([&, i] {
        statuses[i] = env.Balance("bob", nullptr, 60s);
        if (statuses[i].error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
      });
    }
    // The calls past the bound are answered while Redis is still stopped.
    EXPECT_TRUE(harness::Eventually([&] { return refused.load() == kCalls - kBound; }));
    EXPECT_EQ(HealthStatus(env.ledger().address(), 5s), "SERVING");
  }
  for (std::thread& caller : callers) caller.join();
  int served = 0;
  for (int i = 0; i < kCalls; ++i) {
    if (statuses[i].ok()) {
      ++served;
      continue;
    }
    EXPECT_EQ(statuses[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << i;
    EXPECT_NE(statuses[i].error_message().find("4 calls in flight"), std::string::npos)
        << statuses[i].error_message();
  }
  EXPECT_EQ(served, kBound);
  EXPECT_EQ(refused.load(), kCalls - kBound);
  EXPECT_TRUE(env.Balance("bob", nullptr).ok());
}

}  // namespace
}  // namespace ledger_test
