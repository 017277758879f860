// Unit tests of the leaderboard's pure domain: rank math, page tokens, board
// resolution, streaks on civil dates (weekends, holidays, freezes, DST) and
// the translation of events into apply plans (scopes, badges, dedupe).
#include "services/leaderboard/leaderboard_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/leaderboard/leaderboard_watch.h"

namespace leaderboard {
namespace {

using absl::CivilDay;

absl::TimeZone Zone(const char* name) { return *common::calendar::LoadZone(name); }

// ---------------------------------------------------------------- ranks

TEST(RankTest, TiesShareRankAndSkipTheNext) {
  auto ranked = RankEntries({{"d", 5}, {"b", 7}, {"c", 5}, {"a", 9}, {"e", 1}});
  std::vector<RankedEntry> want = {
      {1, "a", 9}, {2, "b", 7}, {3, "c", 5}, {3, "d", 5}, {5, "e", 1}};
  EXPECT_EQ(ranked, want);
}

TEST(RankTest, AllTiedAreAllFirstOrderedById) {
  auto ranked = RankEntries({{"z", 3}, {"m", 3}, {"a", 3}});
  ASSERT_EQ(ranked.size(), 3u);
  for (const auto& e : ranked) EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(ranked[0].subject_id, "a");
  EXPECT_EQ(ranked[2].subject_id, "z");
}

TEST(RankTest, TieOrderIsBytewiseNotLocale) {
  auto ranked = RankEntries({{"b", 1}, {"B", 1}, {"a", 1}, {"_", 1}});
  EXPECT_EQ(ranked[0].subject_id, "B");  // 'B' (66) < '_' (95) < 'a' (97) < 'b'
  EXPECT_EQ(ranked[1].subject_id, "_");
  EXPECT_EQ(ranked[2].subject_id, "a");
}

TEST(RankTest, EmptyAndSingle) {
  EXPECT_TRUE(RankEntries({}).empty());
  auto one = RankEntries({{"x", 0}});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].rank, 1);
}

TEST(RankTest, RankIsOnePlusStrictlyGreaterOnRandomBoards) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::pair<std::string, int64_t>> scores;
    int n = rng() % 40;
    for (int i = 0; i < n; ++i) scores.push_back({"p" + std::to_string(i), rng() % 6});
    auto ranked = RankEntries(scores);
    for (const auto& e : ranked) {
      int64_t greater = std::count_if(scores.begin(), scores.end(),
                                      [&](const auto& s) { return s.second > e.score; });
      EXPECT_EQ(e.rank, greater + 1);
    }
  }
}

TEST(RankTest, Percentile) {
  EXPECT_DOUBLE_EQ(Percentile(0, 0), 0);
  EXPECT_DOUBLE_EQ(Percentile(3, 4), 75);
  EXPECT_DOUBLE_EQ(Percentile(0, 4), 0);
}

// ---------------------------------------------------------------- tokens

TEST(PageTokenTest, RoundTrips) {
  for (char dir : {'f', 'F', 'b', 'B'}) {
    PageToken token{dir, -42, "user.1_x-y", "2026-W48", "lb:{acme}:points_received:week:2026-W48:org"};
    absl::StatusOr<PageToken> back = DecodePageToken(EncodePageToken(token));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->direction, dir);
    EXPECT_EQ(back->score, -42);
    EXPECT_EQ(back->subject_id, "user.1_x-y");
    EXPECT_EQ(back->period, "2026-W48");
    EXPECT_EQ(back->board_key, token.board_key);
  }
}

TEST(PageTokenTest, MalformedIsInvalidArgument) {
  for (const char* bad : {"", "!!!", "djE=", "abc", "djF8eHwxfGF8cHxr"}) {
    absl::StatusOr<PageToken> token = DecodePageToken(bad);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  std::string good = EncodePageToken(PageToken{'f', 1, "a", "all", "k"});
  std::string tampered = good;
  tampered[2] = tampered[2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(DecodePageToken(tampered).ok());
}

// ---------------------------------------------------------------- boards

TEST(BoardTest, KeysFollowTheLayout) {
  EXPECT_EQ(BoardKey("acme", v1::METRIC_POINTS_RECEIVED, v1::WINDOW_WEEK, "2026-W48",
                     v1::SCOPE_ORG, ""),
            "lb:{acme}:points_received:week:2026-W48:org");
  EXPECT_EQ(BoardKey("acme", v1::METRIC_KUDOS_GIVEN, v1::WINDOW_DAY, "2026-11-23",
                     v1::SCOPE_TEAM, "t1"),
            "lb:{acme}:kudos_given:day:2026-11-23:team:t1");
  EXPECT_EQ(BoardKey("acme", v1::METRIC_KUDOS_RECEIVED, v1::WINDOW_ALL_TIME, "all",
                     v1::SCOPE_VALUE, "teamwork"),
            "lb:{acme}:kudos_received:all:all:value:teamwork");
  EXPECT_EQ(BoardKey("acme", v1::METRIC_POINTS_RECEIVED, v1::WINDOW_QUARTER, "2026-Q4",
                     v1::SCOPE_TEAMS, ""),
            "lb:{acme}:points_received:quarter:2026-Q4:teams");
}

TEST(BoardTest, SubScopeQuartersAndAllTimeBoardsAreDerived) {
  EXPECT_FALSE(BoardDerived(v1::WINDOW_QUARTER, v1::SCOPE_ORG));
  EXPECT_FALSE(BoardDerived(v1::WINDOW_ALL_TIME, v1::SCOPE_ORG));
  EXPECT_TRUE(BoardDerived(v1::WINDOW_QUARTER, v1::SCOPE_TEAM));
  EXPECT_TRUE(BoardDerived(v1::WINDOW_ALL_TIME, v1::SCOPE_TEAMS));
  EXPECT_FALSE(BoardDerived(v1::WINDOW_YEAR, v1::SCOPE_VALUE));
  EXPECT_FALSE(ParseDerivedBoard("lb:{acme}:points_received:quarter:2026-Q4:org").has_value());
  EXPECT_FALSE(ParseDerivedBoard("lb:{acme}:points_received:month:2026-11:team:t1").has_value());
  EXPECT_FALSE(ParseDerivedBoard("lb:{acme}:points_received:quarter:2026-11:team:t1").has_value());
  auto quarter = ParseDerivedBoard("lb:{acme}:kudos_given:quarter:2026-Q1:team:t:1");
  ASSERT_TRUE(quarter.has_value());
  EXPECT_EQ(quarter->org, "acme");
  EXPECT_EQ(quarter->scope, "team:t:1");
  EXPECT_EQ(quarter->sources, (std::vector<std::string>{
                                  "lb:{acme}:kudos_given:month:2026-01:team:t:1",
                                  "lb:{acme}:kudos_given:month:2026-02:team:t:1",
                                  "lb:{acme}:kudos_given:month:2026-03:team:t:1"}));
  auto all = ParseDerivedBoard("lb:{acme}:points_received:all:all:value:teamwork");
  ASSERT_TRUE(all.has_value());
  EXPECT_TRUE(all->sources.empty());
  EXPECT_EQ(all->YearBoard("2025"), "lb:{acme}:points_received:year:2025:value:teamwork");
  EXPECT_EQ(DerivedCacheKey("lb:{acme}:points_received:all:all:teams"),
            "lbcache:{acme}:z:points_received:all:all:teams");
  EXPECT_EQ(DerivedVersionKey("lb:{acme}:points_received:all:all:teams"),
            "lbcache:{acme}:v:points_received:all:all:teams");
}

TEST(BoardTest, ResolvesCurrentAndNamedPeriodsInTheOrgZone) {
  OrgCalendar calendar;
  calendar.zone = Zone("Europe/Paris");
  calendar.week_start = 7;  // Sunday
  v1::Board board;
  board.set_metric(v1::METRIC_POINTS_RECEIVED);
  board.set_window(v1::WINDOW_DAY);
  board.set_scope(v1::SCOPE_ORG);
  // 23:30 UTC on Nov 22 is Nov 23 in Paris.
  absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 22, 23, 30, 0), absl::UTCTimeZone());
  auto resolved = ResolveBoard("acme", board, calendar, now);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->period.key, "2026-11-23");
  board.set_window(v1::WINDOW_WEEK);
  board.set_period("2026-W47");
  resolved = ResolveBoard("acme", board, calendar, now);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(common::calendar::DayOfWeekNumber(resolved->period.first_day), 7);
  board.set_window(v1::WINDOW_ALL_TIME);
  board.set_period("whatever");  // ignored
  resolved = ResolveBoard("acme", board, calendar, now);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->key, "lb:{acme}:points_received:all:all:org");
}

