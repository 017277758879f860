// Issue 18 part 6, the leaderboard's side: private kudos, people hidden from
// leaderboards, retracted kudos. A real redis-server, the real
// leaderboard_server over gRPC, events XADDed as kudos and the ledger write
// them. Every wait polls the API with a bounded deadline.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "common/events/leaderboard_event.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"

namespace {

namespace v1 = leaderboard::v1;
using harness::Eventually;
using lbtest::Recipient;

v1::Board OrgBoard(v1::Metric metric, v1::Window window, const std::string& period = "") {
  v1::Board board;
  board.set_metric(metric);
  board.set_window(window);
  board.set_scope(v1::SCOPE_ORG);
  board.set_period(period);
  return board;
}

v1::Board TeamBoard(v1::Metric metric, v1::Window window, const std::string& team) {
  v1::Board board = OrgBoard(metric, window);
  board.set_scope(v1::SCOPE_TEAM);
  board.set_scope_id(team);
  return board;
}

const v1::Board kPointsAll = OrgBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_ALL_TIME);
const v1::Board kReceivedAll = OrgBoard(v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_ALL_TIME);
const v1::Board kGivenAll = OrgBoard(v1::METRIC_KUDOS_GIVEN, v1::WINDOW_ALL_TIME);

class LeaderboardShapeTest : public ::testing::Test {
 protected:
  LeaderboardShapeTest()
      : server_(LEADERBOARD_BINARY, redis_.address(),
                {"--claim_min_idle_ms=200", "--rebuild_min_interval_ms=0"}),
        writer_(redis_.address(), org_) {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    admin_ = harness::MintToken(org_, "boss", {"admin"});
  }

  std::string Token(const std::string& who) { return harness::MintToken(org_, who, {"member"}); }

  // subject -> score, every entry of the board as `who` reads it.
  std::map<std::string, int64_t> Scores(const v1::Board& board, const std::string& who = "x") {
    std::map<std::string, int64_t> out;
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = board;
    request.set_page_size(100);
    v1::GetLeaderboardResponse response;
    auto context = harness::Context(Token(who));
    grpc::Status status = stub_->GetLeaderboard(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const auto& e : response.entries()) out[e.subject_id()] = e.score();
    EXPECT_EQ(response.total_entries(), static_cast<int64_t>(out.size()));
    return out;
  }

