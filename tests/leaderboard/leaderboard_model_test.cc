// Model-based test: a seeded random history (about 500 kudos, boosts and
// their ledger postings over 60 days across the New York and Paris DST
// changes; 30 people in 4 teams with mixed time zones; ties; holidays and a
// streak freeze; duplicated events; a consumer-group replay; a crash and a
// restart in the middle) is XADDed to the real streams. Then every board,
// rank, streak and badge of the real server is compared with a
// straightforward in-memory model; then RebuildProjections must reproduce
// the very same Redis state, and everything is compared again.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/leaderboard/event_writer.h"

namespace {

namespace v1 = leaderboard::v1;
using absl::CivilDay;
using leaderboard::RankedEntry;
using lbtest::Recipient;

constexpr int kPeople = 30;
constexpr int kTeams = 4;
constexpr int kKudos = 420;
const char* const kOrgZone = "America/New_York";
const std::vector<std::string> kValues = {"teamwork", "empathy", "on-time", "follow-up",
                                          "service"};

struct Item {
  absl::Time time;
  bool boost = false;
  std::string kudos_id;
  std::string giver;  // or booster
  std::string giver_team;
  std::vector<Recipient> recipients;
  std::vector<std::string> values;
  int64_t points = 0;
};

// ------------------------------------------------------------------ model

class Model {
 public:
  explicit Model(const kudos::v1::OrgSettings& settings)
      : calendar_(leaderboard::CalendarFromSettings(settings)) {
    work_.work_days = calendar_.work_days;
    work_.holidays = calendar_.holidays;
    work_.freezes_per_month = calendar_.freezes_per_month;
  }

  std::map<std::string, std::string> zone_of;   // person -> IANA zone ("" = org)
  std::map<std::string, std::string> names;     // person/team -> display name
  std::map<std::string, std::map<std::string, int64_t>> boards;
  std::map<std::string, v1::Board> board_of;   // key -> board request
  std::map<std::string, std::set<CivilDay>> giving_days, receiving_days;
  std::map<std::string, std::map<std::string, int64_t>> badges;  // person -> badge -> unix s

  absl::TimeZone Zone(const std::string& person) const {
    auto it = zone_of.find(person);
    if (it == zone_of.end() || it->second.empty()) return calendar_.zone;
    return *common::calendar::LoadZone(it->second);
  }
  const leaderboard::WorkCalendar& work() const { return work_; }

  void Apply(const Item& item) {
    if (item.boost) {
      for (const Recipient& r : item.recipients) {
        Add(v1::METRIC_POINTS_RECEIVED, r.id, r.team, item.values, item.points, item.time);
      }
      return;
    }
    if (!seen_.insert(item.kudos_id).second) return;  // a duplicate
    int64_t s = absl::ToUnixSeconds(item.time);
    Add(v1::METRIC_KUDOS_GIVEN, item.giver, item.giver_team, item.values, 1, item.time);
    CivilDay giver_day = absl::ToCivilDay(item.time, Zone(item.giver));
    giving_days[item.giver].insert(giver_day);
    int64_t given = ++given_[item.giver];
    Earn(item.giver, "first_kudos_given", s);
    if (given >= 10) Earn(item.giver, "given_10", s);
    if (given >= 50) Earn(item.giver, "given_50", s);
    for (const Recipient& r : item.recipients) {
      Add(v1::METRIC_KUDOS_RECEIVED, r.id, r.team, item.values, 1, item.time);
      Add(v1::METRIC_POINTS_RECEIVED, r.id, r.team, item.values, item.points, item.time);
      receiving_days[r.id].insert(absl::ToCivilDay(item.time, Zone(r.id)));
      int64_t received = ++received_[r.id];
      Earn(r.id, "first_kudos_received", s);
      if (received >= 10) Earn(r.id, "received_10", s);
      if (received >= 50) Earn(r.id, "received_50", s);
      if (received >= 100) Earn(r.id, "received_100", s);
      values_[r.id].insert(item.values.begin(), item.values.end());
      if (std::all_of(calendar_.values.begin(), calendar_.values.end(),
                      [&](const std::string& v) { return values_[r.id].count(v) > 0; })) {
        Earn(r.id, "all_values_received", s);
      }
    }
    std::vector<CivilDay> days(giving_days[item.giver].begin(), giving_days[item.giver].end());
    if (leaderboard::ComputeStreak(days, work_, giver_day).longest >= 20) {
      Earn(item.giver, "giving_streak_20", s);
    }
  }