TEST(BoardTest, RejectsBadBoards) {
  OrgCalendar calendar;
  absl::Time now = absl::Now();
  v1::Board board;
  EXPECT_EQ(ResolveBoard("o", board, calendar, now).status().code(),
            absl::StatusCode::kInvalidArgument);
  board.set_metric(v1::METRIC_KUDOS_GIVEN);
  board.set_window(v1::WINDOW_MONTH);
  board.set_scope(v1::SCOPE_TEAM);
  EXPECT_FALSE(ResolveBoard("o", board, calendar, now).ok());  // team needs an id
  board.set_scope_id("bad:id");
  EXPECT_FALSE(ResolveBoard("o", board, calendar, now).ok());
  board.set_scope_id("t1");
  EXPECT_TRUE(ResolveBoard("o", board, calendar, now).ok());
  board.set_period("2026-13");
  EXPECT_FALSE(ResolveBoard("o", board, calendar, now).ok());
  board.set_period("2026-W48");  // a week key on a month board
  EXPECT_FALSE(ResolveBoard("o", board, calendar, now).ok());
  board.set_period("");
  board.set_scope(v1::SCOPE_ORG);
  EXPECT_FALSE(ResolveBoard("o", board, calendar, now).ok());  // org takes no id
}

TEST(BoardTest, RetentionByWindow) {
  auto period = common::calendar::PeriodOfDay(common::calendar::PeriodUnit::kDay,
                                              CivilDay(2026, 11, 23), absl::UTCTimeZone(), 1);
  EXPECT_EQ(*BoardExpiry(v1::WINDOW_DAY, period), period.end + absl::Hours(24 * 90));
  EXPECT_FALSE(BoardExpiry(v1::WINDOW_YEAR, period).has_value());
  EXPECT_FALSE(BoardExpiry(v1::WINDOW_ALL_TIME, period).has_value());
  EXPECT_GT(*BoardExpiry(v1::WINDOW_QUARTER, period), *BoardExpiry(v1::WINDOW_WEEK, period));
  // A month lives as long as its quarter (sub-scope quarters are its sum).
  auto month = common::calendar::PeriodOfDay(common::calendar::PeriodUnit::kMonth,
                                             CivilDay(2026, 10, 5), absl::UTCTimeZone(), 1);
  auto quarter = common::calendar::PeriodOfDay(common::calendar::PeriodUnit::kQuarter,
                                               CivilDay(2026, 10, 5), absl::UTCTimeZone(), 1);
  EXPECT_EQ(*BoardExpiry(v1::WINDOW_MONTH, month), *BoardExpiry(v1::WINDOW_QUARTER, quarter));
  month = common::calendar::PeriodOfDay(common::calendar::PeriodUnit::kMonth,
                                        CivilDay(2026, 12, 5), absl::UTCTimeZone(), 1);
  EXPECT_EQ(*BoardExpiry(v1::WINDOW_MONTH, month), *BoardExpiry(v1::WINDOW_QUARTER, quarter));
}

v1::Board ScopedBoard(v1::Scope scope, const std::string& scope_id) {
  v1::Board board;
  board.set_metric(v1::METRIC_POINTS_RECEIVED);
  board.set_window(v1::WINDOW_WEEK);
  board.set_scope(scope);
  board.set_scope_id(scope_id);
  return board;
}