  v1::GetRankResponse Rank(const v1::Board& board, const std::string& subject,
                           const std::string& who, int neighbors = 0) {
    v1::GetRankRequest request;
    *request.mutable_board() = board;
    request.set_subject_id(subject);
    request.set_neighbors(neighbors);
    v1::GetRankResponse response;
    auto context = harness::Context(Token(who));
    grpc::Status status = stub_->GetRank(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::GetStreaksResponse Streaks(const std::string& person) {
    v1::GetStreaksRequest request;
    request.set_person_id(person);
    v1::GetStreaksResponse response;
    auto context = harness::Context(Token(person));
    EXPECT_TRUE(stub_->GetStreaks(context.get(), request, &response).ok());
    return response;
  }

  void Person(const std::string& id, const std::string& team, bool hidden = false) {
    kudos::v1::KudosEvent event = lbtest::PersonEvent(id, "Name " + id, team);
    event.mutable_person_changed()->mutable_person()->set_hidden_from_leaderboards(hidden);
    writer_.Kudos(event);
  }

  // A kudos as the kudos service writes it: KudosSent and its KUDOS transfers.
  kudos::v1::KudosEvent Send(const std::string& id, const std::string& giver,
                             const std::string& giver_team, const std::vector<Recipient>& to,
                             int64_t points, absl::Time t, bool is_private = false) {
    kudos::v1::KudosEvent sent =
        lbtest::SentEvent(org_, id, giver, giver_team, to, {"teamwork"}, points, t);
    ledger::v1::LedgerEvent posted = lbtest::TransfersEvent(
        org_, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver, to, {"teamwork"}, points, t);
    if (is_private) {
      sent.mutable_kudos_sent()->mutable_kudos()->set_visibility(
          kudos::v1::KUDOS_VISIBILITY_PRIVATE);
      for (auto& transfer : *posted.mutable_transfers_posted()->mutable_transfers()) {
        (*transfer.mutable_tags())["visibility"] = "private";
      }
    }
    writer_.Ledger(posted);
    writer_.Kudos(sent);
    return sent;
  }

  // The ledger's reversal of every transfer of `original` (what the ledger
  // appends for a RETRACTION: the original's tags plus retracts and its post
  // time), posted at `now`.
  ledger::v1::LedgerEvent Reversal(const ledger::v1::LedgerEvent& original, absl::Time now) {
    ledger::v1::LedgerEvent event = original;
    auto* posted = event.mutable_transfers_posted();
    leaderboard::ToProto(now, posted->mutable_post_time());
    for (auto& t : *posted->mutable_transfers()) {
      std::string original_id = t.transfer_id();
      int64_t original_ms = absl::ToUnixMillis(leaderboard::FromProto(t.post_time()));
      t.set_transfer_id("retract:" + original_id);
      std::swap(*t.mutable_debit_account(), *t.mutable_credit_account());
      t.set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
      (*t.mutable_tags())["retracts"] = original_id;
      (*t.mutable_tags())["retracts_post_ms"] = absl::StrCat(original_ms);
      leaderboard::ToProto(now, t.mutable_post_time());
    }
    return event;
  }

  // The consumer applied every entry of both streams (its marks are at their ends).
  bool CaughtUp() {
    auto marks = writer_.pool().Run({"HMGET", leaderboard::MarksKey(org_), "k", "l"});
    if (!marks.ok() || marks->elements.size() != 2) return false;
    const std::string streams[2] = {leaderboard::KudosStream(org_),
                                    leaderboard::LedgerStream(org_)};
    for (int i = 0; i < 2; ++i) {
      auto last = writer_.pool().Run({"XREVRANGE", streams[i], "+", "-", "COUNT", "1"});
      if (!last.ok()) return false;
      if (last->elements.empty()) continue;
      if (marks->elements[i].str != last->elements[0].elements[0].str) return false;
    }
    return true;
  }

  std::map<std::string, std::string> Rebuild() {
    v1::RebuildProjectionsResponse response;
    auto context = harness::Context(admin_);
    grpc::Status status = stub_->RebuildProjections(context.get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return lbtest::DumpProjections(writer_.pool(), org_);
  }

  std::string org_ = "org-" + std::to_string(harness::FreePort());
  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string admin_;
};

// (a) A private kudos and its points count on no board and append no event;
// the giver's and recipient's own streaks still count the day.
TEST_F(LeaderboardShapeTest, PrivateKudos_CountOnNoBoardNorEventButInTheirOwnStreaks) {
  Person("a", "t1");
  Person("b", "t1");
  Person("c", "t2");
  absl::Time now = absl::Now();
  Send("K-private", "a", "t1", {{"b", "t1"}}, 7, now, /*is_private=*/true);
  Send("K-public", "c", "t2", {{"b", "t1"}}, 2, now);
  ASSERT_TRUE(Eventually([&] { return CaughtUp(); }));
  EXPECT_EQ(Scores(kPointsAll), (std::map<std::string, int64_t>{{"b", 2}}));
  EXPECT_EQ(Scores(kReceivedAll), (std::map<std::string, int64_t>{{"b", 1}}));
  EXPECT_EQ(Scores(kGivenAll), (std::map<std::string, int64_t>{{"c", 1}}));
  EXPECT_EQ(Scores(TeamBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_WEEK, "t1")),
            (std::map<std::string, int64_t>{{"b", 2}}));
  EXPECT_FALSE(Rank(kGivenAll, "a", "a").ranked());
  // a gave only privately: still an active day of a's own giving streak.
  absl::CivilDay today = absl::ToCivilDay(now, absl::UTCTimeZone());
  v1::GetStreaksResponse streaks = Streaks("a");
  EXPECT_EQ(streaks.giving().last_active_date().day(), today.day());
  // No badge of a's, and no event names the private kudos.
  auto events = writer_.pool().Run({"XRANGE", "lb:{" + org_ + "}:events", "-", "+"});
  ASSERT_TRUE(events.ok());
  for (const auto& entry : events->elements) {
    absl::StatusOr<v1::LeaderboardEvent> stored =
        common::events::ParseStoredEvent(org_, entry.elements[1].elements[1].str);
    ASSERT_TRUE(stored.ok()) << stored.status();
    const v1::LeaderboardEvent& event = *stored;
    EXPECT_NE(event.badge_earned().cause_kudos_id(), "K-private") << event.event_id();
    EXPECT_NE(event.streak_extended().cause_kudos_id(), "K-private") << event.event_id();
    EXPECT_NE(event.badge_earned().person_id(), "a") << event.event_id();
  }
  std::map<std::string, std::string> live = lbtest::DumpProjections(writer_.pool(), org_);
  EXPECT_EQ(Rebuild(), live);
}

// (b) Hidden people leave everyone else's boards, ranks and totals (ranks
// close up), answer their own GetRank, and come back when they unhide.
TEST_F(LeaderboardShapeTest, HiddenPeople_LeaveOthersBoardsAndRanksAndComeBackWhenUnhidden) {
  for (const char* id : {"a", "b", "c", "d"}) Person(id, "t1");
  absl::Time now = absl::Now();
  Send("K1", "g", "t9", {{"a", "t1"}}, 40, now);
  Send("K2", "g", "t9", {{"b", "t1"}}, 30, now);
  Send("K3", "g", "t9", {{"c", "t1"}}, 30, now);
  Send("K4", "g", "t9", {{"d", "t1"}}, 10, now);
  ASSERT_TRUE(Eventually([&] { return Scores(kPointsAll).size() == 4; }));
  Person("b", "t1", /*hidden=*/true);
  std::map<std::string, int64_t> visible = {{"a", 40}, {"c", 30}, {"d", 10}};
  ASSERT_TRUE(Eventually([&] { return Scores(kPointsAll) == visible; }));
  EXPECT_EQ(Scores(TeamBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_MONTH, "t1")), visible);
  {  // A screen's watch leaves b out too.
    v1::WatchLeaderboardRequest watch;
    *watch.mutable_board() = kPointsAll;
    watch.set_top_n(10);
    auto context = harness::Context(Token("x"), std::chrono::seconds(30));
    auto reader = stub_->WatchLeaderboard(context.get(), watch);
    v1::WatchLeaderboardResponse snapshot;
    ASSERT_TRUE(reader->Read(&snapshot));
    std::map<std::string, int64_t> watched;
    for (const auto& e : snapshot.entries()) watched[e.subject_id()] = e.score();
    EXPECT_EQ(watched, visible);
    context->TryCancel();
  }
  // Paging one at a time walks past the hidden person; ranks close up.
  std::vector<std::pair<std::string, int64_t>> walked;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = kPointsAll;
    request.set_page_size(1);
    request.set_page_token(token);
    v1::GetLeaderboardResponse response;
    auto context = harness::Context(Token("x"));
    ASSERT_TRUE(stub_->GetLeaderboard(context.get(), request, &response).ok());
    for (const auto& e : response.entries()) walked.push_back({e.subject_id(), e.rank()});
    EXPECT_EQ(response.total_entries(), 3);
    token = response.next_page_token();
    if (token.empty()) break;
  }
  EXPECT_EQ(walked, (std::vector<std::pair<std::string, int64_t>>{{"a", 1}, {"c", 2}, {"d", 3}}));
  // Others do not see b ranked; c's neighbours skip b; b sees itself.
  EXPECT_FALSE(Rank(kPointsAll, "b", "a").ranked());
  v1::GetRankResponse of_c = Rank(kPointsAll, "c", "a", 5);
  EXPECT_EQ(of_c.entry().rank(), 2);
  EXPECT_EQ(of_c.total_entries(), 3);
  ASSERT_EQ(of_c.above_size(), 1);
  EXPECT_EQ(of_c.above(0).subject_id(), "a");
  ASSERT_EQ(of_c.below_size(), 1);
  EXPECT_EQ(of_c.below(0).subject_id(), "d");
  v1::GetRankResponse own = Rank(kPointsAll, "b", "b");
  EXPECT_TRUE(own.ranked());
  EXPECT_EQ(own.entry().rank(), 2);
  EXPECT_EQ(own.entry().score(), 30);
  // Points keep counting while hidden; unhidden, b is back with all of them.
  Send("K5", "g", "t9", {{"b", "t1"}}, 5, now);
  std::map<std::string, std::string> live;
  ASSERT_TRUE(Eventually([&] { return CaughtUp(); }));
  EXPECT_EQ(Rank(kPointsAll, "b", "b").entry().score(), 35);
  live = lbtest::DumpProjections(writer_.pool(), org_);
  EXPECT_EQ(Rebuild(), live);
  Person("b", "t1", /*hidden=*/false);
  ASSERT_TRUE(Eventually([&] {
    return Scores(kPointsAll) == std::map<std::string, int64_t>{{"a", 40}, {"b", 35}, {"c", 30},
                                                                {"d", 10}};
  }));
  EXPECT_EQ(Rank(kPointsAll, "b", "a").entry().rank(), 2);
}

