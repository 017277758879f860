// Issue 13: the kudos service's unary RPCs on the gRPC callback API over the
// asynchronous Redis client and the ledger's async stub. A real redis-server,
// the real ledger and kudos binaries over gRPC; stalls are SIGSTOPs of
// redis-server or of the ledger. No timed assertions: deadlines only bound
// failures.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/stall.h"
#include "tests/harness/tokens.h"

namespace {

using namespace std::chrono_literals;
using harness::Context;
using harness::Eventually;
using harness::MintToken;

constexpr char kOrg[] = "acme";

using harness::FailedOnTime;
using harness::HealthStatus;
using harness::Paused;
using harness::RedisPid;
using harness::ServicePid;

class KudosAsyncTest : public ::testing::Test {
 protected:
  // GRPC_MAX_THREADS=4, the fewest sync-server threads a server may have: a
  // handler that held a thread while it waited on Redis or the ledger would
  // take them all, and the next call (and the health check) would find none.
  // --ledger_timeout_ms=10000: the client's deadline, not the service's own
  // bound, is what ends a call waiting on a stopped ledger.
  KudosAsyncTest() : KudosAsyncTest(std::vector<std::string>{}) {}
  explicit KudosAsyncTest(std::vector<std::string> extra_flags)
      : ledger_(LEDGER_BINARY, redis_.address()),
        kudos_(KUDOS_BINARY, redis_.address(),
               KudosFlags(ledger_.address(), std::move(extra_flags)),
               {{"GRPC_MAX_THREADS", "4"}}) {
    auto channel = grpc::CreateChannel(kudos_.address(), grpc::InsecureChannelCredentials());
    stub_ = kudos::v1::KudosService::NewStub(channel);
    directory_ = kudos::v1::DirectoryService::NewStub(channel);
    ledger_stub_ = ledger::v1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_.address(), grpc::InsecureChannelCredentials()));
    admin_ = MintToken(kOrg, "root", {"admin"});
  }

  void SetUp() override {
    kudos::v1::GetOrgSettingsResponse current;
    ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &current).ok());
    kudos::v1::UpdateOrgSettingsRequest settings;
    *settings.mutable_settings() = current.settings();
    settings.mutable_settings()->set_max_kudos_per_minute(10000);
    settings.mutable_settings()->set_weekly_pair_cap_points(1000000);
    settings.mutable_settings()->mutable_allowance()->set_points_per_period(1000000);
    kudos::v1::UpdateOrgSettingsResponse updated;
    grpc::Status status = directory_->UpdateOrgSettings(Context(admin_).get(), settings, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
    kudos::v1::CreateTeamRequest team;
    team.mutable_team()->set_team_id("eng");
    team.mutable_team()->set_display_name("Engineering");
    kudos::v1::CreateTeamResponse team_response;
    ASSERT_TRUE(directory_->CreateTeam(Context(admin_).get(), team, &team_response).ok());
    for (const std::string& id : People()) {
      kudos::v1::CreatePersonRequest person;
      person.mutable_person()->set_person_id(id);
      person.mutable_person()->set_display_name("Person " + id);
      person.mutable_person()->set_team_id("eng");
      person.mutable_person()->set_active(true);
      kudos::v1::CreatePersonResponse response;
      ASSERT_TRUE(directory_->CreatePerson(Context(admin_).get(), person, &response).ok());
    }
  }

  static std::vector<std::string> KudosFlags(const std::string& ledger,
                                             std::vector<std::string> extra) {
    std::vector<std::string> flags = {"--ledger=" + ledger, "--ledger_timeout_ms=10000",
                                      "--reconcile_after_ms=300", "--reconcile_backoff_ms=200",
                                      "--reconcile_max_backoff_ms=1000",
                                      "--reconcile_max_attempts=1000", "--redis_timeout_ms=1000"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return flags;
  }

  static std::vector<std::string> Givers() { return {"g0", "g1", "g2", "g3"}; }
  static std::vector<std::string> Recipients() { return {"r0", "r1", "r2"}; }
  static std::vector<std::string> People() {
    std::vector<std::string> all = Givers();
    for (const std::string& r : Recipients()) all.push_back(r);
    return all;
  }

  // Kudos number `n`: giver and recipients rotate, 1..3 points each.
  kudos::v1::SendKudosRequest Request(int n) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id("req-" + std::to_string(n));
    request.add_recipient_ids(Recipients()[n % 3]);
    if (n % 2 == 0) request.add_recipient_ids(Recipients()[(n + 1) % 3]);
    request.set_message("Thanks for the careful review");
    request.add_values("consistent-follow-up");
    request.set_points_per_recipient(1 + n % 3);
    return request;
  }
  std::string GiverOf(int n) { return Givers()[n % 4]; }

  grpc::Status Send(int n, std::chrono::milliseconds timeout, kudos::v1::Kudos* kudos = nullptr) {
    kudos::v1::SendKudosResponse response;
    grpc::Status status =
        stub_->SendKudos(Context(MintToken(kOrg, GiverOf(n)), timeout).get(), Request(n), &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  grpc::Status Get(const std::string& kudos_id, std::chrono::milliseconds timeout) {
    kudos::v1::GetKudosRequest request;
    request.set_kudos_id(kudos_id);
    kudos::v1::GetKudosResponse response;
    return stub_->GetKudos(Context(MintToken(kOrg, "g0"), timeout).get(), request, &response);
  }

  // Every committed kudos of the org, from the feed.
  std::vector<kudos::v1::Kudos> Committed() {
    std::vector<kudos::v1::Kudos> all;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      kudos::v1::ListKudosRequest request;
      request.set_page_size(100);
      request.set_page_token(token);
      kudos::v1::ListKudosResponse response;
      grpc::Status status =
          stub_->ListKudos(Context(MintToken(kOrg, "g0")).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.kudos().begin(), response.kudos().end());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    return all;
  }

  std::vector<ledger::v1::Transfer> Transfers(ledger::v1::AccountType type,
                                              const std::string& person) {
    ledger::v1::ListTransfersRequest request;
    request.mutable_account()->set_type(type);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(500);
    ledger::v1::ListTransfersResponse response;
    grpc::Status status = ledger_stub_->ListTransfers(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.transfers().begin(), response.transfers().end()};
  }

  // Records the reconciler has not finished yet.
  int64_t PendingRecords() {
    common::redis::Endpoint endpoint;
    endpoint.port = redis_.port();
    common::redis::Connection connection(endpoint, 10s);
    absl::StatusOr<common::redis::Reply> count =
        connection.Run({"ZCARD", std::string("kudos:{") + kOrg + "}:pending"});
    return count.ok() ? count->integer : -1;
  }

  harness::RedisServer redis_;
  harness::Service ledger_;
  harness::Service kudos_;
  std::unique_ptr<kudos::v1::KudosService::Stub> stub_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::string admin_;
};

// Calls cut short at many points (client deadlines from 1 ms up, explicit
// cancellations, a ledger stopped mid-call) end, once the reconciler is
// done, with each kudos committed exactly once or not at all: every ledger
// transfer belongs to a committed kudos, once per recipient, and the
// balances are the committed kudos' points. A call whose deadline passed
// holds nothing afterwards: the next calls are served while the ledger is
// still stopped.
TEST_F(KudosAsyncTest, SendKudos_CancelledAtAnyPointCommitsOnceOrNotAtAll) {
  int n = 0;
  // Deadlines from 1 ms to 60 ms: every stage of the write path is cut.
  for (int deadline_ms = 1; deadline_ms <= 60; ++deadline_ms) {
    Send(n++, std::chrono::milliseconds(deadline_ms));
  }
  // Explicit cancellations after 0..20 ms.
  for (int delay_ms = 0; delay_ms <= 20; delay_ms += 2) {
    auto context = Context(MintToken(kOrg, GiverOf(n)), 5s);
    kudos::v1::SendKudosRequest request = Request(n);
    kudos::v1::SendKudosResponse response;
    std::promise<void> ended;
    stub_->async()->SendKudos(context.get(), &request, &response,
                              [&](grpc::Status) { ended.set_value(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    context->TryCancel();
    ended.get_future().wait();
    ++n;
  }
  // The records of the calls cut so far are settled by the reconciler, so
  // what is pending below was begun while the ledger was stopped.
  ASSERT_TRUE(Eventually([&] { return PendingRecords() == 0; }, 60s)) << PendingRecords();
  // The ledger stopped mid-call: rounds of 8 concurrent sends, deadlines
  // from 300 ms up, until a round has begun records that then wait on the
  // stopped ledger (the deadline only has to outlast the steps before the
  // ledger call, however loaded the machine).
  pid_t ledger_pid = ServicePid(ledger_.address());
  ASSERT_GT(ledger_pid, 0);
  {
    Paused paused(ledger_pid);
    ASSERT_TRUE(paused.stopped());
    for (std::chrono::milliseconds deadline : {300ms, 1000ms, 3000ms, 10000ms}) {
      std::vector<std::thread> senders;
      std::vector<grpc::Status> statuses(8);
      for (int i = 0; i < 8; ++i) {
        senders.emplace_back([&, i, k = n + i] { statuses[i] = Send(k, deadline); });
      }
      for (std::thread& sender : senders) sender.join();
      n += 8;
      for (const grpc::Status& status : statuses) {
        EXPECT_TRUE(FailedOnTime(status)) << status.error_code() << " " << status.error_message();
      }
      if (PendingRecords() > 0) break;
    }
    // The sends cut while the ledger was stopped were begun: their records
    // wait for the reconciler (the outcome at the ledger is unknown).
    EXPECT_GT(PendingRecords(), 0);
    // The calls that waited on the stopped ledger hold no thread now: reads
    // and the health check are served while it is still stopped.
    EXPECT_EQ(HealthStatus(kudos_.address(), 5s), "SERVING");
    grpc::Status read = Get("k0000000000000000000000000", 5s);
    EXPECT_EQ(read.error_code(), grpc::StatusCode::NOT_FOUND) << read.error_message();
  }
  const int sent = n;

  // The reconciler settles every record left PENDING.
  ASSERT_TRUE(Eventually([&] { return PendingRecords() == 0; }, 60s)) << PendingRecords();

  std::map<std::string, kudos::v1::Kudos> committed;
  for (const kudos::v1::Kudos& kudos : Committed()) {
    EXPECT_TRUE(committed.emplace(kudos.kudos_id(), kudos).second) << "listed twice: " << kudos.kudos_id();
  }
  EXPECT_LE(committed.size(), static_cast<size_t>(sent));
  std::cout << "committed before the retries: " << committed.size() << " of " << sent << "\n";
  // Expected balances from the committed kudos alone.
  std::map<std::string, int64_t> earned, given;
  std::set<std::string> expected_transfers;
  for (const auto& [id, kudos] : committed) {
    for (const std::string& recipient : kudos.recipient_ids()) {
      earned[recipient] += kudos.points_per_recipient();
      given[kudos.giver_id()] += kudos.points_per_recipient();
      expected_transfers.insert(id + ":" + recipient);
    }
  }
  std::set<std::string> seen_transfers;
  for (const std::string& recipient : Recipients()) {
    int64_t total = 0;
    for (const ledger::v1::Transfer& transfer :
         Transfers(ledger::v1::ACCOUNT_TYPE_EARNED, recipient)) {
      EXPECT_TRUE(committed.count(transfer.reference()))
          << "points moved for kudos " << transfer.reference() << ", which is not committed";
      EXPECT_TRUE(seen_transfers.insert(transfer.transfer_id()).second)
          << "applied twice: " << transfer.transfer_id();
      total += transfer.amount();
    }
    EXPECT_EQ(total, earned[recipient]) << recipient;
  }
  EXPECT_EQ(seen_transfers, expected_transfers);
  for (const std::string& giver : Givers()) {
    int64_t debited = 0;
    for (const ledger::v1::Transfer& transfer :
         Transfers(ledger::v1::ACCOUNT_TYPE_ALLOWANCE, giver)) {
      if (transfer.debit_account().person_id() == giver) debited += transfer.amount();
    }
    EXPECT_EQ(debited, given[giver]) << "never charged without a kudos: " << giver;
  }
  ledger::v1::VerifyLedgerResponse verified;
  grpc::Status verify =
      ledger_stub_->VerifyLedger(Context(admin_).get(), ledger::v1::VerifyLedgerRequest(), &verified);
  ASSERT_TRUE(verify.ok()) << verify.error_message();
  EXPECT_TRUE(verified.consistent()) << verified.DebugString();

  // A retry of every request: a committed kudos comes back as it is, and
  // nothing is charged twice.
  for (int k = 0; k < sent; ++k) {
    kudos::v1::Kudos kudos;
    grpc::Status status = Send(k, 10s, &kudos);
    ASSERT_TRUE(status.ok()) << k << ": " << status.error_message();
  }
  for (const std::string& recipient : Recipients()) {
    std::set<std::string> ids;
    for (const ledger::v1::Transfer& transfer :
         Transfers(ledger::v1::ACCOUNT_TYPE_EARNED, recipient)) {
      EXPECT_TRUE(ids.insert(transfer.transfer_id()).second) << transfer.transfer_id();
    }
  }
  EXPECT_EQ(Committed().size(), static_cast<size_t>(sent));
}

// A Redis stall (SIGSTOP for at least 3 s): SendKudos and GetKudos end by
// the client's deadline or the service's Redis bound with DEADLINE_EXCEEDED
// or UNAVAILABLE, the health check keeps answering SERVING meanwhile (no
// handler holds a thread), and on SIGCONT the same process serves again.
TEST_F(KudosAsyncTest, RedisStall_CallsFailOnTimeHealthKeepsAnsweringAndAllRecoversOnSigcont) {
  kudos::v1::Kudos before;
  ASSERT_TRUE(Send(0, 5s, &before).ok());
  pid_t pid = RedisPid(redis_);
  ASSERT_GT(pid, 0);

  constexpr int kCalls = 16;
  std::vector<grpc::Status> statuses(kCalls);
  std::atomic<int> finished{0};
  std::vector<std::string> health;
  {
    Paused paused(pid);
    ASSERT_TRUE(paused.stopped());
    auto stalled_at = std::chrono::steady_clock::now();
    std::vector<std::thread> callers;
    for (int i = 0; i < kCalls; ++i) {
      callers.emplace_back([&, i] {
        statuses[i] = i % 2 == 0 ? Send(100 + i, 1500ms) : Get(before.kudos_id(), 1500ms);
        finished.fetch_add(1);
      });
    }
    // Health while the calls wait on Redis, until they all ended and the
    // stall lasted 3 s (bounded: 60 checks).
    for (int round = 0; round < 60; ++round) {
      health.push_back(HealthStatus(kudos_.address(), 5s));
      bool long_enough = std::chrono::steady_clock::now() - stalled_at >= 3s;
      if (finished.load() == kCalls && long_enough && health.size() >= 5) break;
      std::this_thread::sleep_for(200ms);
    }
    for (std::thread& caller : callers) caller.join();
  }
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(FailedOnTime(statuses[i]))
        << "call " << i << ": " << statuses[i].error_code() << " " << statuses[i].error_message();
  }
  ASSERT_GE(health.size(), 5u);
  for (size_t i = 0; i < health.size(); ++i) EXPECT_EQ(health[i], "SERVING") << "check " << i;

  // SIGCONT: the same process serves again; a retry of a send cut by the
  // stall commits it once.
  ASSERT_TRUE(Eventually([&] { return Get(before.kudos_id(), 5s).ok(); }));
  kudos::v1::Kudos after;
  ASSERT_TRUE(Eventually([&] { return Send(100, 5s, &after).ok(); }));
  kudos::v1::Kudos again;
  ASSERT_TRUE(Send(100, 5s, &again).ok());
  EXPECT_EQ(again.kudos_id(), after.kudos_id());
}

// The bound on unary calls in flight (--max_calls_in_flight; callback calls
// hold no thread, so the thread quota does not bound them). The service's
// own bounds on a call's time are far off, and the reconciler leaves the
// records alone: a held call is held until the ledger runs again.
class KudosBoundedTest : public KudosAsyncTest {
 protected:
  static constexpr int kBound = 2;
  KudosBoundedTest()
      : KudosAsyncTest(std::vector<std::string>{
            "--max_calls_in_flight=" + std::to_string(kBound), "--call_timeout_ms=120000",
            "--ledger_timeout_ms=120000", "--redis_timeout_ms=60000",
            "--reconcile_after_ms=600000"}) {}
};

// With the ledger stopped, three times the bound of sends arrive at once:
// exactly the bound is held (waiting on the ledger), the rest are refused
// at once with RESOURCE_EXHAUSTED, and so is any further call while the
// held ones wait; once the ledger runs again the held sends complete and
// calls are served again.
TEST_F(KudosBoundedTest, CallsPastTheInFlightBoundAreRefusedWithResourceExhausted) {
  constexpr int kCalls = 3 * kBound;
  const std::string refusal =
      "kudos: 2 calls in flight, the most one replica serves at once; retry shortly";
  pid_t ledger_pid = ServicePid(ledger_.address());
  ASSERT_GT(ledger_pid, 0);
  std::vector<grpc::Status> statuses(kCalls);
  std::atomic<int> refused{0};
  std::vector<std::thread> senders;
  grpc::Status probe;
  {
    Paused paused(ledger_pid);
    ASSERT_TRUE(paused.stopped());
    for (int i = 0; i < kCalls; ++i) {
      senders.emplace_back([&, i] {
        statuses[i] = Send(i, 60s);
        if (statuses[i].error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
      });
    }
    // The calls past the bound are answered while the ledger is stopped.
    EXPECT_TRUE(Eventually([&] { return refused.load() == kCalls - kBound; }, 60s))
        << refused.load();
    // The bound is held: one more call is refused at once.
    probe = Get("k0000000000000000000000000", 5s);
  }
  for (std::thread& sender : senders) sender.join();
  EXPECT_EQ(probe.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << probe.error_message();
  EXPECT_EQ(probe.error_message(), refusal);
  int served = 0;
  for (int i = 0; i < kCalls; ++i) {
    if (statuses[i].ok()) {
      ++served;
      continue;
    }
    EXPECT_EQ(statuses[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << i << ": " << statuses[i].error_message();
    EXPECT_EQ(statuses[i].error_message(), refusal) << i;
  }
  EXPECT_EQ(served, kBound);
  EXPECT_EQ(refused.load(), kCalls - kBound);
  grpc::Status served_after = Get("k0000000000000000000000000", 5s);
  EXPECT_EQ(served_after.error_code(), grpc::StatusCode::NOT_FOUND) << served_after.error_message();
}

}  // namespace