TEST(BoardTest, ScopeKnown_UnknownTeamOrValueIsNotFound) {
  OrgCalendar calendar = CalendarFromSettings(DefaultSettings());
  std::set<std::string> teams = {"core"};
  EXPECT_TRUE(CheckScopeKnown(ScopedBoard(v1::SCOPE_TEAM, "core"), calendar, teams).ok());
  EXPECT_TRUE(CheckScopeKnown(ScopedBoard(v1::SCOPE_VALUE, "teamwork"), calendar, teams).ok());
  EXPECT_TRUE(CheckScopeKnown(ScopedBoard(v1::SCOPE_ORG, ""), calendar, teams).ok());
  EXPECT_TRUE(CheckScopeKnown(ScopedBoard(v1::SCOPE_TEAMS, ""), calendar, teams).ok());
  absl::Status team = CheckScopeKnown(ScopedBoard(v1::SCOPE_TEAM, "nope"), calendar, teams);
  EXPECT_EQ(team.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(team.message().find("board.scope_id: team 'nope'"), std::string::npos)
      << team.message();
  absl::Status value = CheckScopeKnown(ScopedBoard(v1::SCOPE_VALUE, "core"), calendar, teams);
  EXPECT_EQ(value.code(), absl::StatusCode::kNotFound);  // a team id is not a value
  EXPECT_NE(value.message().find("value 'core'"), std::string::npos) << value.message();
}

TEST(BoardTest, WatchablePeriod_IsTheCurrentOrThePreviousOne) {
  OrgCalendar calendar;
  calendar.zone = Zone("Europe/Paris");
  calendar.week_start = 7;  // Sunday
  // Wednesday 2026-11-25, 10:00 UTC.
  absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 25, 10, 0, 0), absl::UTCTimeZone());
  auto check = [&](v1::Window window, const std::string& period) {
    v1::Board board = ScopedBoard(v1::SCOPE_ORG, "");
    board.set_window(window);
    board.set_period(period);
    return CheckWatchablePeriod(board, calendar, now);
  };
  EXPECT_TRUE(check(v1::WINDOW_DAY, "").ok());
  EXPECT_TRUE(check(v1::WINDOW_DAY, "2026-11-25").ok());
  EXPECT_TRUE(check(v1::WINDOW_DAY, "2026-11-24").ok());
  EXPECT_TRUE(check(v1::WINDOW_MONTH, "2026-10").ok());
  EXPECT_TRUE(check(v1::WINDOW_YEAR, "2025").ok());
  EXPECT_TRUE(check(v1::WINDOW_ALL_TIME, "anything").ok());  // the period is ignored
  for (const auto& [window, period] : std::vector<std::pair<v1::Window, std::string>>{
           {v1::WINDOW_DAY, "2026-11-23"},   // two days ago
           {v1::WINDOW_DAY, "2026-11-26"},   // tomorrow
           {v1::WINDOW_DAY, "1970-01-01"},
           {v1::WINDOW_MONTH, "2026-09"},
           {v1::WINDOW_QUARTER, "2027-Q1"},
           {v1::WINDOW_YEAR, "2024"}}) {
    absl::Status status = check(window, period);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << period;
    EXPECT_NE(status.message().find("board.period: '" + period + "'"), std::string::npos)
        << status.message();
  }
}

// ---------------------------------------------------------------- watch rounds

// One org with many dirty boards cannot delay another org's board: a round
// of the notifier refreshes at most one hub per org.
TEST(WatchRoundTest, FairRound_ServesEveryOrgBeforeAnyOrgsSecondHub) {
  auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  std::vector<RefreshCandidate> due;
  for (int i = 0; i < 200; ++i) {
    due.push_back({"a-noisy|" + std::to_string(i), "a-noisy", /*urgent=*/true, t0});
  }
  due.push_back({"b-quiet|0", "b-quiet", /*urgent=*/false, t0});
  std::vector<std::string> round = FairRound(due);
  ASSERT_EQ(round.size(), 2u);
  EXPECT_NE(std::find(round.begin(), round.end(), "b-quiet|0"), round.end());
}

TEST(WatchRoundTest, FairRound_WithinAnOrgUrgentFirstThenLeastRecentlyRefreshed) {
  auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  std::vector<RefreshCandidate> due = {
      {"o|recent", "o", false, t0 + std::chrono::seconds(5)},
      {"o|stale", "o", false, t0},
      {"p|stale", "p", false, t0},
      {"p|new", "p", true, t0 + std::chrono::seconds(9)},
  };
  std::vector<std::string> round = FairRound(due);
  ASSERT_EQ(round.size(), 2u);
  EXPECT_EQ(round[0], "p|new");  // a new watcher waits for its first snapshot
  EXPECT_EQ(round[1], "o|stale");
  // Every hub of a busy org is reached: refreshing the chosen one makes the
  // others the stalest.
  std::set<std::string> served;
  for (int i = 0; i < 4 && served.size() < 2; ++i) {
    std::vector<RefreshCandidate> org_o = {
        {"o|a", "o", false, served.count("o|a") ? t0 + std::chrono::seconds(1) : t0},
        {"o|b", "o", false, served.count("o|b") ? t0 + std::chrono::seconds(1) : t0}};
    for (const std::string& id : FairRound(org_o)) served.insert(id);
  }
  EXPECT_EQ(served.size(), 2u);
}

// ---------------------------------------------------------------- streaks

std::vector<CivilDay> Days(std::initializer_list<CivilDay> days) { return days; }

// 2026-11-02 is a Monday.
const CivilDay kMon(2026, 11, 2);

TEST(StreakTest, NoActivity) {
  StreakResult s = ComputeStreak({}, WorkCalendar{}, kMon);
  EXPECT_EQ(s.current, 0);
  EXPECT_EQ(s.longest, 0);
  EXPECT_FALSE(s.last_active.has_value());
}

TEST(StreakTest, WeekendDoesNotBreak) {
  // Thu, Fri, (Sat, Sun off), Mon, Tue.
  WorkCalendar cal;
  auto days = Days({kMon - 4, kMon - 3, kMon, kMon + 1});
  StreakResult s = ComputeStreak(days, cal, kMon + 1);
  EXPECT_EQ(s.current, 4);
  EXPECT_EQ(s.longest, 4);
  EXPECT_EQ(*s.last_active, kMon + 1);
}

TEST(StreakTest, TodayWithoutActivityKeepsTheStreakCurrent) {
  WorkCalendar cal;
  auto days = Days({kMon, kMon + 1, kMon + 2});
  EXPECT_EQ(ComputeStreak(days, cal, kMon + 3).current, 3);  // Thursday, nothing yet
  EXPECT_EQ(ComputeStreak(days, cal, kMon + 4).current, 0);  // Friday: Thursday was missed
  EXPECT_EQ(ComputeStreak(days, cal, kMon + 4).longest, 3);
  // On Saturday and Sunday after a full week the streak is still current.
  auto week = Days({kMon, kMon + 1, kMon + 2, kMon + 3, kMon + 4});
  EXPECT_EQ(ComputeStreak(week, cal, kMon + 5).current, 5);
  EXPECT_EQ(ComputeStreak(week, cal, kMon + 6).current, 5);
  EXPECT_EQ(ComputeStreak(week, cal, kMon + 7).current, 5);  // next Monday, not over yet
  EXPECT_EQ(ComputeStreak(week, cal, kMon + 8).current, 0);
}