 private:
  void Earn(const std::string& person, const std::string& badge, int64_t s) {
    badges[person].emplace(badge, s);  // first one wins
  }

  void Add(v1::Metric metric, const std::string& person, const std::string& team,
           const std::vector<std::string>& values, int64_t amount, absl::Time t) {
    for (v1::Window window : leaderboard::AllWindows()) {
      auto period = common::calendar::PeriodAt(leaderboard::WindowUnit(window), t,
                                                calendar_.zone, calendar_.week_start);
      auto add = [&](v1::Scope scope, const std::string& scope_id, const std::string& subject) {
        std::string key = leaderboard::BoardKey("model", metric, window, period.key, scope, scope_id);
        boards[key][subject] += amount;
        v1::Board& board = board_of[key];
        board.set_metric(metric);
        board.set_window(window);
        board.set_scope(scope);
        board.set_scope_id(scope_id);
        board.set_period(period.key);
      };
      add(v1::SCOPE_ORG, "", person);
      if (!team.empty()) {
        add(v1::SCOPE_TEAM, team, person);
        add(v1::SCOPE_TEAMS, "", team);
      }
      for (const std::string& v : values) add(v1::SCOPE_VALUE, v, person);
    }
  }

  leaderboard::OrgCalendar calendar_;
  leaderboard::WorkCalendar work_;
  std::set<std::string> seen_;
  std::map<std::string, int64_t> given_, received_;
  std::map<std::string, std::set<std::string>> values_;
};

// ------------------------------------------------------------------ history

struct History {
  kudos::v1::OrgSettings settings;
  std::vector<std::pair<std::string, std::string>> people;  // id, team
  std::vector<Item> items;
};

History MakeHistory(uint32_t seed, absl::Time now) {
  std::mt19937 rng(seed);
  History h;
  absl::TimeZone org_zone = *common::calendar::LoadZone(kOrgZone);
  CivilDay today = absl::ToCivilDay(now, org_zone);
  CivilDay first = today - 60;
  h.settings = leaderboard::DefaultSettings();
  h.settings.set_time_zone(kOrgZone);
  h.settings.set_week_start(common::v1::DAY_OF_WEEK_SUNDAY);
  h.settings.set_streak_freezes_per_month(1);
  h.settings.clear_values();
  for (const std::string& v : kValues) h.settings.add_values()->set_value_id(v);
  for (CivilDay holiday : {first + 20, first + 41}) {
    auto* d = h.settings.add_holidays();
    d->set_year(static_cast<int32_t>(holiday.year()));
    d->set_month(holiday.month());
    d->set_day(holiday.day());
  }
  for (int i = 0; i < kPeople; ++i) {
    h.people.push_back({absl::StrFormat("u%02d", i), absl::StrCat("t", 1 + i % kTeams)});
  }
  absl::Time begin = common::calendar::StartOfDay(first, org_zone);
  absl::Time end = now - absl::Hours(2);
  int64_t span = absl::ToInt64Seconds(end - begin);
  auto team_of = [&](const std::string& id) {
    for (auto& [p, t] : h.people) {
      if (p == id) return t;
    }
    return std::string();
  };
  auto pick_values = [&] {
    std::vector<std::string> values;
    int n = rng() % 3;  // 0..2 values
    for (int i = 0; i < n; ++i) {
      const std::string& v = kValues[rng() % kValues.size()];
      if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
    }
    return values;
  };
  const int64_t kPoints[] = {1, 2, 3, 5};
  for (int k = 0; k < kKudos; ++k) {
    Item item;
    item.time = begin + absl::Seconds(static_cast<int64_t>(rng() % span));
    item.kudos_id = absl::StrCat("K", k);
    int g = rng() % kPeople;
    item.giver = h.people[g].first;
    int n = 1 + rng() % 3;
    std::set<int> chosen;
    while (static_cast<int>(chosen.size()) < n) {
      int r = rng() % kPeople;
      if (r != g) chosen.insert(r);
    }
    for (int r : chosen) item.recipients.push_back({h.people[r].first, ""});
    item.values = pick_values();
    item.points = kPoints[rng() % 4];
    h.items.push_back(item);
    if (rng() % 10 == 0) {
      Item boost = item;
      boost.boost = true;
      boost.giver = h.people[rng() % kPeople].first;
      boost.points = kPoints[rng() % 4];
      boost.time = item.time + absl::Minutes(1 + rng() % 600);
      if (boost.time < end) h.items.push_back(boost);
    }
  }
  // An enthusiast (u01, org zone) gives every work day at 23:30 local for 26
  // work days across the DST change, skipping one (a freeze) - earns the
  // 4-week giving streak badge.
  leaderboard::WorkCalendar work;
  work.holidays = {first + 20, first + 41};
  int given = 0;
  for (CivilDay day = first + 3; given < 26 && day < today; ++day) {
    if (!work.IsWorkDay(day)) continue;
    ++given;
    if (given == 6) continue;  // the missed day
    Item item;
    item.time = absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), 23, 30, 0),
                                org_zone);
    if (item.time >= end) break;
    item.kudos_id = absl::StrCat("E", given);
    item.giver = "u01";
    item.recipients = {{"u02", ""}};
    item.values = {kValues[given % kValues.size()]};
    item.points = 1;
    h.items.push_back(item);
  }
  std::stable_sort(h.items.begin(), h.items.end(),
                   [](const Item& a, const Item& b) { return a.time < b.time; });
  // Teams as of the time of the event (u05 moves from t2 to t3 halfway).
  absl::Time move = begin + absl::Seconds(span / 2);
  for (Item& item : h.items) {
    auto team = [&](const std::string& id) {
      if (id == "u05" && item.time >= move) return std::string("t3");
      return team_of(id);
    };
    item.giver_team = team(item.giver);
    for (Recipient& r : item.recipients) r.team = team(r.id);
  }
  return h;
}

