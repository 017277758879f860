// Integration tests: a real redis-server, the real leaderboard_server over
// gRPC, and events XADDed exactly as the ledger and kudos services write
// them. Every wait polls the API with a bounded deadline.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/name_cache.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"
#include "tests/harness/eventually.h"

namespace {

using leaderboard::RankEntries;
using leaderboard::RankedEntry;
namespace v1 = leaderboard::v1;
using lbtest::Recipient;

using harness::Eventually;

v1::Board MakeBoard(v1::Metric metric, v1::Window window, v1::Scope scope,
                    const std::string& scope_id = "", const std::string& period = "") {
  v1::Board board;
  board.set_metric(metric);
  board.set_window(window);
  board.set_scope(scope);
  board.set_scope_id(scope_id);
  board.set_period(period);
  return board;
}

v1::Board AllTimePoints() {
  return MakeBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG);
}

class LeaderboardIntegrationTest : public ::testing::Test {
 protected:
  LeaderboardIntegrationTest()
      : server_(LEADERBOARD_BINARY, redis_.address(),
                {"--claim_min_idle_ms=200", "--rebuild_min_interval_ms=0"}),
        writer_(redis_.address(), org_) {
    Connect();
    member_ = harness::MintToken(org_, "p00", {"member"});
    admin_ = harness::MintToken(org_, "boss", {"admin"});
  }

  void Connect() {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Get(const v1::Board& board, int page_size, const std::string& token,
                   v1::GetLeaderboardResponse* response, const std::string& auth = "") {
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = board;
    request.set_page_size(page_size);
    request.set_page_token(token);
    auto context = harness::Context(auth.empty() ? member_ : auth);
    return stub_->GetLeaderboard(context.get(), request, response);
  }

  int64_t Total(const v1::Board& board) {
    v1::GetLeaderboardResponse response;
    if (!Get(board, 1, "", &response).ok()) return -1;
    return response.total_entries();
  }

  int64_t ScoreOf(const v1::Board& board, const std::string& subject) {
    v1::GetRankRequest request;
    *request.mutable_board() = board;
    request.set_subject_id(subject);
    v1::GetRankResponse response;
    auto context = harness::Context(member_);
    if (!stub_->GetRank(context.get(), request, &response).ok() || !response.ranked()) return -1;
    return response.entry().score();
  }

  // Every entry, following next tokens (forward) or prev tokens from the end.
  std::vector<v1::LeaderboardEntry> Forward(const v1::Board& board, int page_size,
                                            std::string* last_prev = nullptr) {
    std::vector<v1::LeaderboardEntry> all;
    std::string token;
    for (int guard = 0; guard < 1000; ++guard) {
      v1::GetLeaderboardResponse response;
      grpc::Status status = Get(board, page_size, token, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_LE(response.entries_size(), page_size);
      all.insert(all.end(), response.entries().begin(), response.entries().end());
      if (last_prev != nullptr) *last_prev = response.prev_page_token();
      if (response.next_page_token().empty()) break;
      token = response.next_page_token();
    }
    return all;
  }

  void Person(const std::string& id, const std::string& team, const std::string& manager = "",
              const std::string& zone = "") {
    writer_.Kudos(lbtest::PersonEvent(id, "Name " + id, team, manager, zone));
  }

  // Points for one person through the ledger stream.
  void Points(const std::string& person, const std::string& team, int64_t amount,
              absl::Time t = absl::Now(), std::vector<std::string> values = {}) {
    const int n = ++seq_;  // one number for both ids (unsequenced otherwise)
    writer_.Ledger(lbtest::TransfersEvent(org_, "K" + std::to_string(n), "T" + std::to_string(n),
                                          ledger::v1::TRANSFER_KIND_KUDOS, "giver",
                                          {{person, team}}, values, amount, t));
  }

  std::string Send(const std::string& giver, const std::string& giver_team,
                   const std::vector<Recipient>& recipients, std::vector<std::string> values,
                   int64_t points, absl::Time t = absl::Now()) {
    std::string id = "K" + std::to_string(++seq_);
    writer_.Kudos(lbtest::SentEvent(org_, id, giver, giver_team, recipients, values, points, t));
    writer_.Ledger(lbtest::TransfersEvent(org_, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
                                          recipients, values, points, t));
    return id;
  }

  std::string org_ = "org-" + std::to_string(harness::FreePort());
  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string member_;
  std::string admin_;
  int seq_ = 0;
};

std::vector<RankedEntry> Strip(const std::vector<v1::LeaderboardEntry>& entries) {
  std::vector<RankedEntry> out;
  for (const auto& e : entries) out.push_back(RankedEntry{e.rank(), e.subject_id(), e.score()});
  return out;
}

// 25 people with many ties, paged forward and backward with odd page sizes.
TEST_F(LeaderboardIntegrationTest, PagingWithTiesNeverSkipsOrRepeats) {
  std::vector<std::pair<std::string, int64_t>> model;
  for (int i = 0; i < 25; ++i) {
    std::string id = absl::StrCat("p", i < 10 ? "0" : "", i);
    Person(id, "t1");
    int64_t score = 1 + (i * 7) % 5;  // five distinct scores, five people each
    Points(id, "t1", score);
    model.push_back({id, score});
  }
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 25; }));
  std::vector<RankedEntry> want = RankEntries(model);
  EXPECT_EQ(want[0].rank, 1);
  EXPECT_EQ(want[5].rank, 6);
  for (int page_size : {1, 3, 4, 7, 25, 100}) {
    std::string prev;
    std::vector<v1::LeaderboardEntry> forward = Forward(AllTimePoints(), page_size, &prev);
    EXPECT_EQ(Strip(forward), want) << "page_size " << page_size;
    for (const auto& e : forward) EXPECT_EQ(e.display_name(), "Name " + e.subject_id());
    // Backward from the last page: prev tokens cover everything before it.
    std::vector<v1::LeaderboardEntry> backward;
    int last_page = static_cast<int>(want.size() - 1) / page_size * page_size;
    backward.assign(forward.begin() + last_page, forward.end());
    std::string token = prev;
    while (!token.empty()) {
      v1::GetLeaderboardResponse response;
      ASSERT_TRUE(Get(AllTimePoints(), page_size, token, &response).ok());
      ASSERT_EQ(response.entries_size(), page_size);
      backward.insert(backward.begin(), response.entries().begin(), response.entries().end());
      token = response.prev_page_token();
      ASSERT_FALSE(response.next_page_token().empty());
    }
    EXPECT_EQ(Strip(backward), want) << "backward, page_size " << page_size;
  }
  // The period of the all-time board has no bounds; a month board has.
  v1::GetLeaderboardResponse response;
  ASSERT_TRUE(Get(AllTimePoints(), 5, "", &response).ok());
  EXPECT_EQ(response.period(), "all");
  EXPECT_EQ(response.total_entries(), 25);
  EXPECT_TRUE(response.prev_page_token().empty());
  ASSERT_TRUE(Get(MakeBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_MONTH, v1::SCOPE_ORG), 5, "",
                  &response)
                  .ok());
  EXPECT_LT(response.period_start().seconds(), absl::ToUnixSeconds(absl::Now()));
  EXPECT_GT(response.period_end().seconds(), absl::ToUnixSeconds(absl::Now()));
  EXPECT_EQ(response.total_entries(), 25);
}