// (c) A retraction takes back exactly what its kudos and boost added (counts
// from KudosRetracted, points from the ledger's RETRACTION transfers), in the
// periods of the original times, once: a duplicate append and a replay of
// both streams change nothing, and a rebuild equals the live projection.
TEST_F(LeaderboardShapeTest, Retraction_TakesBackCountsAndPointsInTheOriginalPeriodsOnce) {
  writer_.Kudos(lbtest::TeamEvent("t1", "Team 1"));
  writer_.Kudos(lbtest::TeamEvent("t2", "Team 2"));
  Person("a", "t1");
  Person("b", "t1");
  Person("c", "t2");
  absl::Time now = absl::Now();
  // Another week, day and maybe month; at noon UTC, so the boost an hour
  // later falls in the same day and week whatever the time of the run (a
  // run on a Monday after 23:00 UTC had it cross into the next week).
  absl::Time before = absl::FromUnixSeconds(
      absl::ToUnixSeconds(now - absl::Hours(24 * 8)) / 86400 * 86400 + 12 * 3600);
  Send("K0", "c", "t2", {{"a", "t1"}}, 3, now);
  kudos::v1::KudosEvent sent = Send("K1", "b", "t1", {{"a", "t1"}, {"c", "t2"}}, 5, before);
  ledger::v1::LedgerEvent boost_posted =
      lbtest::TransfersEvent(org_, "K1", "B1", ledger::v1::TRANSFER_KIND_BOOST, "d",
                             {{"a", "t1"}, {"c", "t2"}}, {"teamwork"}, 2, before + absl::Hours(1));
  writer_.Ledger(boost_posted);
  writer_.Kudos(lbtest::BoostedEvent(org_, "K1", "d", {{"a", "t1"}, {"c", "t2"}}, {"teamwork"}, 2,
                                     before + absl::Hours(1)));
  ASSERT_TRUE(Eventually([&] { return Scores(kPointsAll)["a"] == 10; }));
  std::string week_before = common::calendar::PeriodAt(common::calendar::PeriodUnit::kWeek,
                                                       before, absl::UTCTimeZone(), 1)
                                .key;
  v1::Board points_week_before =
      OrgBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_WEEK, week_before);
  EXPECT_EQ(Scores(points_week_before), (std::map<std::string, int64_t>{{"a", 7}, {"c", 7}}));

  // The retraction: the ledger's reversals and the kudos service's event.
  ledger::v1::LedgerEvent kudos_posted = lbtest::TransfersEvent(
      org_, "K1", "K1", ledger::v1::TRANSFER_KIND_KUDOS, "b", {{"a", "t1"}, {"c", "t2"}},
      {"teamwork"}, 5, before);
  writer_.Ledger(Reversal(kudos_posted, now));
  writer_.Ledger(Reversal(boost_posted, now));
  kudos::v1::KudosEvent retracted;
  retracted.set_org_id(org_);
  leaderboard::ToProto(now, retracted.mutable_event_time());
  auto* r = retracted.mutable_kudos_retracted();
  *r->mutable_kudos() = sent.kudos_sent().kudos();
  kudos::v1::Boost* boost = r->mutable_kudos()->add_boosts();
  boost->set_booster_id("d");
  boost->set_points_per_recipient(2);
  leaderboard::ToProto(before + absl::Hours(1), boost->mutable_create_time());
  r->set_giver_team_id("t1");
  *r->mutable_recipient_team_ids() = sent.kudos_sent().recipient_team_ids();
  r->set_retracted_by("boss");
  r->set_reason("abusive");
  writer_.Kudos(retracted);
  writer_.Kudos(retracted);  // the kudos service's retry appends it again

  const std::map<std::string, int64_t> only_k0_received = {{"a", 1}};
  auto settled = [&] {
    return Scores(kPointsAll) == std::map<std::string, int64_t>{{"a", 3}} &&
           Scores(kReceivedAll) == only_k0_received &&
           Scores(kGivenAll) == std::map<std::string, int64_t>{{"c", 1}};
  };
  ASSERT_TRUE(Eventually([&] { return CaughtUp(); }));
  ASSERT_TRUE(settled());
  EXPECT_TRUE(Scores(points_week_before).empty());
  EXPECT_TRUE(Scores(OrgBoard(v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_WEEK, week_before)).empty());
  // Nothing went negative in the current periods.
  EXPECT_EQ(Scores(OrgBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_DAY)),
            (std::map<std::string, int64_t>{{"a", 3}}));
  EXPECT_EQ(Scores(TeamBoard(v1::METRIC_POINTS_RECEIVED, v1::WINDOW_YEAR, "t2")).count("c"), 0u);
  std::map<std::string, std::string> live = lbtest::DumpProjections(writer_.pool(), org_);

  // Every entry delivered again: applied once, nothing moves.
  writer_.ReplayAll();
  Send("K2", "c", "t2", {{"b", "t1"}}, 1, now);
  ASSERT_TRUE(Eventually([&] { return CaughtUp(); }));
  EXPECT_EQ(Scores(kPointsAll), (std::map<std::string, int64_t>{{"a", 3}, {"b", 1}}));
  live = lbtest::DumpProjections(writer_.pool(), org_);
  EXPECT_EQ(Rebuild(), live);
}

}  // namespace