// ------------------------------------------------------------------ the test

class ModelTest : public ::testing::Test {
 protected:
  ModelTest()
      : server_(LEADERBOARD_BINARY, redis_.address(), {"--claim_min_idle_ms=200"}),
        writer_(redis_.address(), "model") {
    Connect();
    token_ = harness::MintToken("model", "u00", {"member"});
    admin_ = harness::MintToken("model", "admin", {"admin"});
  }

  void Connect() {
    stub_ = v1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
  }

  // Differences between the model's boards and the stored sorted sets.
  std::vector<std::string> RawBoardDiffs(const Model& model) {
    std::vector<std::string> diffs;
    std::vector<common::redis::Command> commands;
    std::vector<std::string> keys;
    // Sub-scope quarter and all-time boards are not stored (BoardDerived):
    // their key must not exist, and they read (Store, as the service does)
    // as the model's board.
    leaderboard::Store store(writer_.pool());
    for (const auto& [key, scores] : model.boards) {
      if (!leaderboard::ParseDerivedBoard(key).has_value()) continue;
      auto exists = writer_.pool().Run({"EXISTS", key});
      if (!exists.ok()) return {exists.status().ToString()};
      if (exists->integer != 0) diffs.push_back("stored derived board " + key);
      auto page = store.FirstPage(key, 1000);
      if (!page.ok()) return {page.status().ToString()};
      std::map<std::string, int64_t> got;
      for (const auto& entry : page->entries) got[entry.subject_id] = entry.score;
      if (got != scores) diffs.push_back(key);
    }
    for (const auto& [key, scores] : model.boards) {
      if (leaderboard::ParseDerivedBoard(key).has_value()) continue;
      std::string real = "lb:{model}" + key.substr(std::string("lb:{model}").size());
      keys.push_back(key);
      commands.push_back({"ZRANGE", real, "0", "-1", "WITHSCORES"});
    }
    auto replies = writer_.pool().Pipeline(commands);
    if (!replies.ok()) return {replies.status().ToString()};
    for (size_t i = 0; i < keys.size(); ++i) {
      std::map<std::string, int64_t> got;
      const auto& reply = (*replies)[i];
      if (!reply.ok()) return {reply.status().ToString()};
      for (size_t j = 0; j + 1 < reply->elements.size(); j += 2) {
        got[reply->elements[j].str] = std::stoll(reply->elements[j + 1].str);
      }
      if (got != model.boards.at(keys[i])) diffs.push_back(keys[i]);
    }
    // No board the model does not know about.
    std::set<std::string> stored;
    std::string cursor = "0";
    do {
      auto scan = writer_.pool().Run({"SCAN", cursor, "MATCH", "lb:{model}:*_*:*", "COUNT", "1000"});
      if (!scan.ok()) return {scan.status().ToString()};
      cursor = scan->elements[0].str;
      for (const auto& k : scan->elements[1].elements) stored.insert(k.str);
    } while (cursor != "0");
    for (const std::string& key : stored) {
      if (model.boards.count(key) == 0) diffs.push_back("unexpected " + key);
    }
    return diffs;
  }