TEST(StreakTest, WeekendActivityNeitherCountsNorBreaks) {
  WorkCalendar cal;
  auto days = Days({kMon - 3, kMon - 2, kMon - 1, kMon});  // Fri, Sat, Sun, Mon
  StreakResult s = ComputeStreak(days, cal, kMon);
  EXPECT_EQ(s.current, 2);
  // Only weekend activity: no streak, but a last active date.
  s = ComputeStreak(Days({kMon - 2}), cal, kMon - 1);
  EXPECT_EQ(s.current, 0);
  EXPECT_EQ(*s.last_active, kMon - 2);
}

TEST(StreakTest, HolidaysDoNotBreak) {
  WorkCalendar cal;
  cal.holidays = {kMon + 2};  // Wednesday off
  auto days = Days({kMon, kMon + 1, kMon + 3});
  StreakResult s = ComputeStreak(days, cal, kMon + 3);
  EXPECT_EQ(s.current, 3);
  // Without the holiday the missed Wednesday breaks it.
  EXPECT_EQ(ComputeStreak(days, WorkCalendar{}, kMon + 3).current, 1);
}

TEST(StreakTest, CustomWorkWeek) {
  WorkCalendar cal;
  cal.work_days = {7, 1, 2, 3, 4};  // Sunday..Thursday
  // Thu, (Fri, Sat off), Sun, Mon.
  auto days = Days({kMon - 4, kMon - 1, kMon});
  EXPECT_EQ(ComputeStreak(days, cal, kMon).current, 3);
  // With the default week the Friday is missed.
  EXPECT_EQ(ComputeStreak(days, WorkCalendar{}, kMon).current, 1);
}

TEST(StreakTest, FreezesForgiveMissedDaysPerMonth) {
  WorkCalendar cal;
  cal.freezes_per_month = 1;
  // Mon, (Tue missed), Wed, Thu, (Fri missed), Mon.
  auto days = Days({kMon, kMon + 2, kMon + 3, kMon + 7});
  StreakResult s = ComputeStreak(days, cal, kMon + 7);
  EXPECT_EQ(s.current, 1);  // second miss in November breaks it
  EXPECT_EQ(s.longest, 3);
  cal.freezes_per_month = 2;
  s = ComputeStreak(days, cal, kMon + 7);
  EXPECT_EQ(s.current, 4);
  EXPECT_EQ(s.freezes_used, 2);
}

TEST(StreakTest, FreezeBudgetResetsWithTheCalendarMonth) {
  WorkCalendar cal;
  cal.freezes_per_month = 1;
  // Thu Oct 29 active, Fri Oct 30 missed (October freeze), Mon Nov 2 missed
  // (November freeze), Tue Nov 3 active.
  auto days = Days({CivilDay(2026, 10, 29), CivilDay(2026, 11, 3)});
  StreakResult s = ComputeStreak(days, cal, CivilDay(2026, 11, 3));
  EXPECT_EQ(s.current, 2);
  EXPECT_EQ(s.freezes_used, 1);  // only November's counts this month
}

TEST(StreakTest, FreezesAreNotSpentWithoutAStreak) {
  WorkCalendar cal;
  cal.freezes_per_month = 1;
  // Mon active, Tue+Wed missed -> broken (one freeze spent on Tue); Thu active,
  // Fri missed -> November's only freeze is gone -> broken.
  auto days = Days({kMon, kMon + 3});
  StreakResult s = ComputeStreak(days, cal, kMon + 7);
  EXPECT_EQ(s.current, 0);
  EXPECT_EQ(s.longest, 1);
}

TEST(StreakTest, FutureDatesAreIgnored) {
  auto days = Days({kMon, kMon + 1, kMon + 30});
  StreakResult s = ComputeStreak(days, WorkCalendar{}, kMon + 1);
  EXPECT_EQ(s.current, 2);
  EXPECT_EQ(*s.last_active, kMon + 1);
}

TEST(StreakTest, LongestAcrossBreaks) {
  WorkCalendar cal;
  std::vector<CivilDay> days;
  for (int i = 0; i < 5; ++i) days.push_back(kMon + i);        // 5
  for (int i = 7; i < 9; ++i) days.push_back(kMon + i);        // 2 (after a full week: 7 total)
  for (int i = 14 + 1; i < 14 + 4; ++i) days.push_back(kMon + i);  // Tue..Thu, Monday missed
  StreakResult s = ComputeStreak(days, cal, kMon + 17);
  EXPECT_EQ(s.longest, 7);
  EXPECT_EQ(s.current, 3);
}

// Without freezes, an independent definition: the current streak counts
// active work days walking back from today (today may be pending) until a
// missed work day; the longest is the longest run of active work days
// between missed ones. Freezes can only lengthen streaks.
TEST(StreakTest, MatchesANaiveDefinitionOnRandomHistories) {
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    WorkCalendar cal;
    CivilDay first(2026, 9, 1);
    CivilDay today = first + 40 + rng() % 40;
    for (int h = 0; h < 3; ++h) cal.holidays.insert(first + rng() % 80);
    if (rng() % 3 == 0) cal.work_days = {1, 2, 3, 4, 5, 6};
    std::vector<CivilDay> active;
    int density = 1 + rng() % 9;  // out of 10
    for (CivilDay d = first; d <= today + 3; ++d) {
      if (static_cast<int>(rng() % 10) < density) active.push_back(d);
    }
    std::set<CivilDay> set(active.begin(), active.end());
    // Naive current.
    int current = 0;
    for (CivilDay d = today; d >= first; --d) {
      if (!cal.IsWorkDay(d)) continue;
      if (set.count(d)) {
        ++current;
      } else if (d != today) {
        break;
      }
    }
    // Naive longest.
    int longest = 0, run = 0;
    for (CivilDay d = first; d <= today; ++d) {
      if (!cal.IsWorkDay(d)) continue;
      if (set.count(d)) {
        longest = std::max(longest, ++run);
      } else if (d != today) {
        run = 0;
      }
    }
    StreakResult got = ComputeStreak(active, cal, today);
    ASSERT_EQ(got.current, current) << "round " << round;
    ASSERT_EQ(got.longest, longest) << "round " << round;
    ASSERT_EQ(got.freezes_used, 0);
    for (int freezes = 1; freezes <= 3; ++freezes) {
      cal.freezes_per_month = freezes;
      StreakResult frozen = ComputeStreak(active, cal, today);
      EXPECT_GE(frozen.current, current) << "round " << round;
      EXPECT_GE(frozen.longest, longest) << "round " << round;
      EXPECT_LE(frozen.freezes_used, freezes);
    }
  }
}

