// Issue 13: GetLeaderboard's first pages cached per replica
// (leaderboard::Watchers::pages(), common/grpc/read_cache.h). Library level:
// the consumer's Touched (any board of the org) and a rebuild's TouchOrg drop
// the org's cached pages and no other org's; the flag's ttl never exceeds the
// watch's coalescing. Service level (real redis-server, real
// leaderboard_server over gRPC): a change the consumer applies becomes
// visible to a reader that keeps reading the cached page, and many
// concurrent readers of one page all get it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/redis/redis_client.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/leaderboard_watch.h"
#include "tests/harness/eventually.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"

namespace {

namespace v1 = leaderboard::v1;
using namespace std::chrono_literals;
using harness::Eventually;
using Clock = std::chrono::steady_clock;

// Reads `key` of `org` through the page cache at `now`; a fetch answers at
// once with a page whose total counts the fetches so far.
int64_t CachedTotal(leaderboard::Watchers& watchers, const std::string& org,
                    const std::string& key, Clock::time_point now, int64_t& fetches) {
  int64_t total = -1;
  watchers.pages().Get(
      org, key, now, now + 1s,
      [&fetches](leaderboard::PageCache::Fetched fetched) {
        leaderboard::CachedPage page;
        page.page.total = ++fetches;
        std::move(fetched)(std::move(page));
      },
      [&total](absl::StatusOr<leaderboard::PageCache::Value> got) {
        if (got.ok()) total = (*got)->page.total;
      });
  return total;
}

TEST(BoardPageCacheTest, TouchedAndTouchOrgDropTheOrgsCachedPagesAndNoOtherOrgs) {
  harness::RedisServer redis;
  common::redis::PoolOptions pool_options;
  pool_options.endpoint = *common::redis::ParseEndpoint(redis.address());
  pool_options.size = 1;
  common::redis::Pool pool(pool_options);
  leaderboard::Store store(pool);
  common::grpc_util::ReadCacheOptions cache;
  cache.ttl = 200ms;
  leaderboard::Watchers watchers(store, leaderboard::WatchLimits{}, 200ms, cache);
  const Clock::time_point now = Clock::now();
  int64_t fetches = 0;

  EXPECT_EQ(CachedTotal(watchers, "a", "lb:{a}:board|people|10", now, fetches), 1);
  EXPECT_EQ(CachedTotal(watchers, "a", "lb:{a}:board|people|10", now, fetches), 1);  // cached
  EXPECT_EQ(CachedTotal(watchers, "b", "lb:{b}:board|people|10", now, fetches), 2);

  // The consumer changed another key of org a (a derived board reads keys
  // no event names): a's page is read again, b's stays.
  watchers.Touched("a", {"lb:{a}:points_received:year:2026:org"});
  EXPECT_EQ(CachedTotal(watchers, "a", "lb:{a}:board|people|10", now, fetches), 3);
  EXPECT_EQ(CachedTotal(watchers, "b", "lb:{b}:board|people|10", now, fetches), 2);

  // A rebuild of b.
  watchers.TouchOrg("b");
  EXPECT_EQ(CachedTotal(watchers, "b", "lb:{b}:board|people|10", now, fetches), 4);
  EXPECT_EQ(CachedTotal(watchers, "a", "lb:{a}:board|people|10", now, fetches), 3);
}

TEST(BoardPageCacheTest, TheDefaultKeepsAPageForATenthOfASecondAtMostTheWatchsCoalescing) {
  common::grpc_util::ReadCacheOptions options = leaderboard::PageCacheOptionsFromFlags();
  // Default: a page is served for 100 ms after its read started (a reader is
  // at most that far behind, and a Redis stall fails reads made after it on
  // time: leaderboard_async_test); never longer than a watcher's coalescing.
  EXPECT_EQ(options.ttl, std::chrono::milliseconds(leaderboard::kDefaultPageCacheMs));
  EXPECT_EQ(options.ttl, 100ms);
  EXPECT_LE(options.ttl, 200ms);
  EXPECT_GE(options.max_keys, 1u);
}

v1::Board AllTimePoints() {
  v1::Board board;
  board.set_metric(v1::METRIC_POINTS_RECEIVED);
  board.set_window(v1::WINDOW_ALL_TIME);
  board.set_scope(v1::SCOPE_ORG);
  return board;
}

class PageCacheServiceTest : public ::testing::Test {
 protected:
  PageCacheServiceTest()
      : server_(LEADERBOARD_BINARY, redis_.address(), {"--board_page_cache_ms=200"}),
        writer_(redis_.address(), org_) {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    member_ = harness::MintToken(org_, "p1", {"member"});
  }