// Keyset tokens: entries whose score did not change are seen exactly once
// even when others jump over the cursor mid-paging.
TEST_F(LeaderboardIntegrationTest, PagingIsStableWhileScoresChange) {
  std::vector<std::pair<std::string, int64_t>> model;
  for (int i = 0; i < 20; ++i) {
    std::string id = absl::StrCat("q", i < 10 ? "0" : "", i);
    Points(id, "", 1 + i % 4);
  }
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 20; }));
  v1::GetLeaderboardResponse first;
  ASSERT_TRUE(Get(AllTimePoints(), 6, "", &first).ok());
  std::multiset<std::string> seen;
  for (const auto& e : first.entries()) seen.insert(e.subject_id());
  // Someone on a later page jumps to the top; someone on this page too.
  std::string jumper = "q00";  // score 1: last page
  std::string page_one = first.entries(2).subject_id();
  Points(jumper, "", 100);
  Points(page_one, "", 200);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), jumper) == 101; }));
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), page_one) > 200; }));
  std::string token = first.next_page_token();
  while (!token.empty()) {
    v1::GetLeaderboardResponse response;
    ASSERT_TRUE(Get(AllTimePoints(), 6, token, &response).ok());
    for (const auto& e : response.entries()) seen.insert(e.subject_id());
    token = response.next_page_token();
  }
  for (int i = 0; i < 20; ++i) {
    std::string id = absl::StrCat("q", i < 10 ? "0" : "", i);
    if (id == jumper || id == page_one) continue;
    EXPECT_EQ(seen.count(id), 1u) << id;
  }
}

TEST_F(LeaderboardIntegrationTest, RejectsBadRequests) {
  Points("p01", "t1", 3);
  Points("p02", "t1", 2);
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 2; }));
  v1::GetLeaderboardResponse response;
  EXPECT_EQ(Get(AllTimePoints(), 101, "", &response).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Get(AllTimePoints(), -1, "", &response).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Get(AllTimePoints(), 5, "garbage", &response).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Get(MakeBoard(v1::METRIC_UNSPECIFIED, v1::WINDOW_DAY, v1::SCOPE_ORG), 5, "", &response)
                .error_code(),
            grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Get(MakeBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_WEEK, v1::SCOPE_ORG, "", "2026-11"),
                5, "", &response)
                .error_code(),
            grpc::INVALID_ARGUMENT);
  // A token from one board is refused on another.
  ASSERT_TRUE(Get(AllTimePoints(), 1, "", &response).ok());
  ASSERT_FALSE(response.next_page_token().empty());
  v1::GetLeaderboardResponse other;
  EXPECT_EQ(Get(MakeBoard(v1::METRIC_KUDOS_GIVEN, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG), 1,
                response.next_page_token(), &other)
                .error_code(),
            grpc::INVALID_ARGUMENT);
  // Default page size is 10; unauthenticated callers are refused.
  ASSERT_TRUE(Get(AllTimePoints(), 0, "", &response).ok());
  EXPECT_EQ(response.entries_size(), 2);
  v1::GetLeaderboardRequest request;
  *request.mutable_board() = AllTimePoints();
  grpc::ClientContext anonymous;
  EXPECT_EQ(stub_->GetLeaderboard(&anonymous, request, &response).error_code(),
            grpc::UNAUTHENTICATED);
  // A screen may read boards.
  EXPECT_TRUE(Get(AllTimePoints(), 5, "", &response, harness::MintToken(org_, "tv", {"screen"})).ok());
  // Another org's token sees another org's (empty) board.
  ASSERT_TRUE(Get(AllTimePoints(), 5, "", &response, harness::MintToken("other", "x", {"member"})).ok());
  EXPECT_EQ(response.total_entries(), 0);
  v1::GetRankRequest rank;
  *rank.mutable_board() = AllTimePoints();
  rank.set_subject_id("p01");
  rank.set_neighbors(51);
  v1::GetRankResponse rank_response;
  auto context = harness::Context(member_);
  EXPECT_EQ(stub_->GetRank(context.get(), rank, &rank_response).error_code(),
            grpc::INVALID_ARGUMENT);
}

TEST_F(LeaderboardIntegrationTest, GetRankAtTheEdges) {
  // Scores: a 9, b 7, c 7, d 7, e 5, f 1.
  std::vector<std::pair<std::string, int64_t>> model = {{"a", 9}, {"b", 7}, {"c", 7},
                                                        {"d", 7}, {"e", 5}, {"f", 1}};
  for (auto& [id, score] : model) Points(id, "t1", score);
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 6; }));
  auto rank = [&](const std::string& subject, int neighbors) {
    v1::GetRankRequest request;
    *request.mutable_board() = AllTimePoints();
    request.set_subject_id(subject);
    request.set_neighbors(neighbors);
    v1::GetRankResponse response;
    auto context = harness::Context(member_);
    EXPECT_TRUE(stub_->GetRank(context.get(), request, &response).ok());
    return response;
  };
  auto ids = [](const auto& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.subject_id());
    return out;
  };
  v1::GetRankResponse top = rank("a", 2);
  EXPECT_TRUE(top.ranked());
  EXPECT_EQ(top.entry().rank(), 1);
  EXPECT_TRUE(top.above().empty());
  EXPECT_EQ(ids(top.below()), (std::vector<std::string>{"b", "c"}));
  EXPECT_DOUBLE_EQ(top.percentile(), 100.0 * 5 / 6);
  v1::GetRankResponse tied = rank("c", 2);
  EXPECT_EQ(tied.entry().rank(), 2);
  EXPECT_EQ(ids(tied.above()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ids(tied.below()), (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(tied.below()[0].rank(), 2);
  EXPECT_EQ(tied.below()[1].rank(), 5);
  EXPECT_DOUBLE_EQ(tied.percentile(), 100.0 * 2 / 6);
  v1::GetRankResponse last = rank("f", 3);
  EXPECT_EQ(last.entry().rank(), 6);
  EXPECT_EQ(ids(last.above()), (std::vector<std::string>{"c", "d", "e"}));
  EXPECT_TRUE(last.below().empty());
  EXPECT_DOUBLE_EQ(last.percentile(), 0);
  v1::GetRankResponse none = rank("nobody", 3);
  EXPECT_FALSE(none.ranked());
  EXPECT_EQ(none.entry().rank(), 0);
  EXPECT_EQ(none.total_entries(), 6);
  EXPECT_TRUE(none.above().empty());
  v1::GetRankResponse zero = rank("d", 0);
  EXPECT_TRUE(zero.above().empty());
  EXPECT_TRUE(zero.below().empty());
  EXPECT_EQ(zero.entry().rank(), 2);
}

TEST_F(LeaderboardIntegrationTest, WatchSendsSnapshotsQuicklyAndCoalesced) {
  Person("w1", "t1");
  Points("w1", "t1", 5);
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 1; }));
  v1::WatchLeaderboardRequest request;
  *request.mutable_board() = AllTimePoints();
  request.set_top_n(3);
  auto context = harness::Context(member_, std::chrono::seconds(30));
  auto reader = stub_->WatchLeaderboard(context.get(), request);
  v1::WatchLeaderboardResponse snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));  // the first snapshot comes at once
  ASSERT_EQ(snapshot.entries_size(), 1);
  EXPECT_EQ(snapshot.entries(0).subject_id(), "w1");
  EXPECT_EQ(snapshot.entries(0).display_name(), "Name w1");
  EXPECT_EQ(snapshot.period(), "all");

  // One kudos (outside the coalescing window of the first snapshot): a new
  // snapshot promptly.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto sent = std::chrono::steady_clock::now();
  Points("w2", "t1", 9);
  ASSERT_TRUE(reader->Read(&snapshot));
  auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - sent);
  ASSERT_EQ(snapshot.entries_size(), 2);
  EXPECT_EQ(snapshot.entries(0).subject_id(), "w2");
  // 250 ms is the target; allow scheduling slack on a busy 2-core machine.
  EXPECT_LT(latency.count(), 500) << "latency " << latency.count() << " ms";
  std::cout << "watch latency: " << latency.count() << " ms\n";

  // A burst of 60 events in ~0.5 s is coalesced into a few snapshots.
  std::atomic<int> received{0};
  std::atomic<int64_t> last_top{0};
  std::thread counter([&] {
    v1::WatchLeaderboardResponse s;
    while (reader->Read(&s)) {
      ++received;
      if (s.entries_size() > 0) last_top = s.entries(0).score();
    }
  });
  auto burst_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 60; ++i) {
    Points("w3", "t1", 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(8));
  }
  ASSERT_TRUE(Eventually([&] { return last_top.load() == 60; }, std::chrono::seconds(10)));
  auto burst = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - burst_start);
  // At most 5 per second, plus the edges.
  EXPECT_LE(received.load(), static_cast<int>(burst.count() / 200) + 3)
      << received.load() << " snapshots in " << burst.count() << " ms";
  EXPECT_GE(received.load(), 2);
  // A change below the top N sends nothing.
  int before = received.load();
  Points("w4", "t1", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "w4") == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(received.load(), before);
  context->TryCancel();
  counter.join();
}