// A person who gives at the same local time every work day across a
// daylight-saving change (New York: Nov 1 / Mar 8 2026, Paris: Oct 25 / Mar 29).
void ExpectDstSafe(const char* zone_name, CivilDay first, int work_days_wanted, int hour, int minute) {
  absl::TimeZone zone = Zone(zone_name);
  std::vector<CivilDay> days;
  std::vector<CivilDay> naive;  // dividing UTC timestamps by a day: wrong
  CivilDay day = first;
  CivilDay last = first;
  int counted = 0;
  WorkCalendar cal;
  while (counted < work_days_wanted) {
    if (cal.IsWorkDay(day)) {
      absl::Time t = absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), hour, minute, 0), zone);
      days.push_back(absl::ToCivilDay(t, zone));
      naive.push_back(absl::ToCivilDay(t, absl::UTCTimeZone()));
      ++counted;
      last = day;
    }
    ++day;
  }
  StreakResult s = ComputeStreak(days, cal, last);
  EXPECT_EQ(s.current, work_days_wanted) << zone_name;
  if (hour == 0 || hour >= 20) {
    EXPECT_NE(days, naive) << zone_name;  // naive UTC dates shift
  }
}

TEST(StreakTest, DaylightSavingNeverBreaks) {
  ExpectDstSafe("America/New_York", CivilDay(2026, 10, 19), 20, 23, 30);
  ExpectDstSafe("Europe/Paris", CivilDay(2026, 10, 12), 20, 0, 30);
  ExpectDstSafe("America/New_York", CivilDay(2026, 3, 2), 20, 23, 30);  // spring forward Mar 8
  // 02:30 on Mar 29 does not exist in Paris; the day still counts once.
  ExpectDstSafe("Europe/Paris", CivilDay(2026, 3, 16), 20, 2, 30);
}

// ---------------------------------------------------------------- events

kudos::v1::KudosEvent Sent(const std::string& id, const std::string& giver,
                           std::vector<std::string> recipients, std::vector<std::string> values,
                           absl::Time t) {
  kudos::v1::KudosEvent event;
  auto* sent = event.mutable_kudos_sent();
  auto* k = sent->mutable_kudos();
  k->set_kudos_id(id);
  k->set_giver_id(giver);
  for (auto& r : recipients) {
    k->add_recipient_ids(r);
    (*sent->mutable_recipient_team_ids())[r] = "t-" + r;
  }
  for (auto& v : values) k->add_values(v);
  sent->set_giver_team_id("t-" + giver);
  ToProto(t, k->mutable_create_time());
  return event;
}

bool HasOp(const ApplyPlan& plan, const std::vector<std::string>& op_with_key_names) {
  // op_with_key_names: op code, key name, then the remaining args verbatim.
  for (size_t i = 1; i + op_with_key_names.size() <= plan.args.size(); ++i) {
    if (plan.args[i] != op_with_key_names[0]) continue;
    int idx = 0;
    if (!absl::SimpleAtoi(plan.args[i + 1], &idx) || idx < 1 ||
        idx > static_cast<int>(plan.keys.size()) ||
        plan.keys[idx - 1] != op_with_key_names[1]) {
      continue;
    }
    bool same = true;
    for (size_t j = 2; j < op_with_key_names.size(); ++j) {
      if (plan.args[i + j] != op_with_key_names[j]) same = false;
    }
    if (same) return true;
  }
  return false;
}

// Issue 18 part 3: a kudos from the company (a celebration) has no giver;
// its recipient's received counts and the CELEBRATION transfer's points
// count, nothing is counted for a giver; its retraction takes back only the
// recipient's count.
TEST(PlanTest, KudosFromTheCompanyCountsItsRecipientAndNoGiver) {
  OrgCalendar cal = CalendarFromSettings(DefaultSettings());
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 23, 10, 0, 0), absl::UTCTimeZone());
  kudos::v1::KudosEvent event = Sent("C1", "", {"r"}, {}, t);
  event.mutable_kudos_sent()->mutable_kudos()->set_from_company(true);
  ApplyPlan plan = PlanKudosEvent("o", "k:1-0", event, cal, [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_received:all:all:org", "r", "1", "0"}));
  EXPECT_TRUE(HasOp(plan, {"N", "lb:{o}:badges:r", "first_kudos_received"}));
  EXPECT_TRUE(
      HasOp(plan, {"S", "lb:{o}:days:receiving:r", DayMember(absl::CivilDay(2026, 11, 23))}));
  for (const std::string& key : plan.keys) {
    EXPECT_EQ(key.find("kudos_given"), std::string::npos) << key;
    EXPECT_EQ(key.find(":giving:"), std::string::npos) << key;
  }
  EXPECT_TRUE(plan.streak_checks.empty());
  EXPECT_TRUE(PeopleOfEvent(event) == std::vector<std::string>({"r"}));

  kudos::v1::KudosEvent retracted;
  ToProto(t, retracted.mutable_event_time());
  *retracted.mutable_kudos_retracted()->mutable_kudos() = event.kudos_sent().kudos();
  ApplyPlan back = PlanKudosEvent("o", "k:2-0", retracted, cal, [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(back, {"Z", "lb:{o}:kudos_received:all:all:org", "r", "-1", "0"}));
  for (const std::string& key : back.keys) EXPECT_EQ(key.find("kudos_given"), std::string::npos);

  ledger::v1::LedgerEvent posted;
  ledger::v1::Transfer* transfer = posted.mutable_transfers_posted()->add_transfers();
  transfer->set_transfer_id("celebration:birthday:2026:r");
  transfer->set_kind(ledger::v1::TRANSFER_KIND_CELEBRATION);
  transfer->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ISSUER);
  transfer->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  transfer->mutable_credit_account()->set_person_id("r");
  transfer->set_amount(25);
  ToProto(t, transfer->mutable_post_time());
  ApplyPlan points = PlanLedgerEvent("o", "l:1-0", posted, cal);
  EXPECT_TRUE(HasOp(points, {"Z", "lb:{o}:points_received:all:all:org", "r", "25", "0"}));
}

TEST(PlanTest, KudosSentUpdatesEveryScopeAndWindow) {
  OrgCalendar cal = CalendarFromSettings(DefaultSettings());
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 23, 10, 0, 0), absl::UTCTimeZone());
  ApplyPlan plan = PlanKudosEvent("o", "k:1-0", Sent("K1", "g", {"r1", "r2", "r1"}, {"teamwork"}, t),
                                  cal, [](const std::string&) { return ""; });
  EXPECT_EQ(plan.keys[0], "lb:{o}:hwm");  // issue 15: marks, not an applied set
  EXPECT_EQ(plan.args[0], "k:1-0");
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:week:2026-W48:org", "g", "1"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:day:2026-11-23:team:t-g", "g", "1"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:month:2026-11:teams", "t-g", "1"}));
  // Sub-scope quarter and all-time boards are derived on read (BoardDerived):
  // written are their sources, the month and year boards; watchers of the
  // derived boards still learn they moved.
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_received:month:2026-11:value:teamwork", "r2", "1"}));
  EXPECT_FALSE(HasOp(plan, {"Z", "lb:{o}:kudos_received:quarter:2026-Q4:value:teamwork", "r2", "1"}));
  EXPECT_TRUE(HasOp(plan, {"S", "lb:{o}:years", "2026"}));
  for (const char* derived : {"lb:{o}:kudos_received:quarter:2026-Q4:value:teamwork",
                              "lb:{o}:kudos_given:all:all:team:t-g",
                              "lb:{o}:kudos_received:all:all:teams"}) {
    EXPECT_EQ(std::find(plan.keys.begin(), plan.keys.end(), derived), plan.keys.end()) << derived;
    EXPECT_NE(std::find(plan.touched_boards.begin(), plan.touched_boards.end(), derived),
              plan.touched_boards.end())
        << derived;
  }
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_received:all:all:org", "r1", "1", "0"}));
  EXPECT_TRUE(HasOp(plan, {"S", "lb:{o}:days:giving:g", DayMember(absl::CivilDay(2026, 11, 23))}));
  EXPECT_TRUE(HasOp(plan, {"N", "lb:{o}:badges:r1", "first_kudos_received"}));
  // r1 listed twice counts once: 6 windows of org, 4 of team, teams and value
  // (quarter and all-time derived) for each of two recipients.
  int received_ops = 0;
  for (size_t i = 1; i + 1 < plan.args.size(); ++i) {
    if (plan.args[i] == "Z" && plan.keys[std::stoi(plan.args[i + 1]) - 1].find("kudos_received") !=
                                   std::string::npos) {
      ++received_ops;
    }
  }
  EXPECT_EQ(received_ops, 2 * (6 + 3 * 4));
  ASSERT_EQ(plan.streak_checks.size(), 1u);
  EXPECT_EQ(plan.streak_checks[0].day, CivilDay(2026, 11, 23));
  EXPECT_EQ(plan.keys[1], "lbctl:{o}:rebuild");
  EXPECT_EQ(plan.args[1], "");  // the rebuild token slot
  EXPECT_EQ(plan.args[2], "G");
  EXPECT_EQ(plan.args[3], "kudos:K1");
}