  // p1's score on the first page, -1 when absent or on error.
  int64_t ScoreOfP1() {
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = AllTimePoints();
    v1::GetLeaderboardResponse response;
    auto context = harness::Context(member_, 5s);
    if (!stub_->GetLeaderboard(context.get(), request, &response).ok()) return -1;
    for (const auto& entry : response.entries()) {
      if (entry.subject_id() == "p1") return entry.score();
    }
    return -1;
  }

  void Give(const std::string& transfer, int64_t points) {
    writer_.Ledger(lbtest::TransfersEvent(org_, transfer, transfer,
                                          ledger::v1::TRANSFER_KIND_KUDOS, "g", {{"p1", "t1"}},
                                          {}, points, absl::Now()));
  }

  std::string org_ = "org-" + std::to_string(harness::FreePort());
  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string member_;
};

TEST_F(PageCacheServiceTest, AChangeTheConsumerAppliesBecomesVisibleToAReaderOfTheCachedPage) {
  writer_.Kudos(lbtest::PersonEvent("p1", "Name p1", "t1"));
  Give("K1", 7);
  ASSERT_TRUE(Eventually([&] { return ScoreOfP1() == 7; }));
  // The page is cached now; each change must show through it.
  for (int round = 1; round <= 5; ++round) {
    Give("K" + std::to_string(round + 1), 1);
    const int64_t expected = 7 + round;
    EXPECT_TRUE(Eventually([&] { return ScoreOfP1() == expected; })) << "round " << round;
  }
}

// Another replica's consumer does not tell this one (no Touched here): a
// board written behind this replica's back (as another replica's consumer
// writes it) shows on the cached first page once the ttl (200 ms in this
// fixture) has passed since the change, never later.
TEST_F(PageCacheServiceTest, AChangeThisReplicaIsNotToldOfShowsOnceTheTtlHasPassed) {
  writer_.Kudos(lbtest::PersonEvent("p1", "Name p1", "t1"));
  Give("K1", 7);
  ASSERT_TRUE(Eventually([&] { return ScoreOfP1() == 7; }));
  ASSERT_EQ(ScoreOfP1(), 7);  // cached now
  absl::StatusOr<leaderboard::ResolvedBoard> board = leaderboard::ResolveBoard(
      org_, AllTimePoints(), leaderboard::CalendarFromSettings(leaderboard::DefaultSettings()),
      absl::Now());
  ASSERT_TRUE(board.ok()) << board.status();
  ASSERT_TRUE(writer_.pool().Run({"ZINCRBY", board->key, "5", "p1"}).ok());
  // Past the ttl since the write: whatever was cached was read before it.
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(ScoreOfP1(), 12);
}

TEST_F(PageCacheServiceTest, ManyConcurrentReadersOfOnePageAllGetItsEntries) {
  writer_.Kudos(lbtest::PersonEvent("p1", "Name p1", "t1"));
  Give("K1", 3);
  ASSERT_TRUE(Eventually([&] { return ScoreOfP1() == 3; }));
  constexpr int kThreads = 8;
  constexpr int kReadsEach = 50;
  std::atomic<int> right{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < kReadsEach; ++i) {
        if (ScoreOfP1() == 3) right.fetch_add(1);
      }
    });
  }
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(right.load(), kThreads * kReadsEach);
}

}  // namespace