// A board on the current period (empty period) of a team scope: the
// snapshot names the period, and only this team's changes update it.
TEST_F(LeaderboardIntegrationTest, WatchCurrentWeekOfOneTeam) {
  writer_.Kudos(lbtest::TeamEvent("t1", "Team one"));  // a board of an unknown team is NOT_FOUND
  Points("seed", "t9", 1);
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 1; }));
  v1::WatchLeaderboardRequest request;
  *request.mutable_board() =
      MakeBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_WEEK, v1::SCOPE_TEAM, "t1");
  ASSERT_TRUE(Eventually([&] { return Total(request.board()) == 0; }));  // t1 is known
  auto context = harness::Context(member_, std::chrono::seconds(30));
  auto reader = stub_->WatchLeaderboard(context.get(), request);
  v1::WatchLeaderboardResponse snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.entries_size(), 0);
  auto week = common::calendar::PeriodAt(common::calendar::PeriodUnit::kWeek, absl::Now(),
                                         absl::UTCTimeZone(), 1);
  EXPECT_EQ(snapshot.period(), week.key);
  Points("other-team", "t2", 50);  // not on this board
  Points("member", "t1", 7);
  ASSERT_TRUE(reader->Read(&snapshot));
  ASSERT_EQ(snapshot.entries_size(), 1);
  EXPECT_EQ(snapshot.entries(0).subject_id(), "member");
  EXPECT_EQ(snapshot.entries(0).score(), 7);
  EXPECT_EQ(snapshot.entries(0).rank(), 1);
  context->TryCancel();
  while (reader->Read(&snapshot)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
}

v1::WatchLeaderboardRequest request_for_auth_check() {
  v1::WatchLeaderboardRequest request;
  *request.mutable_board() = AllTimePoints();
  return request;
}

TEST_F(LeaderboardIntegrationTest, WatchRejectsBadRequestsAndManyWatchersShareAHub) {
  v1::WatchLeaderboardRequest bad;
  *bad.mutable_board() = AllTimePoints();
  bad.set_top_n(500);
  auto context = harness::Context(member_);
  auto reader = stub_->WatchLeaderboard(context.get(), bad);
  v1::WatchLeaderboardResponse snapshot;
  EXPECT_FALSE(reader->Read(&snapshot));
  EXPECT_EQ(reader->Finish().error_code(), grpc::INVALID_ARGUMENT);
  grpc::ClientContext anonymous;
  auto anonymous_reader = stub_->WatchLeaderboard(&anonymous, request_for_auth_check());
  EXPECT_FALSE(anonymous_reader->Read(&snapshot));
  EXPECT_EQ(anonymous_reader->Finish().error_code(), grpc::UNAUTHENTICATED);

  // 1,000 concurrent watchers on one board (callback reactors, one hub)
  // all see the change.
  constexpr int kWatchers = 1000;
  Points("warm", "t1", 1);
  ASSERT_TRUE(Eventually([&] { return Total(AllTimePoints()) == 1; }));
  v1::WatchLeaderboardRequest request;
  *request.mutable_board() = AllTimePoints();
  request.set_top_n(5);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchLeaderboardResponse>>> readers;
  for (int i = 0; i < kWatchers; ++i) {
    contexts.push_back(harness::Context(member_, std::chrono::seconds(30)));
    readers.push_back(stub_->WatchLeaderboard(contexts.back().get(), request));
  }
  for (auto& r : readers) {
    ASSERT_TRUE(r->Read(&snapshot));
    EXPECT_EQ(snapshot.entries_size(), 1);
  }
  auto sent = std::chrono::steady_clock::now();
  Points("z", "t1", 4);
  for (auto& r : readers) {
    ASSERT_TRUE(r->Read(&snapshot));
    ASSERT_EQ(snapshot.entries_size(), 2);
    EXPECT_EQ(snapshot.entries(0).score(), 4);
  }
  std::cout << kWatchers << " watchers updated in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - sent)
                   .count()
            << " ms\n";
  // A graceful stop (SIGTERM) ends every open stream with UNAVAILABLE.
  auto stop_start = std::chrono::steady_clock::now();
  std::atomic<int64_t> drained_ms{-1};
  std::thread drain([&] {
    v1::WatchLeaderboardResponse s;
    for (auto& r : readers) {
      while (r->Read(&s)) {
      }
      grpc::Status status = r->Finish();
      EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();
    }
    drained_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - stop_start)
                     .count();
  });
  server_.Stop();
  auto stop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - stop_start);
  drain.join();
  std::cout << "streams ended " << drained_ms.load() << " ms after SIGTERM, process exited after "
            << stop_ms.count() << " ms\n";
  EXPECT_LT(drained_ms.load(), 2500);
}

