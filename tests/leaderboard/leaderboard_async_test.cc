// Issue 13: the leaderboard's RPCs on the gRPC callback API over the
// asynchronous Redis client. A real redis-server and the real
// leaderboard_server over gRPC; the stall is a SIGSTOP of redis-server.
// No timed assertions: deadlines only bound failures.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/redis/redis_client.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/blocking_worker.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/stall.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"

namespace {

namespace v1 = leaderboard::v1;
using namespace std::chrono_literals;
using harness::Eventually;

v1::Board AllTimePoints() {
  v1::Board board;
  board.set_metric(v1::METRIC_POINTS_RECEIVED);
  board.set_window(v1::WINDOW_ALL_TIME);
  board.set_scope(v1::SCOPE_ORG);
  return board;
}

using harness::FailedOnTime;
using harness::HealthStatus;
using harness::Paused;
using harness::RedisPid;
using harness::ServicePid;

class LeaderboardAsyncTest : public ::testing::Test {
 protected:
  // GRPC_MAX_THREADS=4: the fewest sync-server threads a server may have. A
  // handler that blocked a thread on Redis would take them all during a
  // stall, and the health check (a sync service) would find none.
  LeaderboardAsyncTest()
      : server_(LEADERBOARD_BINARY, redis_.address(), {"--redis_timeout_ms=1000"},
                {{"GRPC_MAX_THREADS", "4"}}),
        writer_(redis_.address(), org_) {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    member_ = harness::MintToken(org_, "p1", {"member"});
  }

  grpc::Status Get(v1::GetLeaderboardResponse* response, std::chrono::milliseconds timeout) {
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = AllTimePoints();
    auto context = harness::Context(member_, timeout);
    return stub_->GetLeaderboard(context.get(), request, response);
  }

  grpc::Status Rank(v1::GetRankResponse* response, std::chrono::milliseconds timeout) {
    v1::GetRankRequest request;
    *request.mutable_board() = AllTimePoints();
    request.set_subject_id("p1");
    request.set_neighbors(2);
    auto context = harness::Context(member_, timeout);
    return stub_->GetRank(context.get(), request, response);
  }

  int64_t Total() {
    v1::GetLeaderboardResponse response;
    return Get(&response, 5s).ok() ? response.total_entries() : -1;
  }

  std::string org_ = "org-" + std::to_string(harness::FreePort());
  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string member_;
};

// A Redis stall (SIGSTOP for at least 3 s): board reads end by the
// service's own Redis deadline (--redis_timeout_ms, well before the client's
// 30 s) with DEADLINE_EXCEEDED or UNAVAILABLE, the health check keeps
// answering SERVING meanwhile (no handler holds a thread), and once Redis
// runs again the same server process answers without a restart.
// The reads start once the page cache's ttl has passed since the stall
// began: a first page read before the stall may be served from the cache
// for up to the ttl (100 ms by default, at most 200: --board_page_cache_ms),
// and only for that long; every read made after it needs Redis.
TEST_F(LeaderboardAsyncTest,
       RedisStall_BoardReadsFailOnTimeHealthKeepsAnsweringAndAllRecoversOnSigcont) {
  writer_.Kudos(lbtest::PersonEvent("p1", "Name p1", "t1"));
  writer_.Ledger(lbtest::TransfersEvent(org_, "K1", "T1", ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                        {{"p1", "t1"}}, {}, 7, absl::Now()));
  ASSERT_TRUE(Eventually([&] { return Total() == 1; }));
  pid_t pid = RedisPid(redis_);
  ASSERT_GT(pid, 0);

  constexpr int kCalls = 16;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::chrono::milliseconds> took(kCalls);
  std::atomic<int> finished{0};
  std::vector<std::string> health;
  {
    Paused paused(pid);
    ASSERT_TRUE(paused.stopped()) << "redis-server still running 30 s after SIGSTOP";
    auto stalled_at = std::chrono::steady_clock::now();
    // Past the longest page cache ttl (200 ms): no page read before the stall is fresh.
    std::this_thread::sleep_for(250ms);
    std::vector<std::thread> callers;
    for (int i = 0; i < kCalls; ++i) {
      callers.emplace_back([&, i] {
        auto start = std::chrono::steady_clock::now();
        if (i % 2 == 0) {
          v1::GetLeaderboardResponse response;
          statuses[i] = Get(&response, 30s);
        } else {
          v1::GetRankResponse response;
          statuses[i] = Rank(&response, 30s);
        }
        took[i] = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
        finished.fetch_add(1);
      });
    }
    // Health while the reads wait on Redis, until they all ended and the
    // stall lasted 3 s (bounded: 60 checks).
    for (int round = 0; round < 60; ++round) {
      health.push_back(HealthStatus(server_.address(), 5s));
      bool long_enough = std::chrono::steady_clock::now() - stalled_at >= 3s;
      if (finished.load() == kCalls && long_enough && health.size() >= 5) break;
      std::this_thread::sleep_for(200ms);
    }
    for (std::thread& caller : callers) caller.join();
  }
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(FailedOnTime(statuses[i]))
        << "call " << i << ": " << statuses[i].error_code() << " " << statuses[i].error_message();
    // The service's own deadline, not the client's 30 s, ended it.
    EXPECT_LT(took[i], 15s) << "call " << i;
  }
  ASSERT_GE(health.size(), 5u);
  for (size_t i = 0; i < health.size(); ++i) EXPECT_EQ(health[i], "SERVING") << "check " << i;

  // SIGCONT: the same process answers again, with the board intact.
  ASSERT_TRUE(Eventually([&] { return Total() == 1; }));
  v1::GetRankResponse rank;
  ASSERT_TRUE(Rank(&rank, 5s).ok());
  EXPECT_TRUE(rank.ranked());
  EXPECT_EQ(rank.entry().score(), 7);
  EXPECT_EQ(rank.entry().display_name(), "Name p1");
}

// The worker that runs long work off the callback threads (RebuildProjections)
// is bounded: with its threads busy and its queue full, a task is refused
// with RESOURCE_EXHAUSTED and not run; the accepted ones all run.
TEST(BlockingWorkerTest, TasksPastTheThreadsAndTheQueueAreRefusedAndTheAcceptedOnesAllRun) {
  leaderboard::BlockingWorker worker(/*threads=*/1, /*max_queued=*/1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> ran{0};
  std::promise<void> first_started;
  ASSERT_TRUE(worker
                  .Submit([&] {
                    first_started.set_value();
                    released.wait();
                    ran.fetch_add(1);
                  })
                  .ok());
  first_started.get_future().wait();  // the thread is busy: the next one queues
  ASSERT_TRUE(worker.Submit([&] { ran.fetch_add(1); }).ok());
  absl::Status refused = worker.Submit([&] { ran.fetch_add(100); });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  release.set_value();
  ASSERT_TRUE(Eventually([&] { return ran.load() >= 2; }));
  worker.Stop();
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace
