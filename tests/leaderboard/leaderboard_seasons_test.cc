// Issue 18 part 5: seasons. Over gRPC against the real leaderboard_server
// (definitions, joins, bounds, the season's board counting only members'
// events inside [start, end), rebuild = live), and against the library with
// an injected clock (the close: one PeriodClosed with the final top N and
// the prizes posted once, with two closers racing and across a restart).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "absl/time/clock.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_events.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/seasons.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"

namespace {

namespace v1 = leaderboard::v1;
using harness::Eventually;
using lbtest::Recipient;

v1::Season MakeSeason(const std::string& id, absl::Time start, absl::Time end,
                      std::vector<std::string> members = {}, bool teams = false) {
  v1::Season season;
  season.set_season_id(id);
  season.set_display_name("Season " + id);
  leaderboard::ToProto(start, season.mutable_start_time());
  leaderboard::ToProto(end, season.mutable_end_time());
  season.set_participants(teams ? v1::SEASON_PARTICIPANTS_TEAMS : v1::SEASON_PARTICIPANTS_PEOPLE);
  for (const std::string& m : members) season.add_member_ids(m);
  return season;
}

v1::Board SeasonBoard(const std::string& id) {
  v1::Board board;
  board.set_season_id(id);
  return board;
}

class SeasonsServerTest : public ::testing::Test {
 protected:
  SeasonsServerTest()
      : server_(LEADERBOARD_BINARY, redis_.address(),
                {"--claim_min_idle_ms=200", "--rebuild_min_interval_ms=0",
                 "--max_seasons_per_org=4", "--max_season_members=3", "--ledger="}),
        writer_(redis_.address(), org_) {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    admin_ = harness::MintToken(org_, "boss", {"admin"});
  }

  grpc::Status Create(const v1::Season& season, v1::Season* out = nullptr,
                      const std::string& token = "") {
    v1::CreateSeasonRequest request;
    *request.mutable_season() = season;
    v1::CreateSeasonResponse response;
    auto context = harness::Context(token.empty() ? admin_ : token);
    grpc::Status status = stub_->CreateSeason(context.get(), request, &response);
    if (out != nullptr) *out = response.season();
    return status;
  }

  grpc::Status Join(const std::string& id, const std::string& who) {
    v1::JoinSeasonRequest request;
    request.set_season_id(id);
    v1::JoinSeasonResponse response;
    auto context = harness::Context(harness::MintToken(org_, who, {"member"}));
    return stub_->JoinSeason(context.get(), request, &response);
  }

  std::map<std::string, int64_t> Scores(const std::string& season_id,
                                        grpc::Status* status_out = nullptr) {
    v1::GetLeaderboardRequest request;
    *request.mutable_board() = SeasonBoard(season_id);
    request.set_page_size(100);
    v1::GetLeaderboardResponse response;
    auto context = harness::Context(harness::MintToken(org_, "viewer", {"member"}));
    grpc::Status status = stub_->GetLeaderboard(context.get(), request, &response);
    if (status_out != nullptr) *status_out = status;
    std::map<std::string, int64_t> out;
    for (const auto& e : response.entries()) out[e.subject_id()] = e.score();
    return out;
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

  void Send(const std::string& id, const std::string& giver, const std::vector<Recipient>& to,
            int64_t points, absl::Time t) {
    writer_.Ledger(lbtest::TransfersEvent(org_, id, id, ledger::v1::TRANSFER_KIND_KUDOS, giver,
                                          to, {}, points, t));
    writer_.Kudos(lbtest::SentEvent(org_, id, giver, "tg", to, {}, points, t));
  }

  std::string org_ = "org-" + std::to_string(harness::FreePort());
  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string admin_;
};

// People, teams and joined seasons count exactly their members' events of
// [start, end), each in its metric; a rebuild reproduces them.
TEST_F(SeasonsServerTest, Seasons_CountOnlyMembersEventsInsideTheirWindowAndRebuildEqualsLive) {
  absl::Time start = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())) + absl::Hours(1);
  absl::Time end = start + absl::Hours(24);
  ASSERT_TRUE(Create(MakeSeason("people", start, end, {"a", "b"})).ok());
  ASSERT_TRUE(Create(MakeSeason("teams", start, end, {"t1"}, /*teams=*/true)).ok());
  v1::Season joined = MakeSeason("joined", start, end);
  joined.set_join_required(true);
  joined.set_metric(v1::METRIC_KUDOS_RECEIVED);
  ASSERT_TRUE(Create(joined).ok());
  ASSERT_TRUE(Join("joined", "b").ok());
  ASSERT_TRUE(Join("joined", "b").ok());  // again: the first join stands

  Send("K1", "g", {{"a", "t1"}}, 100, start - absl::Minutes(1));  // before: nothing
  Send("K2", "g", {{"a", "t1"}, {"c", "t2"}}, 5, start);          // a, t1 (not c, t2)
  Send("K3", "g", {{"b", "t1"}}, 7, start + absl::Hours(2));      // b, t1, joined b
  Send("K4", "g", {{"a", "t2"}}, 11, end - absl::Seconds(1));     // a, t2: not the team
  Send("K5", "g", {{"b", "t1"}}, 13, end);                        // after: nothing
  std::map<std::string, int64_t> want_people = {{"a", 16}, {"b", 7}};
  ASSERT_TRUE(Eventually([&] { return CaughtUp(); }));
  EXPECT_EQ(Scores("people"), want_people);
  EXPECT_EQ(Scores("teams"), (std::map<std::string, int64_t>{{"t1", 12}}));
  EXPECT_EQ(Scores("joined"), (std::map<std::string, int64_t>{{"b", 1}}));

  // A watch of the season's board streams its standings.
  {
    v1::WatchLeaderboardRequest watch;
    *watch.mutable_board() = SeasonBoard("people");
    watch.set_top_n(5);
    auto watch_context =
        harness::Context(harness::MintToken(org_, "viewer", {"member"}), std::chrono::seconds(30));
    auto reader = stub_->WatchLeaderboard(watch_context.get(), watch);
    v1::WatchLeaderboardResponse snapshot;
    ASSERT_TRUE(reader->Read(&snapshot));
    ASSERT_EQ(snapshot.entries_size(), 2);
    EXPECT_EQ(snapshot.entries(0).subject_id(), "a");
    EXPECT_EQ(snapshot.entries(0).score(), 16);
    EXPECT_EQ(snapshot.period(), "people");
    watch_context->TryCancel();
  }
  // GetRank and the response's period name the season.
  v1::GetRankRequest rank;
  *rank.mutable_board() = SeasonBoard("people");
  rank.set_subject_id("b");
  v1::GetRankResponse ranked;
  auto context = harness::Context(harness::MintToken(org_, "viewer", {"member"}));
  ASSERT_TRUE(stub_->GetRank(context.get(), rank, &ranked).ok());
  EXPECT_EQ(ranked.entry().rank(), 2);
  EXPECT_EQ(ranked.period(), "people");

  std::map<std::string, std::string> live = lbtest::DumpProjections(writer_.pool(), org_);
  v1::RebuildProjectionsResponse rebuilt;
  context = harness::Context(admin_);
  ASSERT_TRUE(stub_->RebuildProjections(context.get(), {}, &rebuilt).ok());
  EXPECT_EQ(lbtest::DumpProjections(writer_.pool(), org_), live);
  EXPECT_EQ(Scores("people"), want_people);

  v1::ListSeasonsResponse listed;
  context = harness::Context(harness::MintToken(org_, "viewer", {"member"}));
  ASSERT_TRUE(stub_->ListSeasons(context.get(), {}, &listed).ok());
  ASSERT_EQ(listed.seasons_size(), 3);
  for (const v1::Season& season : listed.seasons()) {
    EXPECT_EQ(season.state(), v1::SEASON_STATE_SCHEDULED) << season.season_id();
  }
}