TEST_F(LeaderboardIntegrationTest, StreaksBadgesAndInsights) {
  kudos::v1::OrgSettings settings = leaderboard::DefaultSettings();
  settings.clear_values();
  settings.add_values()->set_value_id("teamwork");
  settings.add_values()->set_value_id("empathy");
  writer_.Kudos(lbtest::SettingsEvent(settings));
  Person("boss1", "t0");
  Person("a", "t1", "boss1");
  Person("b", "t1", "boss1");
  Person("c", "t1", "boss1");
  Person("x", "t2", "boss2");
  writer_.Kudos(lbtest::PersonEvent("gone", "Gone", "t1", "boss1", "", /*active=*/false));
  absl::Time now = absl::Now();
  // Every kudos below falls on one UTC day: in the day's first 11 minutes
  // they are stamped just after its start (up to 11 minutes ahead) instead of
  // across midnight, which made a two-day giving streak (a run at 00:03 UTC).
  const absl::Time day_start =
      absl::FromCivil(absl::ToCivilDay(now, absl::UTCTimeZone()), absl::UTCTimeZone());
  now = std::max(now, day_start + absl::Minutes(11));
  // a thanks b 10 times (two values over time), c once.
  for (int i = 0; i < 10; ++i) {
    Send("a", "t1", {{"b", "t1"}}, {i < 9 ? "teamwork" : "empathy"}, 2, now - absl::Minutes(10 - i));
  }
  Send("a", "t1", {{"c", "t1"}}, {"teamwork"}, 1, now);
  v1::Board given = MakeBoard(v1::METRIC_KUDOS_GIVEN, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(given, "a") == 11; }));
  ASSERT_TRUE(Eventually([&] {
    return ScoreOf(AllTimePoints(), "c") == 1;
  }));

  auto badges = [&](const std::string& person) {
    v1::ListBadgesRequest request;
    request.set_person_id(person);
    v1::ListBadgesResponse response;
    auto context = harness::Context(harness::MintToken(org_, "tv", {"screen"}));
    EXPECT_TRUE(stub_->ListBadges(context.get(), request, &response).ok());
    std::map<std::string, int64_t> out;
    for (const auto& b : response.badges()) out[b.badge_id()] = b.earn_time().seconds();
    return out;
  };
  auto b_badges = badges("b");
  EXPECT_EQ(b_badges.count("first_kudos_received"), 1u);
  EXPECT_EQ(b_badges.count("received_10"), 1u);
  EXPECT_EQ(b_badges.count("all_values_received"), 1u);
  EXPECT_EQ(b_badges["all_values_received"], absl::ToUnixSeconds(now - absl::Minutes(1)));
  EXPECT_EQ(b_badges["first_kudos_received"], absl::ToUnixSeconds(now - absl::Minutes(10)));
  auto a_badges = badges("a");
  EXPECT_EQ(a_badges.count("first_kudos_given"), 1u);
  EXPECT_EQ(a_badges.count("given_10"), 1u);
  EXPECT_EQ(a_badges.count("given_50"), 0u);
  EXPECT_EQ(a_badges.count("first_kudos_received"), 0u);

  v1::GetStreaksRequest streak_request;
  streak_request.set_person_id("a");
  v1::GetStreaksResponse streaks;
  auto context = harness::Context(member_);
  ASSERT_TRUE(stub_->GetStreaks(context.get(), streak_request, &streaks).ok());
  absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  bool work_day = common::calendar::DayOfWeekNumber(today) <= 5;
  EXPECT_EQ(streaks.giving().current_days(), work_day ? 1 : 0);
  EXPECT_EQ(streaks.giving().last_active_date().day(), today.day());
  EXPECT_EQ(streaks.receiving().longest_days(), 0);
  streak_request.set_person_id("unknown-person");
  context = harness::Context(member_);
  EXPECT_EQ(stub_->GetStreaks(context.get(), streak_request, &streaks).error_code(),
            grpc::NOT_FOUND);

  // Insights: boss1 manages t1; members and other managers may not look.
  auto insights = [&](const std::string& token, const std::string& team,
                      v1::GetInsightsResponse* response) {
    v1::GetInsightsRequest request;
    request.set_team_id(team);
    request.set_window(v1::WINDOW_MONTH);
    auto ctx = harness::Context(token);
    return stub_->GetInsights(ctx.get(), request, response);
  };
  v1::GetInsightsResponse response;
  ASSERT_TRUE(insights(harness::MintToken(org_, "boss1", {"manager"}), "t1", &response).ok());
  EXPECT_EQ(response.member_count(), 3);  // a, b, c (gone is inactive)
  EXPECT_EQ(response.recognized_count(), 2);
  EXPECT_EQ(response.giving_count(), 1);
  EXPECT_NEAR(response.recognition_coverage_percent(), 200.0 / 3, 1e-9);
  ASSERT_EQ(response.unrecognized_person_ids_size(), 1);
  EXPECT_EQ(response.unrecognized_person_ids(0), "a");
  EXPECT_EQ(insights(harness::MintToken(org_, "boss2", {"manager"}), "t1", &response).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(insights(harness::MintToken(org_, "boss1", {"manager"}), "", &response).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(insights(member_, "t1", &response).error_code(), grpc::PERMISSION_DENIED);
  EXPECT_EQ(insights(harness::MintToken(org_, "tv", {"screen"}), "t1", &response).error_code(),
            grpc::PERMISSION_DENIED);
  ASSERT_TRUE(insights(admin_, "", &response).ok());
  EXPECT_EQ(response.member_count(), 5);  // boss1, a, b, c, x
  EXPECT_EQ(response.recognized_count(), 2);
}

// Duplicated events, a consumer-group replay and a crash never double count.
TEST_F(LeaderboardIntegrationTest, ExactlyOnceAcrossDuplicatesReplaysAndCrashes) {
  absl::Time now = absl::Now();
  std::string id = "K-dup";
  auto sent = lbtest::SentEvent(org_, id, "g", "t1", {{"r", "t2"}}, {"teamwork"}, 5, now);
  auto posted = lbtest::TransfersEvent(org_, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                       {{"r", "t2"}}, {"teamwork"}, 5, now);
  writer_.Kudos(sent);
  writer_.Kudos(sent);  // the producer retried after a timeout
  writer_.Ledger(posted);
  writer_.Ledger(posted);
  Points("marker", "", 1);
  v1::Board received = MakeBoard(v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 1; }));
  ASSERT_TRUE(Eventually([&] { return ScoreOf(received, "r") == 1; }));
  EXPECT_EQ(ScoreOf(AllTimePoints(), "r"), 5);

  // Everything delivered again.
  writer_.ReplayAll();
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 2; }));
  EXPECT_EQ(ScoreOf(AllTimePoints(), "r"), 5);
  EXPECT_EQ(ScoreOf(received, "r"), 1);

  // A crash with entries in flight, then a restart: pending entries are
  // recovered, nothing is counted twice.
  for (int i = 0; i < 100; ++i) Points("crash", "", 1);
  server_.Kill();
  for (int i = 0; i < 50; ++i) Points("crash", "", 1);
  server_.Start();
  Connect();
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "crash") == 150; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(ScoreOf(AllTimePoints(), "crash"), 150);
  EXPECT_EQ(ScoreOf(AllTimePoints(), "r"), 5);
  // Nothing left pending in the group.
  auto pending = writer_.pool().Run({"XPENDING", leaderboard::LedgerStream(org_), "leaderboard"});
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->elements[0].integer, 0);
}

// Entries that reach the consumer in one batch: each is planned with the
// directory the entries before it left (a person's or the org's time zone
// changing between two events), as when they arrive one at a time.
TEST_F(LeaderboardIntegrationTest, EntriesAfterADirectoryChangeInTheSameBatchUseTheNewDirectory) {
  server_.Kill();
  absl::Time t = absl::Now();
  // 25 hours apart: the two zones never share a local date.
  absl::TimeZone east, west;
  ASSERT_TRUE(absl::LoadTimeZone("Pacific/Kiritimati", &east));
  ASSERT_TRUE(absl::LoadTimeZone("Pacific/Pago_Pago", &west));
  std::string east_day = absl::FormatCivilTime(absl::ToCivilDay(t, east));
  std::string west_day = absl::FormatCivilTime(absl::ToCivilDay(t, west));
  kudos::v1::OrgSettings settings;
  settings.set_time_zone("Pacific/Kiritimati");
  writer_.Kudos(lbtest::SettingsEvent(settings));
  Person("r", "t1", "", "Pacific/Kiritimati");
  Send("g", "t1", {{"r", "t1"}}, {"teamwork"}, 1, t);
  Person("r", "t1", "", "Pacific/Pago_Pago");
  settings.set_time_zone("Pacific/Pago_Pago");
  writer_.Kudos(lbtest::SettingsEvent(settings));
  Send("g", "t1", {{"r", "t1"}}, {"teamwork"}, 1, t);
  server_.Start();  // reads all of it in one batch
  Connect();
  v1::Board received = MakeBoard(v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(received, "r") == 2; }));
  auto days = writer_.pool().Run({"SMEMBERS", leaderboard::DaysKey(org_, "receiving", "r")});
  ASSERT_TRUE(days.ok());
  std::set<std::string> seen;
  for (const auto& day : days->elements) seen.insert(day.str);
  EXPECT_EQ(seen, (std::set<std::string>{
                      leaderboard::DayMember(absl::ToCivilDay(t, east)),
                      leaderboard::DayMember(absl::ToCivilDay(t, west))}));
  // The org's day boards: one kudos on each zone's date.
  for (const std::string& day : {east_day, west_day}) {
    std::string key = leaderboard::BoardKey(org_, v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_DAY, day,
                                            v1::SCOPE_ORG, "");
    auto score = writer_.pool().Run({"ZSCORE", key, "r"});
    ASSERT_TRUE(score.ok());
    EXPECT_EQ(score->str, "1") << key;
  }
}