  std::vector<v1::LeaderboardEntry> AllPages(const v1::Board& board, int page_size) {
    std::vector<v1::LeaderboardEntry> all;
    std::string token;
    for (int guard = 0; guard < 100; ++guard) {
      v1::GetLeaderboardRequest request;
      *request.mutable_board() = board;
      request.set_page_size(page_size);
      request.set_page_token(token);
      v1::GetLeaderboardResponse response;
      auto context = harness::Context(token_);
      grpc::Status status = stub_->GetLeaderboard(context.get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_EQ(response.period(), board.window() == v1::WINDOW_ALL_TIME ? "all" : board.period());
      all.insert(all.end(), response.entries().begin(), response.entries().end());
      if (response.next_page_token().empty()) break;
      token = response.next_page_token();
    }
    return all;
  }

  // Boards through the API (ranks, ties, names, paging), ranks, streaks, badges.
  void CompareThroughApi(const Model& model, const std::string& label) {
    SCOPED_TRACE(label);
    int boards = 0;
    for (const auto& [key, scores] : model.boards) {
      const v1::Board& board = model.board_of.at(key);
      // Every board but day boards (a sample of those: every 7th).
      if (board.window() == v1::WINDOW_DAY && std::hash<std::string>()(key) % 7 != 0) continue;
      ++boards;
      std::vector<RankedEntry> want =
          leaderboard::RankEntries({scores.begin(), scores.end()});
      std::vector<v1::LeaderboardEntry> got = AllPages(board, 7);
      ASSERT_EQ(got.size(), want.size()) << key;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].subject_id(), want[i].subject_id) << key << " #" << i;
        ASSERT_EQ(got[i].score(), want[i].score) << key << " #" << i;
        ASSERT_EQ(got[i].rank(), want[i].rank) << key << " #" << i;
        ASSERT_EQ(got[i].display_name(), model.names.at(want[i].subject_id)) << key;
      }
    }
    std::cout << label << ": " << boards << " boards compared through the API\n";
    // Ranks with neighbours on a few boards, for every person.
    std::vector<std::string> rank_boards;
    for (const auto& [key, board] : model.board_of) {
      if (board.scope() == v1::SCOPE_ORG &&
          (board.window() == v1::WINDOW_ALL_TIME || board.window() == v1::WINDOW_MONTH)) {
        rank_boards.push_back(key);
      }
    }
    for (const std::string& key : rank_boards) {
      std::vector<RankedEntry> want = leaderboard::RankEntries(
          {model.boards.at(key).begin(), model.boards.at(key).end()});
      for (int p = 0; p < kPeople; ++p) {
        std::string id = absl::StrFormat("u%02d", p);
        v1::GetRankRequest request;
        *request.mutable_board() = model.board_of.at(key);
        request.set_subject_id(id);
        request.set_neighbors(2);
        v1::GetRankResponse response;
        auto context = harness::Context(token_);
        ASSERT_TRUE(stub_->GetRank(context.get(), request, &response).ok());
        auto it = std::find_if(want.begin(), want.end(),
                               [&](const RankedEntry& e) { return e.subject_id == id; });
        if (it == want.end()) {
          EXPECT_FALSE(response.ranked()) << key << " " << id;
          continue;
        }
        size_t i = it - want.begin();
        ASSERT_TRUE(response.ranked()) << key << " " << id;
        EXPECT_EQ(response.entry().rank(), it->rank);
        EXPECT_EQ(response.entry().score(), it->score);
        ASSERT_EQ(response.above_size(), static_cast<int>(std::min<size_t>(i, 2))) << key << id;
        ASSERT_EQ(response.below_size(), static_cast<int>(std::min<size_t>(want.size() - i - 1, 2)));
        for (int a = 0; a < response.above_size(); ++a) {
          EXPECT_EQ(response.above(a).subject_id(), want[i - response.above_size() + a].subject_id);
        }
        for (int b = 0; b < response.below_size(); ++b) {
          EXPECT_EQ(response.below(b).subject_id(), want[i + 1 + b].subject_id);
        }
        int64_t below = std::count_if(want.begin(), want.end(),
                                      [&](const RankedEntry& e) { return e.score < it->score; });
        EXPECT_DOUBLE_EQ(response.percentile(), 100.0 * below / want.size());
      }
    }
  }

  std::vector<std::string> StreakAndBadgeDiffs(const Model& model) {
    std::vector<std::string> diffs;
    for (int p = 0; p < kPeople; ++p) {
      std::string id = absl::StrFormat("u%02d", p);
      v1::GetStreaksRequest request;
      request.set_person_id(id);
      v1::GetStreaksResponse response;
      auto context = harness::Context(token_);
      grpc::Status status = stub_->GetStreaks(context.get(), request, &response);
      if (!status.ok()) {
        diffs.push_back(id + ": " + status.error_message());
        continue;
      }
      CivilDay today = absl::ToCivilDay(absl::Now(), model.Zone(id));
      for (int kind = 0; kind < 2; ++kind) {
        const auto& sets = kind == 0 ? model.giving_days : model.receiving_days;
        std::vector<CivilDay> days;
        if (sets.count(id)) days.assign(sets.at(id).begin(), sets.at(id).end());
        leaderboard::StreakResult want = leaderboard::ComputeStreak(days, model.work(), today);
        const v1::Streak& got = kind == 0 ? response.giving() : response.receiving();
        std::string what = absl::StrCat(id, kind == 0 ? " giving" : " receiving");
        if (got.current_days() != want.current || got.longest_days() != want.longest ||
            got.freezes_used() != want.freezes_used) {
          diffs.push_back(absl::StrCat(what, ": got ", got.current_days(), "/", got.longest_days(),
                                       " want ", want.current, "/", want.longest));
        }
        if (want.last_active) {
          CivilDay last(got.last_active_date().year(), got.last_active_date().month(),
                        got.last_active_date().day());
          if (last != *want.last_active) diffs.push_back(what + ": last active date");
        }
      }
      v1::ListBadgesRequest badges_request;
      badges_request.set_person_id(id);
      v1::ListBadgesResponse badges;
      context = harness::Context(token_);
      if (!stub_->ListBadges(context.get(), badges_request, &badges).ok()) {
        diffs.push_back(id + ": ListBadges failed");
        continue;
      }
      std::map<std::string, int64_t> got;
      for (const auto& b : badges.badges()) got[b.badge_id()] = b.earn_time().seconds();
      std::map<std::string, int64_t> want;
      if (model.badges.count(id)) want = model.badges.at(id);
      if (got != want) {
        std::vector<std::string> g, w;
        for (auto& [b, s] : got) g.push_back(absl::StrCat(b, "@", s));
        for (auto& [b, s] : want) w.push_back(absl::StrCat(b, "@", s));
        diffs.push_back(absl::StrCat(id, " badges: got ", absl::StrJoin(g, ","), " want ",
                                     absl::StrJoin(w, ",")));
      }
    }
    return diffs;
  }

  std::map<std::string, std::string> Dump() { return lbtest::DumpProjections(writer_.pool(), "model"); }

  harness::RedisServer redis_;
  harness::Service server_;
  lbtest::EventWriter writer_;
  std::unique_ptr<v1::LeaderboardService::Stub> stub_;
  std::string token_;
  std::string admin_;
};