// Applied ids are spread over kGuardBuckets zsets per stream by FNV-1a of
// the id: a stored key's name depends on it, so the hash is pinned here.
// Issue 15 (memory): -(unix seconds) now, the entry's ms before; both read
// as seconds, floored (also before 1970), and a cut is the floored seconds.
TEST(KeysTest, GuardScoresAreNegatedSecondsAndGuardsWrittenInMsReadAsSeconds) {
  EXPECT_EQ(leaderboard::GuardScore(1700000000999), -1700000000);
  EXPECT_EQ(leaderboard::GuardSeconds(-1700000000.0), 1700000000);
  EXPECT_EQ(leaderboard::GuardSeconds(1700000000999.0), 1700000000);
  EXPECT_EQ(leaderboard::GuardSeconds(0.0), 0);
  EXPECT_EQ(leaderboard::GuardCutSeconds(1700000000999), 1700000000);
  EXPECT_EQ(leaderboard::GuardCutSeconds(-1), -1);
  EXPECT_EQ(leaderboard::GuardCutSeconds(-1000), -1);
  EXPECT_EQ(leaderboard::GuardCutSeconds(-1001), -2);
}

TEST(KeysTest, GuardKeySpreadsIdsOverBucketsByAPinnedHash) {
  EXPECT_EQ(GuardBucket(""), 69);  // 0x811c9dc5 mod 128
  EXPECT_EQ(GuardBucket("a"), 44);
  EXPECT_EQ(GuardKey("o", 'k', "kudos:K1"), "lb:{o}:seen:k:51");  // bucket 81
  EXPECT_EQ(LegacyGuardKey("o", 'k'), "lb:{o}:seen:k");
  std::vector<int> counts(kGuardBuckets, 0);
  for (int i = 0; i < 10000; ++i) ++counts[GuardBucket(absl::StrCat("kudos:", i))];
  EXPECT_GT(*std::min_element(counts.begin(), counts.end()), 40);  // mean 78
  EXPECT_LT(*std::max_element(counts.begin(), counts.end()), 120);
}

// Issue 15 (memory): a guard stores the kudos id of its logical id packed
// into 12 bytes behind a kind byte; every other logical id as its text.
TEST(KeysTest, GuardMemberPacksTheKudosIdOfEachKindAndKeepsEveryOtherIdAsItIs) {
  const std::string id = "k0123456789abcdef01234567";
  const std::string bytes = absl::HexStringToBytes("0123456789abcdef01234567");
  EXPECT_EQ(GuardMember("kudos:" + id), "\x01" + bytes);
  EXPECT_EQ(GuardMember("retracted:" + id), "\x02" + bytes);
  EXPECT_EQ(GuardMember("transfer:" + id + ":p00391"), "\x03" + bytes + ":p00391");
  EXPECT_EQ(GuardMember("transfer:" + id), "\x03" + bytes);
  const std::vector<std::string> others = {"kudos:K1", "transfer:T1:r", "kudos:k0123456789ABCDEF01234567",
                                           "kudos:k0123456789abcdef0123456", "boost:" + id,
                                           "transfer:x" + id, "kudos:", ""};
  for (const std::string& other : others) {
    EXPECT_EQ(GuardMember(other), other);
  }
  // Distinct logical ids stay distinct members (the kind byte, the rest kept).
  std::set<std::string> members;
  for (const char* kind : {"kudos:", "retracted:", "transfer:"}) {
    for (const char* rest : {"", ":r", ":p1", "0"}) members.insert(GuardMember(kind + id + rest));
  }
  EXPECT_EQ(members.size(), 12u);
}