// A replica dies for good with entries in flight; another replica (another
// consumer name) claims its pending entries (XAUTOCLAIM) and applies them once.
TEST_F(LeaderboardIntegrationTest, AnotherReplicaClaimsADeadConsumersPendingEntries) {
  server_.Kill();
  // Enough entries, written before the replica starts, that it is still
  // applying them when the test sees them pending (issue 15: a batch of 200
  // is one script now, so 2,000 were done between two polls).
  constexpr int kEntries = 20000;
  for (int i = 0; i < kEntries; ++i) Points("busy", "", 1);
  harness::Service first(LEADERBOARD_BINARY, redis_.address(),
                         {"--consumer_name=replica-a", "--claim_min_idle_ms=200"});
  // Kill it as soon as it has started reading.
  ASSERT_TRUE(Eventually([&] {
    auto pending = writer_.pool().Run({"XPENDING", leaderboard::LedgerStream(org_), "leaderboard"});
    return pending.ok() && pending->type == common::redis::Reply::Type::kArray &&
           !pending->elements.empty() && pending->elements[0].integer > 0;
  }, std::chrono::seconds(10)));
  first.Kill();
  auto pending = writer_.pool().Run({"XPENDING", leaderboard::LedgerStream(org_), "leaderboard"});
  ASSERT_TRUE(pending.ok());
  std::cout << pending->elements[0].integer << " entries pending at the dead replica\n";
  harness::Service second(LEADERBOARD_BINARY, redis_.address(),
                          {"--consumer_name=replica-b", "--claim_min_idle_ms=200"});
  stub_ = v1::LeaderboardService::NewStub(
      grpc::CreateChannel(second.address(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "busy") == kEntries; }));
  ASSERT_TRUE(Eventually([&] {
    auto p = writer_.pool().Run({"XPENDING", leaderboard::LedgerStream(org_), "leaderboard"});
    return p.ok() && p->elements[0].integer == 0;
  }));
  EXPECT_EQ(ScoreOf(AllTimePoints(), "busy"), kEntries);
}

TEST_F(LeaderboardIntegrationTest, RebuildIsAdminOnlyAndIdentical) {
  absl::Time now = absl::Now();
  for (int i = 0; i < 30; ++i) {
    Send(absl::StrCat("g", i % 4), "t1", {{absl::StrCat("r", i % 7), "t2"}}, {"teamwork"},
         1 + i % 3, now - absl::Hours(24 * (i % 20)));
  }
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 1; }));
  v1::Board given = MakeBoard(v1::METRIC_KUDOS_GIVEN, v1::WINDOW_ALL_TIME, v1::SCOPE_ORG);
  ASSERT_TRUE(Eventually([&] { return Total(given) == 4; }));
  auto before_points = Forward(AllTimePoints(), 100);
  auto before_given = Forward(given, 100);

  v1::RebuildProjectionsResponse response;
  auto context = harness::Context(member_);
  EXPECT_EQ(stub_->RebuildProjections(context.get(), {}, &response).error_code(),
            grpc::PERMISSION_DENIED);
  context = harness::Context(harness::MintToken(org_, "boss", {"manager"}));
  EXPECT_EQ(stub_->RebuildProjections(context.get(), {}, &response).error_code(),
            grpc::PERMISSION_DENIED);
  context = harness::Context(admin_, std::chrono::seconds(30));
  ASSERT_TRUE(stub_->RebuildProjections(context.get(), {}, &response).ok());
  EXPECT_EQ(response.events_applied(), 61);
  EXPECT_GE(response.duration_ms(), 0);
  EXPECT_EQ(Strip(Forward(AllTimePoints(), 100)), Strip(before_points));
  EXPECT_EQ(Strip(Forward(given, 100)), Strip(before_given));
  // The rebuild is audited.
  auto audit = writer_.pool().Run({"XLEN", "audit:{" + org_ + "}"});
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->integer, 1);
  // The live consumer carries on after a rebuild.
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 2; }));
}

// Sub-scope quarter and all-time boards are not written: they read as the
// sum of the quarter's months and of the years (BoardDerived), through
// GetLeaderboard, GetRank and Store::Scores alike, before and after more
// events and a rebuild.
TEST_F(LeaderboardIntegrationTest, DerivedQuarterAndAllTimeBoardsReadAsTheSumOfTheirSources) {
  absl::TimeZone utc = absl::UTCTimeZone();
  auto at = [&](int y, int m, int d) { return absl::FromCivil(absl::CivilSecond(y, m, d, 12, 0, 0), utc); };
  writer_.Kudos(lbtest::TeamEvent("t1", "Team 1"));
  writer_.Kudos(lbtest::TeamEvent("t2", "Team 2"));
  Points("a", "t1", 5, at(2025, 11, 10), {"teamwork"});
  Points("a", "t1", 7, at(2026, 2, 10), {"teamwork"});
  Points("a", "t1", 3, at(2026, 3, 5));
  Points("b", "t1", 4, at(2026, 1, 20), {"teamwork"});
  Points("c", "t2", 2, at(2026, 5, 1));
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 1; }));
  using P = std::vector<std::pair<std::string, int64_t>>;
  auto board = [&](v1::Window window, v1::Scope scope, const std::string& id,
                   const std::string& period = "") {
    return MakeBoard(v1::METRIC_POINTS_RECEIVED, window, scope, id, period);
  };
  auto check = [&](const std::string& when, int64_t a_extra) {
    SCOPED_TRACE(when);
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_ALL_TIME, v1::SCOPE_TEAM, "t1"), 1)),
              RankEntries(P{{"a", 15 + a_extra}, {"b", 4}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_ALL_TIME, v1::SCOPE_TEAMS, ""), 1)),
              RankEntries(P{{"t1", 19 + a_extra}, {"t2", 2}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_ALL_TIME, v1::SCOPE_VALUE, "teamwork"), 2)),
              RankEntries(P{{"a", 12}, {"b", 4}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_QUARTER, v1::SCOPE_TEAM, "t1", "2026-Q1"), 1)),
              RankEntries(P{{"a", 10 + a_extra}, {"b", 4}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_QUARTER, v1::SCOPE_TEAM, "t1", "2025-Q4"), 5)),
              RankEntries(P{{"a", 5}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_QUARTER, v1::SCOPE_TEAMS, "", "2026-Q2"), 5)),
              RankEntries(P{{"t2", 2}}));
    EXPECT_EQ(Strip(Forward(board(v1::WINDOW_QUARTER, v1::SCOPE_TEAM, "t1", "2026-Q3"), 5)),
              RankEntries(P{}));
    EXPECT_EQ(ScoreOf(board(v1::WINDOW_ALL_TIME, v1::SCOPE_TEAM, "t1"), "a"), 15 + a_extra);
    EXPECT_EQ(ScoreOf(board(v1::WINDOW_QUARTER, v1::SCOPE_TEAM, "t1", "2026-Q1"), "b"), 4);
    leaderboard::Store store(writer_.pool());
    std::string all_t1 = leaderboard::BoardKey(org_, v1::METRIC_POINTS_RECEIVED,
                                               v1::WINDOW_ALL_TIME, "all", v1::SCOPE_TEAM, "t1");
    auto scores = store.Scores(all_t1, {"a", "b", "c"});
    ASSERT_TRUE(scores.ok()) << scores.status();
    EXPECT_EQ(*scores, (std::map<std::string, int64_t>{{"a", 15 + a_extra}, {"b", 4}}));
    // Neither board is written: only their sources are.
    EXPECT_EQ(writer_.pool().Run({"EXISTS", all_t1})->integer, 0);
    EXPECT_EQ(writer_.pool()
                  .Run({"EXISTS", leaderboard::BoardKey(org_, v1::METRIC_POINTS_RECEIVED,
                                                        v1::WINDOW_QUARTER, "2026-Q1",
                                                        v1::SCOPE_TEAM, "t1")})
                  ->integer,
              0);
  };
  check("live", 0);
  // More events move the cached unions.
  Points("a", "t1", 6, at(2026, 3, 6));
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 2; }));
  check("after more events", 6);
  v1::RebuildProjectionsResponse response;
  auto context = harness::Context(admin_, std::chrono::seconds(30));
  ASSERT_TRUE(stub_->RebuildProjections(context.get(), {}, &response).ok());
  check("after a rebuild", 6);
}