bool WaitUntilEmpty(const std::function<std::vector<std::string>()>& diffs,
                    std::vector<std::string>* last, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    *last = diffs();
    if (last->empty()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_F(ModelTest, RandomHistoryMatchesTheModelAndSurvivesRebuild) {
  uint32_t seed = 20261123;
  if (const char* env = std::getenv("LEADERBOARD_MODEL_SEED")) seed = std::stoul(env);
  std::cout << "seed " << seed << " (set LEADERBOARD_MODEL_SEED to change)\n";
  absl::Time now = absl::Now();
  History history = MakeHistory(seed, now);
  Model model(history.settings);
  std::mt19937 rng(seed + 1);

  // The directory first, like the kudos service does when an org starts.
  writer_.Kudos(lbtest::SettingsEvent(history.settings));
  for (int t = 1; t <= kTeams; ++t) {
    std::string id = absl::StrCat("t", t);
    writer_.Kudos(lbtest::TeamEvent(id, "Team " + id));
    model.names[id] = "Team " + id;
  }
  for (int i = 0; i < kPeople; ++i) {
    const auto& [id, team] = history.people[i];
    std::string zone = i % 3 == 0 ? "Europe/Paris" : i % 3 == 1 ? "" : "UTC";
    if (id == "u01") zone = "";
    writer_.Kudos(lbtest::PersonEvent(id, "Person " + id, team, "", zone));
    model.zone_of[id] = zone;
    model.names[id] = "Person " + id;
  }
  // Wait until the directory is applied (GetStreaks knows the last person).
  std::vector<std::string> diffs;
  ASSERT_TRUE(WaitUntilEmpty(
      [&]() -> std::vector<std::string> {
        v1::GetStreaksRequest request;
        request.set_person_id(absl::StrFormat("u%02d", kPeople - 1));
        v1::GetStreaksResponse response;
        auto context = harness::Context(token_);
        if (stub_->GetStreaks(context.get(), request, &response).ok()) return {};
        return {"directory not applied yet"};
      },
      &diffs, std::chrono::seconds(15)));

  int duplicates = 0, boosts = 0;
  size_t n = history.items.size();
  for (size_t i = 0; i < n; ++i) {
    const Item& item = history.items[i];
    if (i == n / 3) writer_.ReplayAll();  // every entry delivered again
    if (i == n / 2) {
      // u05 moves to t3 (its events already carry the new team), renamed.
      writer_.Kudos(lbtest::PersonEvent("u05", "Renamed u05", "t3", "", "UTC"));
      model.names["u05"] = "Renamed u05";
    }
    if (i == 2 * n / 3) server_.Kill();  // a crash with entries in flight
    if (i == 2 * n / 3 + 40) {
      server_.Start();
      Connect();
    }
    if (item.boost) {
      ++boosts;
      writer_.Kudos(lbtest::BoostedEvent("model", item.kudos_id, item.giver, item.recipients,
                                         item.values, item.points, item.time));
      writer_.Ledger(lbtest::TransfersEvent(
          "model", item.kudos_id, item.kudos_id + ":boost:" + item.giver + absl::StrCat(i),
          ledger::v1::TRANSFER_KIND_BOOST, item.giver, item.recipients, item.values, item.points,
          item.time));
    } else {
      auto sent = lbtest::SentEvent("model", item.kudos_id, item.giver, item.giver_team,
                                    item.recipients, item.values, item.points, item.time);
      auto posted = lbtest::TransfersEvent("model", item.kudos_id, item.kudos_id,
                                           ledger::v1::TRANSFER_KIND_KUDOS, item.giver,
                                           item.recipients, item.values, item.points, item.time);
      writer_.Kudos(sent);
      writer_.Ledger(posted);
      if (rng() % 20 == 0) {  // the producer retried: the same event twice
        writer_.Kudos(sent);
        ++duplicates;
      }
      if (rng() % 20 == 0) {
        writer_.Ledger(posted);
        ++duplicates;
      }
    }
    model.Apply(item);
  }
  // u05's time zone changed to UTC with the rename; the model's days were
  // recorded with the zone in force at each event, like the server's.
  model.zone_of["u05"] = "UTC";
  std::cout << n << " items (" << boosts << " boosts), " << duplicates << " duplicates, "
            << model.boards.size() << " boards\n";

  ASSERT_TRUE(WaitUntilEmpty([&] { return RawBoardDiffs(model); }, &diffs, std::chrono::seconds(40)))
      << diffs.size() << " boards differ, e.g. " << diffs.front();
  ASSERT_TRUE(WaitUntilEmpty([&] { return StreakAndBadgeDiffs(model); }, &diffs,
                             std::chrono::seconds(10)))
      << absl::StrJoin(diffs, "\n");
  CompareThroughApi(model, "live");
  // Sanity: the history exercised what it should.
  EXPECT_EQ(model.badges["u01"].count("giving_streak_20"), 1u);
  EXPECT_GT(model.badges.size(), 20u);

  std::map<std::string, std::string> live = Dump();
  v1::RebuildProjectionsResponse rebuilt;
  auto context = harness::Context(admin_, std::chrono::seconds(60));
  grpc::Status status = stub_->RebuildProjections(context.get(), {}, &rebuilt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::cout << "rebuild: " << rebuilt.events_applied() << " events in " << rebuilt.duration_ms()
            << " ms\n";
  EXPECT_GT(rebuilt.events_applied(), static_cast<int64_t>(n));
  std::map<std::string, std::string> replayed = Dump();
  EXPECT_EQ(live.size(), replayed.size());
  int differing = 0;
  for (const auto& [key, text] : live) {
    auto it = replayed.find(key);
    if (it == replayed.end() || it->second != text) {
      if (++differing <= 5) ADD_FAILURE() << "after rebuild " << key << " differs";
    }
  }
  EXPECT_EQ(differing, 0);
  EXPECT_TRUE(RawBoardDiffs(model).empty());
  EXPECT_TRUE(StreakAndBadgeDiffs(model).empty());
  CompareThroughApi(model, "rebuilt");
}

}  // namespace