// Issue 18: a retraction's counts leave the periods of the kudos' time; its
// points leave those of the reversed transfer's post time (retracts_post_ms),
// never the reversal's own.
TEST(PlanTest, RetractionsSubtractInTheOriginalPeriods) {
  OrgCalendar cal = CalendarFromSettings(DefaultSettings());
  absl::Time sent = absl::FromCivil(absl::CivilSecond(2026, 11, 2, 10, 0, 0), absl::UTCTimeZone());
  absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 23, 10, 0, 0), absl::UTCTimeZone());
  kudos::v1::KudosEvent retracted;
  ToProto(now, retracted.mutable_event_time());
  *retracted.mutable_kudos_retracted()->mutable_kudos() =
      Sent("K1", "g", {"r"}, {}, sent).kudos_sent().kudos();
  ApplyPlan counts = PlanKudosEvent("o", "k:9-0", retracted, cal,
                                    [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(counts, {"Z", "lb:{o}:kudos_given:day:2026-11-02:org", "g", "-1"}));
  EXPECT_TRUE(HasOp(counts, {"Z", "lb:{o}:kudos_received:week:2026-W45:org", "r", "-1"}));
  // Once: a long guard of its own on the kudos id.
  EXPECT_NE(std::find(counts.args.begin(), counts.args.end(), "retracted:K1"), counts.args.end());
  EXPECT_NE(std::find(counts.keys.begin(), counts.keys.end(),
                      leaderboard::GuardKey("o", 'r', "retracted:K1")),
            counts.keys.end());
  for (const std::string& key : counts.keys) {
    EXPECT_EQ(key.find("points_received"), std::string::npos) << key;  // points: the ledger's
  }
  ledger::v1::LedgerEvent reversal;
  ToProto(now, reversal.mutable_transfers_posted()->mutable_post_time());
  ledger::v1::Transfer* t = reversal.mutable_transfers_posted()->add_transfers();
  t->set_transfer_id("R1");
  t->set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
  t->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  t->mutable_debit_account()->set_person_id("r");
  t->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  t->mutable_credit_account()->set_person_id("g");
  t->set_amount(5);
  ToProto(now, t->mutable_post_time());
  (*t->mutable_tags())["retracts"] = "K1:r";
  (*t->mutable_tags())["retracts_post_ms"] = absl::StrCat(absl::ToUnixMillis(sent));
  ApplyPlan points = PlanLedgerEvent("o", "l:9-0", reversal, cal);
  EXPECT_TRUE(HasOp(points, {"Z", "lb:{o}:points_received:day:2026-11-02:org", "r", "-5"}));
  EXPECT_FALSE(HasOp(points, {"Z", "lb:{o}:points_received:day:2026-11-23:org", "r", "-5"}));
  // A private kudos' transfers (and their reversals) move no board.
  (*t->mutable_tags())["visibility"] = "private";
  EXPECT_TRUE(PlanLedgerEvent("o", "l:9-0", reversal, cal).empty());
}

// Issue 18: a season counts its members' events of [start, end) only; a
// joined person from their join time on; a teams season counts teams.
TEST(PlanTest, SeasonsCountMembersInsideTheirWindow) {
  absl::Time start = absl::FromUnixSeconds(1800000000), end = start + absl::Hours(24);
  SeasonDef people;
  people.id = "s";
  people.start = start;
  people.end = end;
  people.members = {"a"};
  people.expiry = "1900000000";
  EXPECT_TRUE(people.Counts("a", start));
  EXPECT_FALSE(people.Counts("a", start - absl::Seconds(1)));
  EXPECT_FALSE(people.Counts("a", end));
  EXPECT_FALSE(people.Counts("b", start));
  SeasonDef joined = people;
  joined.members.clear();
  joined.join_required = true;
  joined.joined_ms["b"] = absl::ToUnixMillis(start + absl::Hours(1));
  EXPECT_FALSE(joined.Counts("b", start));
  EXPECT_TRUE(joined.Counts("b", start + absl::Hours(1)));
  EXPECT_FALSE(joined.Counts("a", start + absl::Hours(2)));
  SeasonDef everyone = people;
  everyone.members.clear();
  EXPECT_TRUE(everyone.Counts("anyone", start));

  OrgCalendar cal = CalendarFromSettings(DefaultSettings());
  auto set = std::make_shared<SeasonSet>();
  set->seasons = {people};
  SeasonDef teams = people;
  teams.id = "t";
  teams.teams = true;
  teams.members = {"t1"};
  set->seasons.push_back(teams);
  cal.seasons = set;
  ApplyPlan plan = PlanLedgerEvent("o", "l:1-0", [&] {
    ledger::v1::LedgerEvent event;
    ledger::v1::Transfer* t = event.mutable_transfers_posted()->add_transfers();
    t->set_transfer_id("T1");
    t->set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
    t->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    t->mutable_credit_account()->set_person_id("a");
    t->set_amount(3);
    (*t->mutable_tags())["team"] = "t1";
    ToProto(start + absl::Minutes(5), t->mutable_post_time());
    return event;
  }(), cal);
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:season:s:people", "a", "3", "1900000000"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:season:t:teams", "t1", "3", "1900000000"}));
}

TEST(PlanTest, StreakDaysUseThePersonsZone) {
  OrgCalendar cal;  // UTC org
  // 02:00 UTC Nov 23 is still Nov 22 in New York.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 23, 2, 0, 0), absl::UTCTimeZone());
  ApplyPlan plan = PlanKudosEvent("o", "k:1-0", Sent("K", "g", {"r"}, {}, t), cal,
                                  [](const std::string& p) {
                                    return p == "g" ? "America/New_York" : "";
                                  });
  EXPECT_TRUE(HasOp(plan, {"S", "lb:{o}:days:giving:g", DayMember(absl::CivilDay(2026, 11, 22))}));
  EXPECT_TRUE(
      HasOp(plan, {"S", "lb:{o}:days:receiving:r", DayMember(absl::CivilDay(2026, 11, 23))}));
  // Boards follow the org's zone.
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:day:2026-11-23:org", "g", "1"}));
}