// Upgrade: boards written by a version that materialized the sub-scope
// all-time boards (and kept no years set). The consumer lists the years of
// the org-scope year boards before its first batch, so the derived all-time
// boards include the years before the upgrade; the old all-time keys are no
// longer read; a rebuild drops them.
TEST_F(LeaderboardIntegrationTest, DerivedAllTimeBoardsReadTheYearsAnOlderVersionWrote) {
  auto& pool = writer_.pool();
  const std::string p = leaderboard::Prefix(org_);
  ASSERT_TRUE(pool.Pipeline({{"ZADD", p + "points_received:year:2025:org", "5", "a"},
                             {"ZADD", p + "points_received:year:2025:team:t1", "5", "a"},
                             {"ZADD", p + "points_received:year:2025:teams", "5", "t1"},
                             {"ZADD", p + "points_received:all:all:teams", "99", "t1"},
                             {"ZADD", p + "points_received:all:all:team:t1", "99", "a"}})
                  .ok());
  writer_.Kudos(lbtest::TeamEvent("t1", "Team 1"));
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 2, 10, 12, 0, 0), absl::UTCTimeZone());
  Points("a", "t1", 7, t);
  Points("marker", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "marker") == 1; }));
  using P = std::vector<std::pair<std::string, int64_t>>;
  auto all = [&](v1::Scope scope, const std::string& id) {
    return MakeBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_ALL_TIME, scope, id);
  };
  EXPECT_EQ(Strip(Forward(all(v1::SCOPE_TEAM, "t1"), 10)), RankEntries(P{{"a", 12}}));
  EXPECT_EQ(Strip(Forward(all(v1::SCOPE_TEAMS, ""), 10)), RankEntries(P{{"t1", 12}}));
  auto years = pool.Run({"SMEMBERS", leaderboard::YearsKey(org_)});
  ASSERT_TRUE(years.ok());
  std::set<std::string> listed;
  for (const auto& year : years->elements) listed.insert(year.str);
  EXPECT_EQ(listed, (std::set<std::string>{"2025", "2026"}));
}