// Every bad input and every bound is a clear status.
TEST_F(SeasonsServerTest, Seasons_BadInputsAndBoundsAreClearStatuses) {
  absl::Time start = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())) + absl::Hours(1);
  absl::Time end = start + absl::Hours(24);
  std::string member = harness::MintToken(org_, "m", {"member"});
  EXPECT_EQ(Create(MakeSeason("s1", start, end), nullptr, member).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(Create(MakeSeason("bad id!", start, end)).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create(MakeSeason("past", absl::Now() - absl::Hours(1), end)).error_code(),
            grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create(MakeSeason("backwards", end, start)).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create(MakeSeason("long", start, start + absl::Hours(24 * 367))).error_code(),
            grpc::INVALID_ARGUMENT);
  // Members: at most --max_season_members (3).
  grpc::Status too_many = Create(MakeSeason("big", start, end, {"a", "b", "c", "d"}));
  EXPECT_EQ(too_many.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(too_many.error_message().find("member_ids"), std::string::npos);
  // Prizes: at most 10, people only, each 1..1,000,000.
  v1::Season prizes = MakeSeason("prizes", start, end);
  for (int i = 0; i < 11; ++i) prizes.add_prize_points(10);
  grpc::Status eleven = Create(prizes);
  EXPECT_EQ(eleven.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(eleven.error_message().find("prize_points"), std::string::npos);
  v1::Season team_prizes = MakeSeason("tp", start, end, {}, /*teams=*/true);
  team_prizes.add_prize_points(5);
  EXPECT_EQ(Create(team_prizes).error_code(), grpc::INVALID_ARGUMENT);
  v1::Season zero = MakeSeason("zero", start, end);
  zero.add_prize_points(0);
  EXPECT_EQ(Create(zero).error_code(), grpc::INVALID_ARGUMENT);
  v1::Season team_join = MakeSeason("tj", start, end, {}, /*teams=*/true);
  team_join.set_join_required(true);
  EXPECT_EQ(Create(team_join).error_code(), grpc::INVALID_ARGUMENT);

  // Idempotent by id; another definition under it is ALREADY_EXISTS.
  v1::Season first, again;
  ASSERT_TRUE(Create(MakeSeason("s1", start, end, {"a"}), &first).ok());
  ASSERT_TRUE(Create(MakeSeason("s1", start, end, {"a"}), &again).ok());
  EXPECT_EQ(first.create_time().seconds(), again.create_time().seconds());
  EXPECT_EQ(Create(MakeSeason("s1", start, end, {"b"})).error_code(), grpc::ALREADY_EXISTS);
  // Joins: only where join_required, at most 3 people.
  EXPECT_EQ(Join("s1", "a").error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(Join("nope", "a").error_code(), grpc::NOT_FOUND);
  v1::Season open = MakeSeason("open", start, end);
  open.set_join_required(true);
  ASSERT_TRUE(Create(open).ok());
  for (const char* who : {"p1", "p2", "p3"}) ASSERT_TRUE(Join("open", who).ok()) << who;
  EXPECT_EQ(Join("open", "p4").error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Join("open", "p2").ok());  // a member joining again is fine
  // Seasons per org: at most --max_seasons_per_org (4).
  ASSERT_TRUE(Create(MakeSeason("s3", start, end)).ok());
  ASSERT_TRUE(Create(MakeSeason("s4", start, end)).ok());
  grpc::Status fifth = Create(MakeSeason("s5", start, end));
  EXPECT_EQ(fifth.error_code(), grpc::RESOURCE_EXHAUSTED);
  // Unknown seasons are NOT_FOUND everywhere.
  grpc::Status read;
  Scores("nope", &read);
  EXPECT_EQ(read.error_code(), grpc::NOT_FOUND);
  v1::GetSeasonRequest get;
  get.set_season_id("nope");
  v1::GetSeasonResponse got;
  auto context = harness::Context(member);
  EXPECT_EQ(stub_->GetSeason(context.get(), get, &got).error_code(), grpc::NOT_FOUND);
  // Closed periods: a page is 1..100 entries; a token is a stream position.
  v1::ListPeriodEventsRequest list;
  v1::ListPeriodEventsResponse events;
  list.set_page_size(101);
  context = harness::Context(member);
  EXPECT_EQ(stub_->ListPeriodEvents(context.get(), list, &events).error_code(),
            grpc::INVALID_ARGUMENT);
  list.set_page_size(5);
  list.set_page_token("not-a-position");
  context = harness::Context(member);
  EXPECT_EQ(stub_->ListPeriodEvents(context.get(), list, &events).error_code(),
            grpc::INVALID_ARGUMENT);
  list.clear_page_token();
  context = harness::Context(member);
  ASSERT_TRUE(stub_->ListPeriodEvents(context.get(), list, &events).ok());
  EXPECT_EQ(events.events_size(), 0);
  EXPECT_TRUE(events.next_page_token().empty());
}

// ---------------------------------------------------------------- the close (library)

common::redis::PoolOptions PoolFor(const harness::RedisServer& redis) {
  common::redis::PoolOptions options;
  options.endpoint = {"127.0.0.1", redis.port()};
  options.size = 4;
  return options;
}

// A ledger stand-in: records every PostTransfers; refuses the first `refusals`.
struct FakeLedger {
  std::mutex mu;
  int refusals = 0;
  std::vector<ledger::v1::PostTransfersRequest> calls;
  std::set<std::string> posted;  // transfer ids applied (once each, as the ledger)
  std::map<std::string, int64_t> earned;
  leaderboard::PrizePayer Payer() {
    return [this](const std::string&, const ledger::v1::PostTransfersRequest& request) {
      std::lock_guard<std::mutex> lock(mu);
      calls.push_back(request);
      if (refusals > 0) {
        --refusals;
        return absl::UnavailableError("ledger away");
      }
      for (const auto& t : request.transfers()) {
        if (posted.insert(t.transfer_id()).second) {
          earned[t.credit_account().person_id()] += t.amount();
        }
      }
      return absl::OkStatus();
    };
  }
};

struct Replica {
  Replica(const harness::RedisServer& redis, const std::string& name, FakeLedger& ledger)
      : pool(PoolFor(redis)),
        store(pool),
        seasons(pool, leaderboard::SeasonLimits{}),
        projector(store, Rebuild()),
        closer(store, seasons, ledger.Payer(), /*top_n=*/2, /*max_len=*/1000, absl::Minutes(5)) {
    store.set_seasons(&seasons);
    leaderboard::ConsumerOptions options;
    options.endpoint = {"127.0.0.1", redis.port()};
    options.consumer_name = name;
    options.block = std::chrono::milliseconds(50);
    options.org_refresh = std::chrono::milliseconds(50);
    options.events.enabled = true;
    options.events.sweep_interval = absl::Hours(24);  // the test runs the closes itself
    consumer = std::make_unique<leaderboard::Consumer>(store, projector, options, nullptr);
  }
  static leaderboard::RebuildOptions Rebuild() {
    leaderboard::RebuildOptions options;
    options.min_interval = std::chrono::milliseconds(0);
    return options;
  }
  common::redis::Pool pool;
  leaderboard::Store store;
  leaderboard::SeasonStore seasons;
  leaderboard::Projector projector;
  leaderboard::SeasonCloser closer;
  std::unique_ptr<leaderboard::Consumer> consumer;
};

std::vector<v1::LeaderboardEvent> PeriodEvents(common::redis::Pool& pool, const std::string& org) {
  std::vector<v1::LeaderboardEvent> out;
  auto reply = pool.Run({"XRANGE", leaderboard::EventsStream(org), "-", "+"});
  EXPECT_TRUE(reply.ok());
  if (!reply.ok()) return out;
  for (const auto& entry : leaderboard::ParseEntries(*reply)) {
    v1::LeaderboardEvent event;
    EXPECT_TRUE(event.ParseFromString(entry.event));
    if (event.has_period_closed()) out.push_back(event);
  }
  return out;
}

// The close waits for the consumer's position to pass the end + grace; then
// two closers racing write one PeriodClosed with the final standings and
// post the prizes the record names (ties share a rank and its prize) until
// the ledger takes them, once; a restarted replica closes and pays nothing.
TEST(SeasonsCloseTest, Seasons_CloseOnceWithTheFinalTopNAndPayPrizesOnceAcrossReplicasAndRestarts) {
  harness::RedisServer redis;
  std::string org = "org-" + std::to_string(harness::FreePort());
  lbtest::EventWriter writer(redis.address(), org);
  FakeLedger ledger;
  ledger.refusals = 1;
  auto one = std::make_unique<Replica>(redis, "one", ledger);
  Replica two(redis, "two", ledger);
  absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  absl::Time start = now + absl::Minutes(1), end = start + absl::Hours(1);
  v1::Season season = MakeSeason("spring", start, end);
  season.add_prize_points(100);
  season.add_prize_points(50);
  ASSERT_TRUE(one->seasons.Create(org, season, now).ok());
  one->consumer->Start();
  // a 9, b 4, c 4, d 1: b and c share rank 2 and its prize; d wins nothing.
  int n = 0;
  for (const auto& [who, points] : std::vector<std::pair<std::string, int64_t>>{
           {"a", 9}, {"b", 4}, {"c", 4}, {"d", 1}}) {
    std::string id = absl::StrCat("K", ++n);
    writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                         {{who, "t"}}, {}, points, start + absl::Minutes(n)));
  }
  std::string board = leaderboard::SeasonBoardKey(org, "spring", false);
  ASSERT_TRUE(Eventually([&] {
    auto card = one->pool.Run({"ZCARD", board});
    return card.ok() && card->integer == 4;
  }));
  one->consumer->Stop();

  // Not before the position passes end + grace.
  auto early = one->closer.RunOnce(org, end + absl::Hours(1), end + absl::Minutes(4));
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->closed, 0);
  EXPECT_TRUE(PeriodEvents(one->pool, org).empty());

  // Two replicas at once: one close, one event; the first payment is refused.
  absl::Time later = end + absl::Minutes(6);
  std::vector<absl::StatusOr<leaderboard::SeasonCloser::Result>> results(2);
  std::thread racer([&] { results[0] = one->closer.RunOnce(org, later, later); });
  results[1] = two.closer.RunOnce(org, later, later);
  racer.join();
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(results[0]->closed + results[1]->closed, 1);
  std::vector<v1::LeaderboardEvent> events = PeriodEvents(one->pool, org);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_id(), "period.closed/season/spring");
  const v1::PeriodClosed& closed = events[0].period_closed();
  EXPECT_EQ(closed.board().season_id(), "spring");
  EXPECT_EQ(closed.total_entries(), 4);
  ASSERT_EQ(closed.entries_size(), 3);  // the top 2 and the tie at the last prized rank
  EXPECT_EQ(closed.entries(0).subject_id(), "a");
  EXPECT_EQ(closed.entries(2).rank(), 2);
  std::map<std::string, int64_t> prizes;
  for (const auto& prize : closed.prizes()) {
    prizes[prize.subject_id()] = prize.points();
    EXPECT_EQ(prize.transfer_id(),
              absl::StrCat("season:spring:", prize.rank(), ":", prize.subject_id()));
  }
  EXPECT_EQ(prizes, (std::map<std::string, int64_t>{{"a", 100}, {"b", 50}, {"c", 50}}));

  // Every call names the same transfers; the ledger applied each once.
  one.reset();  // a restart
  Replica three(redis, "three", ledger);
  for (int sweep = 0; sweep < 3; ++sweep) {
    auto again = three.closer.RunOnce(org, later + absl::Minutes(sweep), later);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->closed, 0);
  }
  EXPECT_EQ(PeriodEvents(three.pool, org).size(), 1u);
  {
    std::lock_guard<std::mutex> lock(ledger.mu);
    EXPECT_EQ(ledger.earned, prizes);
    ASSERT_GE(ledger.calls.size(), 2u);  // refused once, then taken
    for (const auto& call : ledger.calls) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(call, ledger.calls[0]));
      EXPECT_TRUE(call.linked());
      for (const auto& t : call.transfers()) {
        EXPECT_EQ(t.kind(), ledger::v1::TRANSFER_KIND_SEASON_PRIZE);
        EXPECT_EQ(t.debit_account().type(), ledger::v1::ACCOUNT_TYPE_ISSUER);
      }
    }
  }
  size_t calls_when_paid = ledger.calls.size();
  auto after_paid = three.closer.RunOnce(org, later + absl::Hours(1), later + absl::Hours(1));
  ASSERT_TRUE(after_paid.ok());
  EXPECT_EQ(ledger.calls.size(), calls_when_paid);  // paid: never posted again
  absl::StatusOr<v1::Season> stored = three.seasons.Get(org, "spring", later);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->state(), v1::SEASON_STATE_CLOSED);
  EXPECT_EQ(stored->prizes_size(), 3);
}