TEST(PlanTest, BoardsFollowTheOrgZoneAndWeekStart) {
  kudos::v1::OrgSettings settings = DefaultSettings();
  settings.set_time_zone("America/New_York");
  settings.set_week_start(common::v1::DAY_OF_WEEK_SUNDAY);
  OrgCalendar cal = CalendarFromSettings(settings);
  // Sunday Nov 22 2026 22:00 in New York = Monday 03:00 UTC.
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 22, 22, 0, 0), cal.zone);
  ApplyPlan plan = PlanKudosEvent("o", "k:1-0", Sent("K", "g", {"r"}, {}, t), cal,
                                  [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:day:2026-11-22:org", "g", "1"}));
  auto week = common::calendar::PeriodOfDay(common::calendar::PeriodUnit::kWeek,
                                            CivilDay(2026, 11, 22), cal.zone, 7);
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:kudos_given:week:" + week.key + ":org", "g", "1"}));
}

TEST(PlanTest, AllValuesBadgeListsTheCatalog) {
  kudos::v1::OrgSettings settings = DefaultSettings();
  settings.clear_values();
  settings.add_values()->set_value_id("a");
  settings.add_values()->set_value_id("b");
  OrgCalendar cal = CalendarFromSettings(settings);
  ApplyPlan plan = PlanKudosEvent("o", "k:1-0", Sent("K", "g", {"r"}, {"a"}, absl::Now()), cal,
                                  [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(plan, {"V", "lb:{o}:badges:r", "all_values_received"}));
  auto it = std::find(plan.args.begin(), plan.args.end(), "all_values_received");
  ASSERT_NE(it, plan.args.end());
  // Each value as (ValueMember, its id): sets written before hold the id.
  EXPECT_EQ(*(it + 3), "4");
  EXPECT_EQ(*(it + 4), ValueMember("a"));
  EXPECT_EQ(*(it + 5), "a");
  EXPECT_EQ(*(it + 6), ValueMember("b"));
  EXPECT_EQ(*(it + 7), "b");
  // The values set gets the member, not the id.
  EXPECT_TRUE(HasOp(plan, {"S", "lb:{o}:values:r", ValueMember("a")}));
}

// Stored members (issue 15, memory): both are integers, so Redis keeps the
// sets intsets; both are pinned, since sets already stored hold them.
TEST(PlanTest, DayAndValueMembersAreStableIntegersAndParseDayReadsBothDayForms) {
  EXPECT_EQ(DayMember(CivilDay(1970, 1, 1)), "0");
  EXPECT_EQ(DayMember(CivilDay(2026, 11, 30)), "20787");
  for (const char* text : {"20787", "2026-11-30"}) {
    absl::StatusOr<CivilDay> day = ParseDay(text);
    ASSERT_TRUE(day.ok()) << text;
    EXPECT_EQ(*day, CivilDay(2026, 11, 30)) << text;
  }
  for (const char* bad : {"", "12345678", "2026-11", "-5", "1e3", "2026-11-30x"}) {
    EXPECT_FALSE(ParseDay(bad).ok()) << bad;
  }
  EXPECT_EQ(ValueMember("teamwork"), "194783240793753");
  EXPECT_EQ(ValueMember(""), "172505283306277");  // FNV-1a's offset basis, 48 bits
  EXPECT_NE(ValueMember("teamwork"), ValueMember("empathy"));
  uint64_t number = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ValueMember("teamwork"), &number));
  EXPECT_LT(number, uint64_t{1} << 48);
}

TEST(PlanTest, LedgerTransfersCountOnlyKudosAndBoostCredits) {
  OrgCalendar cal;
  ledger::v1::LedgerEvent event;
  auto* posted = event.mutable_transfers_posted();
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 11, 23, 10, 0, 0), absl::UTCTimeZone());
  auto add = [&](const char* id, ledger::v1::TransferKind kind, const char* person, int64_t amount) {
    auto* tr = posted->add_transfers();
    tr->set_transfer_id(id);
    tr->set_kind(kind);
    tr->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    tr->mutable_credit_account()->set_person_id(person);
    tr->set_amount(amount);
    (*tr->mutable_tags())["team"] = "t1";
    (*tr->mutable_tags())["values"] = "teamwork,empathy,,teamwork";
    ToProto(t, tr->mutable_post_time());
  };
  add("T1", ledger::v1::TRANSFER_KIND_KUDOS, "r1", 5);
  add("T2", ledger::v1::TRANSFER_KIND_BOOST, "r2", 3);
  add("T3", ledger::v1::TRANSFER_KIND_ADJUSTMENT, "r3", 100);
  ApplyPlan plan = PlanLedgerEvent("o", "l:1-0", event, cal);
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:points_received:week:2026-W48:org", "r1", "5"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:points_received:year:2026:team:t1", "r2", "3"}));
  EXPECT_FALSE(HasOp(plan, {"Z", "lb:{o}:points_received:all:all:teams", "t1", "5"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:points_received:year:2026:teams", "t1", "5"}));
  EXPECT_TRUE(HasOp(plan, {"Z", "lb:{o}:points_received:month:2026-11:value:empathy", "r1", "5"}));
  for (const std::string& arg : plan.args) EXPECT_NE(arg, "r3");
  EXPECT_NE(std::find(plan.args.begin(), plan.args.end(), "transfer:T1"), plan.args.end());
  EXPECT_NE(std::find(plan.args.begin(), plan.args.end(), "transfer:T2"), plan.args.end());
}

TEST(PlanTest, DirectoryEventsAndBoostsAreSafe) {
  OrgCalendar cal;
  kudos::v1::KudosEvent boosted;
  boosted.mutable_kudos_boosted()->set_kudos_id("K");
  EXPECT_TRUE(PlanKudosEvent("o", "k:1-0", boosted, cal, [](const std::string&) { return ""; })
                  .touched_boards.empty());
  kudos::v1::KudosEvent person;
  person.mutable_person_changed()->mutable_person()->set_person_id("p1");
  ApplyPlan plan = PlanKudosEvent("o", "k:2-0", person, cal, [](const std::string&) { return ""; });
  EXPECT_TRUE(HasOp(plan, {"H", "lb:{o}:dir:people", "p1"}));
  kudos::v1::KudosEvent evil;
  evil.mutable_person_changed()->mutable_person()->set_person_id("a:b*");
  plan = PlanKudosEvent("o", "k:3-0", evil, cal, [](const std::string&) { return ""; });
  EXPECT_TRUE(plan.empty());
}

TEST(BadgeTest, KnownBadges) {
  for (const char* id : {"first_kudos_given", "first_kudos_received", "received_10", "received_50",
                         "received_100", "given_10", "given_50", "all_values_received",
                         "giving_streak_20"}) {
    EXPECT_NE(FindBadge(id), nullptr) << id;
  }
  EXPECT_EQ(FindBadge("nope"), nullptr);
}

}  // namespace
}  // namespace leaderboard