// Two replicas share the consumer group while events keep arriving and an
// admin rebuilds on one of them: the other replica's writes are refused
// during the rebuild (the lock is checked inside the apply script) and
// retried after it, so nothing is lost or counted twice.
TEST_F(LeaderboardIntegrationTest, RebuildWhileAnotherReplicaConsumesStaysExact) {
  harness::Service other(LEADERBOARD_BINARY, redis_.address(),
                         {"--consumer_name=replica-b", "--claim_min_idle_ms=200",
                          "--rebuild_min_interval_ms=0"});
  Points("busy", "", 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "busy") == 1; }));
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    lbtest::EventWriter w(redis_.address(), org_);
    for (int i = 0; i < 600; ++i) {
      w.Ledger(lbtest::TransfersEvent(org_, "R" + std::to_string(i), "R" + std::to_string(i),
                                      ledger::v1::TRANSFER_KIND_KUDOS, "g", {{"busy", "t1"}}, {}, 1,
                                      absl::Now()));
      if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    writing = false;
  });
  int rebuilds = 0;
  while (writing.load()) {
    v1::RebuildProjectionsResponse response;
    auto context = harness::Context(admin_, std::chrono::seconds(30));
    grpc::Status status = stub_->RebuildProjections(context.get(), {}, &response);
    ASSERT_TRUE(status.ok() || status.error_code() == grpc::ABORTED) << status.error_message();
    if (status.ok()) ++rebuilds;
  }
  writer.join();
  EXPECT_GE(rebuilds, 1);
  ASSERT_TRUE(Eventually([&] { return ScoreOf(AllTimePoints(), "busy") == 601; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(ScoreOf(AllTimePoints(), "busy"), 601);
  for (const char* stream : {"ledger", "kudos"}) {
    std::string key = std::string(stream) == "ledger" ? leaderboard::LedgerStream(org_)
                                                       : leaderboard::KudosStream(org_);
    ASSERT_TRUE(Eventually([&] {
      auto p = writer_.pool().Run({"XPENDING", key, "leaderboard"});
      return p.ok() && p->elements[0].integer == 0;
    }));
  }
  // And a final rebuild gives the same board.
  v1::RebuildProjectionsResponse response;
  auto context = harness::Context(admin_, std::chrono::seconds(30));
  ASSERT_TRUE(stub_->RebuildProjections(context.get(), {}, &response).ok());
  EXPECT_EQ(response.events_applied(), 601);
  EXPECT_EQ(ScoreOf(AllTimePoints(), "busy"), 601);
}

// The board read script alone: a real redis-server and the store over it.
class BoardReadScriptTest : public ::testing::Test {
 protected:
  harness::RedisServer redis_;
  common::redis::Pool pool_{*common::redis::PoolOptionsFor(redis_.address())};
  leaderboard::Store store_{pool_};
};

// The board read script itself, against random boards full of ties.
TEST_F(BoardReadScriptTest, RandomBoardsPageAndRankLikeTheModel) {
  std::mt19937 rng(42);
  for (int round = 0; round < 30; ++round) {
    std::string key = absl::StrCat("lb:{t}:board", round);
    std::vector<std::pair<std::string, int64_t>> model;
    int n = 1 + rng() % 60;
    int distinct = 1 + rng() % 6;
    common::redis::Command zadd = {"ZADD", key};
    for (int i = 0; i < n; ++i) {
      std::string id = absl::StrCat(std::string(1, "aBz_-."[rng() % 6]), rng() % 1000);
      if (std::any_of(model.begin(), model.end(), [&](auto& m) { return m.first == id; })) continue;
      int64_t score = static_cast<int64_t>(rng() % distinct) - 1;  // negatives and zero too
      model.push_back({id, score});
      zadd.push_back(absl::StrCat(score));
      zadd.push_back(id);
    }
    ASSERT_TRUE(pool_.Run(zadd).ok());
    std::vector<RankedEntry> want = RankEntries(model);
    int page = 1 + rng() % 8;
    // Forward.
    std::vector<RankedEntry> got;
    auto first = store_.FirstPage(key, page);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->has_prev);
    got = first->entries;
    bool more = first->has_next;
    while (more) {
      auto next = store_.Page(key, 'f', got.back().score, got.back().subject_id, page);
      ASSERT_TRUE(next.ok());
      ASSERT_FALSE(next->entries.empty());
      EXPECT_TRUE(next->has_prev);
      got.insert(got.end(), next->entries.begin(), next->entries.end());
      more = next->has_next;
    }
    EXPECT_EQ(got, want) << "round " << round;
    // Backward from the last entry (inclusive).
    std::vector<RankedEntry> back;
    auto last = store_.Page(key, 'B', want.back().score, want.back().subject_id, page);
    ASSERT_TRUE(last.ok());
    back = last->entries;
    more = last->has_prev;
    while (more) {
      auto prev = store_.Page(key, 'b', back.front().score, back.front().subject_id, page);
      ASSERT_TRUE(prev.ok());
      back.insert(back.begin(), prev->entries.begin(), prev->entries.end());
      more = prev->has_prev;
    }
    EXPECT_EQ(back, want) << "round " << round;
    // Around every member, and a boundary that is not on the board.
    for (size_t i = 0; i < want.size(); ++i) {
      auto around = store_.Around(key, want[i].subject_id, 3);
      ASSERT_TRUE(around.ok());
      ASSERT_TRUE(around->ranked);
      EXPECT_EQ(around->entry, want[i]);
      std::vector<RankedEntry> above(want.begin() + std::max<int>(0, static_cast<int>(i) - 3),
                                     want.begin() + i);
      std::vector<RankedEntry> below(want.begin() + i + 1,
                                     want.begin() + std::min(want.size(), i + 4));
      EXPECT_EQ(around->above, above);
      EXPECT_EQ(around->below, below);
      int64_t strictly_below = std::count_if(want.begin(), want.end(),
                                             [&](auto& e) { return e.score < want[i].score; });
      EXPECT_EQ(around->below_count, strictly_below);
    }
    auto ghost = store_.Page(key, 'f', 0, "m", 1000);
    ASSERT_TRUE(ghost.ok());
    std::vector<RankedEntry> after_ghost;
    for (const auto& e : want) {
      if (e.score < 0 || (e.score == 0 && e.subject_id > "m")) after_ghost.push_back(e);
    }
    EXPECT_EQ(ghost->entries, after_ghost);
  }
}

// GetRank's one round trip (board_read.lua 'around' with names): random
// boards full of ties with hidden people (one of them the viewer, who sees
// itself), members and neighbours exactly as the model of the board without
// the hidden ones, and the display names of the member and each neighbour
// read by the same call (the id where the directory has no name).
TEST_F(BoardReadScriptTest, AroundWithHiddenPeopleAndNamesAnswersLikeTheModel) {
  std::mt19937 rng(7);
  for (int round = 0; round < 30; ++round) {
    const std::string org = absl::StrCat("o", round);
    const std::string key = absl::StrCat("lb:{", org, "}:points_received:all:org");
    std::vector<std::pair<std::string, int64_t>> everyone;
    std::set<std::string> hidden;
    std::map<std::string, std::string> names;
    int n = 1 + rng() % 80;
    int distinct = 1 + rng() % 5;
    common::redis::Command zadd = {"ZADD", key};
    common::redis::Command people = {"HSET", leaderboard::PeopleKey(org)};
    common::redis::Command hide = {"SADD", leaderboard::HiddenKey(org)};
    for (int i = 0; i < n; ++i) {
      std::string id = absl::StrCat(std::string(1, "aBz"[rng() % 3]), rng() % 500);
      if (std::any_of(everyone.begin(), everyone.end(), [&](auto& m) { return m.first == id; })) {
        continue;
      }
      int64_t score = static_cast<int64_t>(rng() % distinct);
      everyone.push_back({id, score});
      zadd.push_back(absl::StrCat(score));
      zadd.push_back(id);
      if (rng() % 2 == 0) {  // half of them have a directory name
        kudos::v1::Person person;
        person.set_person_id(id);
        person.set_display_name("Name " + id);
        people.push_back(id);
        people.push_back(person.SerializeAsString());
        names[id] = "Name " + id;
      }
      if (rng() % 5 == 0) {
        hidden.insert(id);
        hide.push_back(id);
      }
    }
    hide.push_back("not-on-the-board");
    ASSERT_TRUE(pool_.Run(zadd).ok());
    ASSERT_TRUE(pool_.Run(hide).ok());
    if (people.size() > 2) {
      ASSERT_TRUE(pool_.Run(people).ok());
    }
    const std::string viewer = everyone[rng() % everyone.size()].first;
    std::vector<std::pair<std::string, int64_t>> visible;
    for (const auto& m : everyone) {
      if (hidden.count(m.first) == 0 || m.first == viewer) visible.push_back(m);
    }
    std::vector<RankedEntry> want = RankEntries(visible);
    auto name_of = [&](const std::string& id) {
      auto it = names.find(id);
      return it == names.end() ? id : it->second;
    };
    const int neighbors = static_cast<int>(rng() % 4);
    for (const auto& [id, score] : everyone) {
      auto around = store_.Around(key, id, neighbors, viewer, leaderboard::NamesFrom::kPeople);
      ASSERT_TRUE(around.ok()) << around.status();
      EXPECT_EQ(around->total, static_cast<int64_t>(want.size()));
      EXPECT_EQ(around->names[id], name_of(id)) << "round " << round << " " << id;
      auto it = std::find_if(want.begin(), want.end(),
                             [&](const RankedEntry& e) { return e.subject_id == id; });
      if (it == want.end()) {  // hidden from this viewer
        EXPECT_FALSE(around->ranked) << "round " << round << " " << id;
        continue;
      }
      ASSERT_TRUE(around->ranked) << "round " << round << " " << id;
      size_t i = static_cast<size_t>(it - want.begin());
      EXPECT_EQ(around->entry, want[i]);
      std::vector<RankedEntry> above(
          want.begin() + std::max<int>(0, static_cast<int>(i) - neighbors), want.begin() + i);
      std::vector<RankedEntry> below(
          want.begin() + i + 1, want.begin() + std::min(want.size(), i + 1 + neighbors));
      EXPECT_EQ(around->above, above) << "round " << round << " " << id;
      EXPECT_EQ(around->below, below) << "round " << round << " " << id;
      EXPECT_EQ(around->below_count,
                std::count_if(want.begin(), want.end(),
                              [&](auto& e) { return e.score < want[i].score; }));
      for (const RankedEntry& e : above) EXPECT_EQ(around->names[e.subject_id], name_of(e.subject_id));
      for (const RankedEntry& e : below) EXPECT_EQ(around->names[e.subject_id], name_of(e.subject_id));
      EXPECT_EQ(around->names.size(), 1 + above.size() + below.size());
    }
    // Not on the board at all: unranked, with its directory name.
    auto ghost = store_.Around(key, "ghost", neighbors, viewer, leaderboard::NamesFrom::kPeople);
    ASSERT_TRUE(ghost.ok());
    EXPECT_FALSE(ghost->ranked);
    EXPECT_EQ(ghost->names["ghost"], "ghost");
  }
}

// The read path's display names (leaderboard::NameCache): never more than
// its bound, the oldest reads evicted first and never the whole cache at
// once, stale names not served, and a name read again kept as new.
TEST(NameCacheTest, EvictsTheOldestReadsPastItsBoundAndNeverClearsTheRest) {
  leaderboard::NameCache cache(100, absl::Seconds(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000000);
  std::string name;
  for (int i = 0; i < 250; ++i) {
    cache.Put(absl::StrCat("p", i), absl::StrCat("Name ", i),
              t0 + absl::Milliseconds(i));  // all fresh at t0 + 300 ms
    EXPECT_LE(cache.size(), 100u);
  }
  const absl::Time now = t0 + absl::Milliseconds(300);
  EXPECT_EQ(cache.size(), 100u);
  for (int i = 0; i < 150; ++i) EXPECT_FALSE(cache.Get(absl::StrCat("p", i), now, name)) << i;
  for (int i = 150; i < 250; ++i) {
    ASSERT_TRUE(cache.Get(absl::StrCat("p", i), now, name)) << i;
    EXPECT_EQ(name, absl::StrCat("Name ", i));
  }
  // p150 read again is the newest now: the next reads evict p151.. first.
  cache.Put("p150", "Name 150 again", now);
  for (int i = 0; i < 10; ++i) cache.Put(absl::StrCat("q", i), "Q", now);
  EXPECT_EQ(cache.size(), 100u);
  ASSERT_TRUE(cache.Get("p150", now, name));
  EXPECT_EQ(name, "Name 150 again");
  EXPECT_FALSE(cache.Get("p151", now, name));
  EXPECT_TRUE(cache.Get("p249", now, name));
  // A second later nothing read before is served; a later read drops them.
  const absl::Time later = now + absl::Seconds(1);
  EXPECT_FALSE(cache.Get("p249", later, name));
  cache.Put("r", "R", later);
  EXPECT_EQ(cache.size(), 1u);
  // Many refreshes of one name keep one entry (the queue is bounded too).
  for (int i = 0; i < 1000; ++i) cache.Put("r", "R", later + absl::Microseconds(i));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.Get("r", later + absl::Milliseconds(2), name));
}

// The consumer's per-org bookkeeping (issue 12, finding 2): backoff grows
// and is capped, waiting on a rebuild or on Redis never dead-letters, a
// failed batch is narrowed to its oldest entry, and only that entry failing
// max_attempts times in a row is given up on.
TEST(OrgRetriesTest, BacksOffPerOrgAndDeadLettersOnlyAnEntryThatKeepsFailing) {
  using Clock = leaderboard::OrgRetries::Clock;
  leaderboard::OrgRetries::Options options;
  options.min_backoff = std::chrono::milliseconds(100);
  options.max_backoff = std::chrono::milliseconds(1000);
  options.max_attempts = 3;
  leaderboard::OrgRetries retries(options);
  Clock::time_point t0 = Clock::now();
  EXPECT_TRUE(retries.Live("acme"));
  EXPECT_TRUE(retries.Live("victim"));

  // A failed batch: victim waits alone; its next try is one entry.
  EXPECT_FALSE(retries.Failed("victim", "", /*counts=*/true, t0));
  EXPECT_FALSE(retries.Live("victim"));
  EXPECT_TRUE(retries.Live("acme"));
  EXPECT_EQ(retries.NextCount("victim", 200), 1);
  EXPECT_EQ(retries.NextCount("acme", 200), 200);
  EXPECT_TRUE(retries.Due(t0).empty());
  EXPECT_EQ(retries.Due(t0 + std::chrono::milliseconds(100)),
            std::vector<std::string>{"victim"});

  // Backoff doubles, capped at max_backoff; transient failures never count.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(retries.Failed("victim", "1-1", false, t0));
  EXPECT_EQ(retries.attempts("victim"), 0);
  ASSERT_TRUE(retries.NextDue().has_value());
  EXPECT_EQ(*retries.NextDue(), t0 + std::chrono::milliseconds(1000));

  // The same entry failing max_attempts times is given up on; another
  // entry starts its own count.
  EXPECT_FALSE(retries.Failed("victim", "1-1", true, t0));
  EXPECT_FALSE(retries.Failed("victim", "1-2", true, t0));
  EXPECT_EQ(retries.attempts("victim"), 1);
  EXPECT_FALSE(retries.Failed("victim", "1-2", true, t0));
  EXPECT_TRUE(retries.Failed("victim", "1-2", true, t0));
  EXPECT_EQ(retries.attempts("victim"), 3);

  // Progress forgets the failures; drained, the org is live again.
  retries.Progressed("victim", t0);
  EXPECT_EQ(retries.attempts("victim"), 0);
  EXPECT_EQ(retries.NextCount("victim", 200), 200);
  EXPECT_EQ(retries.Due(t0), std::vector<std::string>{"victim"});
  retries.Drained("victim");
  EXPECT_TRUE(retries.Live("victim"));
  EXPECT_EQ(retries.waiting(), 0u);
  EXPECT_FALSE(retries.NextDue().has_value());
}

// The rebuild's swap changes nothing unless it still holds the org's lock
// and every staged key is there; then it replaces the old keys at once.
TEST(RebuildSwapTest, RefusesWithoutTheLockOrWithAnExpiredStageAndChangesNothing) {
  harness::RedisServer redis;
  common::redis::PoolOptions options = *common::redis::PoolOptionsFor(redis.address());
  options.size = 2;
  common::redis::Pool pool(options);
  leaderboard::Store store(pool);
  const std::string org = "swap-org";
  const std::string board = leaderboard::Prefix(org) + "points_received:all:all:org";
  const std::string stale = leaderboard::Prefix(org) + "values:gone";
  ASSERT_TRUE(pool.Pipeline({{"ZADD", board, "1", "old"}, {"SADD", stale, "x"}}).ok());
  const std::string staging = leaderboard::StagingPrefix(org) + "tok:0";
  ASSERT_TRUE(pool.Run({"ZADD", staging, "5", "new"}).ok());
  std::vector<leaderboard::StagedKey> staged = {{staging, board, 0}};
  auto keys = store.ProjectionKeys(org);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);

  // No lock (or another's): ABORTED, nothing changed.
  absl::Status refused = store.SwapInProjections(org, "tok", *keys, staged);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted) << refused;
  ASSERT_TRUE(store.BeginRebuild(org, "tok", std::chrono::seconds(30), std::chrono::milliseconds(0)).ok());
  // A missing staged key: ABORTED, nothing changed.
  std::vector<leaderboard::StagedKey> missing = {{staging + "x", board, 0}};
  refused = store.SwapInProjections(org, "tok", *keys, missing);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted) << refused;
  EXPECT_EQ(pool.Run({"ZSCORE", board, "old"})->str, "1");
  EXPECT_EQ(pool.Run({"EXISTS", stale})->integer, 1);

  ASSERT_TRUE(store.SwapInProjections(org, "tok", *keys, staged).ok());
  EXPECT_TRUE(pool.Run({"ZSCORE", board, "old"})->is_nil());
  EXPECT_EQ(pool.Run({"ZSCORE", board, "new"})->str, "5");
  EXPECT_EQ(pool.Run({"EXISTS", stale})->integer, 0);
  EXPECT_EQ(pool.Run({"EXISTS", staging})->integer, 0);
  EXPECT_EQ(pool.Run({"PTTL", board})->integer, -1);  // its own expiry: none
  ASSERT_TRUE(store.EndRebuild(org, "tok", false).ok());
  EXPECT_EQ(pool.Run({"EXISTS", leaderboard::RebuildLockKey(org)})->integer, 0);
}

}  // namespace