// End to end: a real ledger pays the prizes of a season the real server
// closes on its own sweep; ListPeriodEvents and GetSeason show the close.
TEST(SeasonsLedgerTest, Seasons_TheServerClosesASeasonAndTheLedgerPaysItsPrizesOnce) {
  harness::RedisServer redis;
  std::string org = "org-" + std::to_string(harness::FreePort());
  harness::Service ledger(LEDGER_BINARY, redis.address());
  harness::Service server(LEADERBOARD_BINARY, redis.address(),
                          {"--ledger=" + ledger.address(), "--lb_events_sweep_interval_s=1",
                           "--lb_events_close_grace_s=0"});
  lbtest::EventWriter writer(redis.address(), org);
  auto stub = v1::LeaderboardService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  std::string admin = harness::MintToken(org, "boss", {"admin"});
  absl::Time start = absl::Now() + absl::Seconds(2), end = start + absl::Seconds(2);
  v1::Season season = MakeSeason("sprint", start, end);
  season.add_prize_points(100);
  season.add_prize_points(40);
  v1::CreateSeasonRequest create;
  *create.mutable_season() = season;
  v1::CreateSeasonResponse created;
  auto context = harness::Context(admin);
  ASSERT_TRUE(stub->CreateSeason(context.get(), create, &created).ok());
  int n = 0;
  for (const auto& [who, points] :
       std::vector<std::pair<std::string, int64_t>>{{"a", 9}, {"b", 4}, {"c", 1}}) {
    std::string id = absl::StrCat("K", ++n);
    writer.Ledger(lbtest::TransfersEvent(org, id, id, ledger::v1::TRANSFER_KIND_KUDOS, "g",
                                         {{who, "t"}}, {}, points, start + absl::Milliseconds(n)));
  }
  auto state = [&] {
    v1::GetSeasonRequest get;
    get.set_season_id("sprint");
    v1::GetSeasonResponse got;
    auto ctx = harness::Context(admin);
    return stub->GetSeason(ctx.get(), get, &got).ok() ? got.season() : v1::Season();
  };
  ASSERT_TRUE(Eventually([&] { return state().state() == v1::SEASON_STATE_CLOSED; },
                         std::chrono::seconds(60)));
  auto ledger_stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(ledger.address(), grpc::InsecureChannelCredentials()));
  auto earned = [&](const std::string& person) {
    ledger::v1::GetBalanceRequest request;
    request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    ledger::v1::GetBalanceResponse response;
    auto ctx = harness::Context(admin);
    grpc::Status status = ledger_stub->GetBalance(ctx.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.balance();
  };
  EXPECT_EQ(earned("a"), 100);
  EXPECT_EQ(earned("b"), 40);
  EXPECT_EQ(earned("c"), 0);
  v1::Season closed = state();
  ASSERT_EQ(closed.prizes_size(), 2);
  EXPECT_EQ(closed.final_entries(0).subject_id(), "a");
  v1::ListPeriodEventsRequest list;
  v1::ListPeriodEventsResponse events;
  context = harness::Context(harness::MintToken(org, "viewer", {"member"}));
  ASSERT_TRUE(stub->ListPeriodEvents(context.get(), list, &events).ok());
  int seasons = 0;
  for (const auto& event : events.events()) {
    if (event.period_closed().board().season_id() == "sprint") ++seasons;
  }
  EXPECT_EQ(seasons, 1);
}

}  // namespace
