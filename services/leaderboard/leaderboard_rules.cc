#include "services/leaderboard/leaderboard_rules.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/ids/packed_id.h"

// Beside GuardScore, which it configures.
ABSL_FLAG(bool, lb_guard_scores_ms, common::config::IntEnvOr("LB_GUARD_SCORES_MS", 0) != 0,
          "score new leaderboard guards by their entry's unix ms, as versions before did: only for "
          "the rolling upgrade from a version whose consumers read only that form "
          "(env LB_GUARD_SCORES_MS, 1 = on; docs/retention-leaderboard.md)");

namespace leaderboard {

using common::calendar::Period;
using common::calendar::PeriodUnit;
using leaderboard::v1::Metric;
using leaderboard::v1::Scope;
using leaderboard::v1::Window;

// ---------------------------------------------------------------- keys

std::string Prefix(absl::string_view org) { return absl::StrCat("lb:{", org, "}:"); }
std::string AppliedKey(absl::string_view org) { return Prefix(org) + "applied"; }
std::string MarksKey(absl::string_view org) { return Prefix(org) + "hwm"; }
std::string GuardMember(absl::string_view logical_id) {
  static constexpr std::pair<absl::string_view, char> kKinds[] = {
      {"kudos:", '\x01'}, {"retracted:", '\x02'}, {"transfer:", '\x03'}};
  for (const auto& [prefix, kind] : kKinds) {
    if (!absl::StartsWith(logical_id, prefix)) continue;
    absl::string_view rest = logical_id.substr(prefix.size());
    const size_t id_chars = 1 + 2 * common::ids::kPackedKudosIdBytes;
    std::optional<std::string> packed = common::ids::PackKudosId(rest.substr(0, id_chars));
    if (!packed.has_value()) return std::string(logical_id);
    return absl::StrCat(std::string(1, kind), *packed, rest.substr(std::min(id_chars, rest.size())));
  }
  return std::string(logical_id);
}

namespace {
int64_t FloorDiv(int64_t value, int64_t by) {
  const int64_t quotient = value / by;
  return quotient * by > value ? quotient - 1 : quotient;
}
}  // namespace

int64_t GuardScore(int64_t entry_ms) {
  // During a rolling upgrade a consumer of the version before compares ms
  // and trims below ms, which would drop every negated one.
  if (absl::GetFlag(FLAGS_lb_guard_scores_ms)) return entry_ms;
  return -FloorDiv(entry_ms, 1000);
}
int64_t GuardCutSeconds(int64_t oldest_ms) { return FloorDiv(oldest_ms, 1000); }
int64_t GuardSeconds(double score) {
  if (score <= 0) return static_cast<int64_t>(-score);
  return FloorDiv(static_cast<int64_t>(score), 1000);  // a guard written before: ms
}

int GuardBucket(absl::string_view logical_id) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : logical_id) {
    hash ^= c;
    hash *= 16777619u;
  }
  return static_cast<int>(hash % kGuardBuckets);
}
std::string GuardKey(absl::string_view org, char stream, absl::string_view logical_id) {
  return absl::StrCat(Prefix(org), "seen:", std::string(1, stream), ":",
                      absl::Hex(GuardBucket(logical_id), absl::kZeroPad2));
}
std::string LegacyGuardKey(absl::string_view org, char stream) {
  return absl::StrCat(Prefix(org), "seen:", std::string(1, stream));
}
std::string RebuildLockKey(absl::string_view org) { return absl::StrCat("lbctl:{", org, "}:rebuild"); }
std::string SettingsKey(absl::string_view org) { return Prefix(org) + "dir:settings"; }
std::string PeopleKey(absl::string_view org) { return Prefix(org) + "dir:people"; }
std::string TeamsKey(absl::string_view org) { return Prefix(org) + "dir:teams"; }
std::string BadgesKey(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "badges:", person);
}
std::string DaysKey(absl::string_view org, absl::string_view kind, absl::string_view person) {
  return absl::StrCat(Prefix(org), "days:", kind, ":", person);
}
std::string ValuesKey(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "values:", person);
}
std::string ValueMember(absl::string_view value) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits: stable across builds
  for (unsigned char c : value) hash = (hash ^ c) * 1099511628211ull;
  return absl::StrCat(hash & ((uint64_t{1} << 48) - 1));
}
std::string HiddenKey(absl::string_view org) { return Prefix(org) + "hidden"; }
std::string SeasonsKey(absl::string_view org) { return absl::StrCat("lbseason:{", org, "}:defs"); }
std::string SeasonJoinsKey(absl::string_view org, absl::string_view season) {
  return absl::StrCat("lbseason:{", org, "}:joined:", season);
}
std::string SeasonsVersionKey(absl::string_view org) {
  return absl::StrCat("lbseason:{", org, "}:version");
}
std::string SeasonCloseKey(absl::string_view org, absl::string_view season) {
  return absl::StrCat("lbseason:{", org, "}:close:", season);
}
std::string SeasonBoardKey(absl::string_view org, absl::string_view season, bool teams) {
  return absl::StrCat(Prefix(org), "season:", season, teams ? ":teams" : ":people");
}
bool SeasonDef::Counts(const std::string& subject, absl::Time t) const {
  if (t < start || t >= end || !ValidId(subject)) return false;
  if (join_required) {
    auto it = joined_ms.find(subject);
    return it != joined_ms.end() && absl::ToUnixMillis(t) >= it->second;
  }
  return members.empty() || members.count(subject) > 0;
}
std::optional<std::string> OrgOfKey(absl::string_view key) {
  size_t open = key.find(":{");
  if (open == absl::string_view::npos) return std::nullopt;
  size_t close = key.find("}:", open);
  if (close == absl::string_view::npos || close == open + 2) return std::nullopt;
  return std::string(key.substr(open + 2, close - open - 2));
}
bool BoardOfTeams(absl::string_view board_key) {
  // lb:{org}:<metric>:<window>:<period>:teams (a team scope is "team:<id>").
  std::vector<absl::string_view> parts = absl::StrSplit(board_key, ':');
  // lb:{org}:season:<id>:teams too (SeasonBoardKey).
  return (parts.size() == 6 && parts[5] == "teams") ||
         (parts.size() == 5 && parts[2] == "season" && parts[4] == "teams");
}
std::string LedgerStream(absl::string_view org) { return absl::StrCat("ledger:{", org, "}:outbox"); }
std::string KudosStream(absl::string_view org) { return absl::StrCat("kudos:{", org, "}:events"); }

absl::string_view MetricName(Metric metric) {
  switch (metric) {
    case v1::METRIC_POINTS_RECEIVED:
      return "points_received";
    case v1::METRIC_KUDOS_RECEIVED:
      return "kudos_received";
    case v1::METRIC_KUDOS_GIVEN:
      return "kudos_given";
    default:
      return "";
  }
}

absl::string_view WindowName(Window window) {
  switch (window) {
    case v1::WINDOW_DAY:
      return "day";
    case v1::WINDOW_WEEK:
      return "week";
    case v1::WINDOW_MONTH:
      return "month";
    case v1::WINDOW_QUARTER:
      return "quarter";
    case v1::WINDOW_YEAR:
      return "year";
    case v1::WINDOW_ALL_TIME:
      return "all";
    default:
      return "";
  }
}

PeriodUnit WindowUnit(Window window) {
  switch (window) {
    case v1::WINDOW_DAY:
      return PeriodUnit::kDay;
    case v1::WINDOW_WEEK:
      return PeriodUnit::kWeek;
    case v1::WINDOW_MONTH:
      return PeriodUnit::kMonth;
    case v1::WINDOW_QUARTER:
      return PeriodUnit::kQuarter;
    case v1::WINDOW_YEAR:
      return PeriodUnit::kYear;
    default:
      return PeriodUnit::kAllTime;
  }
}

std::string ScopeName(Scope scope, absl::string_view scope_id) {
  switch (scope) {
    case v1::SCOPE_TEAM:
      return absl::StrCat("team:", scope_id);
    case v1::SCOPE_VALUE:
      return absl::StrCat("value:", scope_id);
    case v1::SCOPE_TEAMS:
      return "teams";
    default:
      return "org";
  }
}

std::string BoardKey(absl::string_view org, Metric metric, Window window,
                     absl::string_view period_key, Scope scope, absl::string_view scope_id) {
  return absl::StrCat(Prefix(org), MetricName(metric), ":", WindowName(window), ":", period_key,
                      ":", ScopeName(scope, scope_id));
}

// The platform's one id rule, the one auth applies to a token's org and sub.
bool ValidId(absl::string_view id) { return common::auth::ValidId(id); }

// ---------------------------------------------------------------- derived boards

bool BoardDerived(Window window, Scope scope) {
  return scope != v1::SCOPE_ORG && (window == v1::WINDOW_QUARTER || window == v1::WINDOW_ALL_TIME);
}

std::string YearsKey(absl::string_view org) { return Prefix(org) + "years"; }

std::string DerivedBoard::YearBoard(absl::string_view year) const {
  return absl::StrCat(Prefix(org), metric, ":year:", year, ":", scope);
}

std::optional<DerivedBoard> ParseDerivedBoard(absl::string_view board_key) {
  // lb:{org}:<metric>:<window>:<period>:<scope>
  if (!absl::ConsumePrefix(&board_key, "lb:{")) return std::nullopt;
  size_t close = board_key.find("}:");
  if (close == absl::string_view::npos) return std::nullopt;
  DerivedBoard board;
  board.org = std::string(board_key.substr(0, close));
  board_key.remove_prefix(close + 2);
  std::vector<absl::string_view> parts = absl::StrSplit(board_key, absl::MaxSplits(':', 3));
  if (parts.size() != 4) return std::nullopt;
  board.metric = std::string(parts[0]);
  board.window = std::string(parts[1]);
  board.period = std::string(parts[2]);
  board.scope = std::string(parts[3]);
  if (board.scope == "org" || board.scope.empty()) return std::nullopt;
  if (board.window == "all") {
    if (board.period != "all") return std::nullopt;
    return board;
  }
  if (board.window != "quarter") return std::nullopt;
  // "2026-Q4" -> "2026-10", "2026-11", "2026-12".
  int year = 0, quarter = 0;
  if (board.period.size() != 7 || board.period[4] != '-' || board.period[5] != 'Q' ||
      !absl::SimpleAtoi(board.period.substr(0, 4), &year) ||
      !absl::SimpleAtoi(board.period.substr(6), &quarter) || quarter < 1 || quarter > 4) {
    return std::nullopt;
  }
  for (int m = 3 * quarter - 2; m <= 3 * quarter; ++m) {
    board.sources.push_back(absl::StrCat(Prefix(board.org), board.metric, ":month:",
                                         absl::StrFormat("%04d-%02d", year, m), ":",
                                         board.scope));
  }
  return board;
}

namespace {
// "lb:{org}:rest" -> "lbcache:{org}:<infix>rest".
std::string CacheName(absl::string_view board_key, absl::string_view infix) {
  absl::ConsumePrefix(&board_key, "lb:");
  size_t close = board_key.find("}:");
  if (close == absl::string_view::npos) return absl::StrCat("lbcache:", infix, board_key);
  return absl::StrCat("lbcache:", board_key.substr(0, close + 2), infix,
                      board_key.substr(close + 2));
}
}  // namespace

std::string DerivedCacheKey(absl::string_view board_key) { return CacheName(board_key, "z:"); }
std::string DerivedVersionKey(absl::string_view board_key) { return CacheName(board_key, "v:"); }
std::string DerivedGenerationKey(absl::string_view org) {
  return absl::StrCat("lbcache:{", org, "}:gen");
}

// ---------------------------------------------------------------- calendar

kudos::v1::OrgSettings DefaultSettings() {
  kudos::v1::OrgSettings settings;
  settings.set_time_zone("UTC");
  settings.set_week_start(common::v1::DAY_OF_WEEK_MONDAY);
  for (int day = 1; day <= 5; ++day) {
    settings.add_work_days(static_cast<common::v1::DayOfWeek>(day));
  }
  for (const char* id : {"on-time-delivery", "consistent-follow-up", "clear-communication",
                         "service-mindset", "goals-accomplished", "empathy", "teamwork"}) {
    settings.add_values()->set_value_id(id);
  }
  settings.set_streak_freezes_per_month(2);
  return settings;
}

absl::StatusOr<kudos::v1::OrgSettings> ParseStoredSettings(absl::string_view org,
                                                          const std::string* stored) {
  if (stored == nullptr) return DefaultSettings();
  kudos::v1::OrgSettings settings;
  if (!settings.ParseFromString(*stored)) {
    return absl::InternalError(absl::StrCat("stored settings of org '", org, "' are corrupt"));
  }
  return settings;
}

OrgCalendar CalendarFromSettings(const kudos::v1::OrgSettings& settings) {
  OrgCalendar calendar;
  if (!settings.time_zone().empty()) {
    absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(settings.time_zone());
    if (zone.ok()) {
      calendar.zone = *zone;
      calendar.zone_name = settings.time_zone();
    }
  }
  int week_start = static_cast<int>(settings.week_start());
  calendar.week_start = week_start >= 1 && week_start <= 7 ? week_start : 1;
  if (settings.work_days_size() > 0) {
    calendar.work_days.clear();
    for (int day : settings.work_days()) {
      if (day >= 1 && day <= 7) calendar.work_days.insert(day);
    }
  }
  for (const common::v1::Date& date : settings.holidays()) {
    absl::CivilDay day(date.year(), date.month(), date.day());
    if (day.year() == date.year() && day.month() == date.month() && day.day() == date.day()) {
      calendar.holidays.insert(day);
    }
  }
  calendar.freezes_per_month = std::max(0, settings.streak_freezes_per_month());
  int guard_days = settings.retention().idempotency_days();
  if (guard_days >= 1 && guard_days <= 3650) calendar.guard_days = guard_days;
  for (const kudos::v1::Value& value : settings.values()) {
    if (!value.value_id().empty()) calendar.values.push_back(value.value_id());
  }
  return calendar;
}

std::optional<absl::Time> BoardExpiry(Window window, const Period& period) {
  switch (window) {
    case v1::WINDOW_DAY:
      return period.end + absl::Hours(24 * 90);
    case v1::WINDOW_WEEK:
      return period.end + absl::Hours(24 * 366);
    case v1::WINDOW_MONTH: {
      // A month lives as long as its quarter: sub-scope quarters are the sum
      // of their months (BoardDerived).
      absl::CivilMonth month(period.first_day);
      absl::CivilMonth quarter_end(month.year(), 3 * ((month.month() - 1) / 3) + 4);
      absl::CivilDay after(quarter_end);
      int64_t extra_days = after - period.end_day;
      if (period.end_day <= period.first_day) extra_days = 0;
      return period.end + absl::Hours(24 * (3 * 366 + std::max<int64_t>(0, extra_days)));
    }
    case v1::WINDOW_QUARTER:
      return period.end + absl::Hours(24 * 3 * 366);
    default:
      return std::nullopt;
  }
}

absl::StatusOr<ResolvedBoard> ResolveBoard(absl::string_view org, const v1::Board& board,
                                           const OrgCalendar& calendar, absl::Time now) {
  if (MetricName(board.metric()).empty()) {
    return absl::InvalidArgumentError("board.metric: must be one of the METRIC_ values");
  }
  if (WindowName(board.window()).empty()) {
    return absl::InvalidArgumentError("board.window: must be one of the WINDOW_ values");
  }
  switch (board.scope()) {
    case v1::SCOPE_ORG:
    case v1::SCOPE_TEAMS:
      if (!board.scope_id().empty()) {
        return absl::InvalidArgumentError(
            "board.scope_id: must be empty for SCOPE_ORG and SCOPE_TEAMS");
      }
      break;
    case v1::SCOPE_TEAM:
    case v1::SCOPE_VALUE:
      if (!ValidId(board.scope_id())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "board.scope_id: '", board.scope_id(),
            "' must be 1..64 characters of [A-Za-z0-9._-] for SCOPE_TEAM and SCOPE_VALUE"));
      }
      break;
    default:
      return absl::InvalidArgumentError("board.scope: must be one of the SCOPE_ values");
  }
  PeriodUnit unit = WindowUnit(board.window());
  Period period;
  if (board.period().empty() || unit == PeriodUnit::kAllTime) {
    period = common::calendar::PeriodAt(unit, now, calendar.zone, calendar.week_start);
  } else {
    absl::StatusOr<Period> parsed =
        common::calendar::ParsePeriod(unit, board.period(), calendar.zone, calendar.week_start);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("board.", parsed.status().message()));
    }
    period = *std::move(parsed);
  }
  ResolvedBoard resolved;
  resolved.key = BoardKey(org, board.metric(), board.window(), period.key, board.scope(),
                          board.scope_id());
  resolved.period = std::move(period);
  return resolved;
}

absl::Status CheckScopeKnown(const v1::Board& board, const OrgCalendar& calendar,
                             const std::set<std::string>& teams) {
  const std::string& id = board.scope_id();
  if (board.scope() == v1::SCOPE_TEAM && teams.count(id) == 0) {
    return absl::NotFoundError(absl::StrCat(
        "board.scope_id: team '", id,
        "' does not exist in this org (a team created seconds ago appears once the leaderboard "
        "has caught up)"));
  }
  if (board.scope() == v1::SCOPE_VALUE &&
      std::find(calendar.values.begin(), calendar.values.end(), id) == calendar.values.end()) {
    return absl::NotFoundError(absl::StrCat("board.scope_id: value '", id,
                                            "' is not in this org's values catalog"));
  }
  return absl::OkStatus();
}

absl::Status CheckWatchablePeriod(const v1::Board& board, const OrgCalendar& calendar,
                                  absl::Time now) {
  PeriodUnit unit = WindowUnit(board.window());
  if (board.period().empty() || unit == PeriodUnit::kAllTime) return absl::OkStatus();
  Period current = common::calendar::PeriodAt(unit, now, calendar.zone, calendar.week_start);
  Period previous = common::calendar::PeriodAt(unit, current.start - absl::Nanoseconds(1),
                                               calendar.zone, calendar.week_start);
  absl::StatusOr<Period> asked =
      common::calendar::ParsePeriod(unit, board.period(), calendar.zone, calendar.week_start);
  if (!asked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("board.", asked.status().message()));
  }
  if (asked->key == current.key || asked->key == previous.key) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "board.period: '", board.period(), "' cannot be watched: a watch follows the current ",
      WindowName(board.window()), " ('", current.key, "', or leave period empty) or the previous one ('",
      previous.key, "'); read other periods with GetLeaderboard"));
}

// ---------------------------------------------------------------- ranks

std::vector<RankedEntry> RankEntries(std::vector<std::pair<std::string, int64_t>> scores) {
  std::sort(scores.begin(), scores.end(), [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return a.first < b.first;
  });
  std::vector<RankedEntry> out;
  out.reserve(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    int64_t rank = (i > 0 && scores[i].second == scores[i - 1].second)
                       ? out.back().rank
                       : static_cast<int64_t>(i) + 1;
    out.push_back(RankedEntry{rank, scores[i].first, scores[i].second});
  }
  return out;
}

double Percentile(int64_t strictly_below, int64_t total) {
  if (total <= 0) return 0;
  return 100.0 * static_cast<double>(strictly_below) / static_cast<double>(total);
}

// ---------------------------------------------------------------- paging

std::string EncodePageToken(const PageToken& token) {
  std::string raw = absl::StrCat("v1|", std::string(1, token.direction), "|", token.score, "|",
                                 token.subject_id, "|", token.period, "|", token.board_key);
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<PageToken> DecodePageToken(absl::string_view text) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("page_token: ", why));
  };
  std::string raw;
  if (text.size() > 1024 || !absl::WebSafeBase64Unescape(text, &raw)) {
    return bad("not a token from this service");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  if (parts.size() != 6 || parts[0] != "v1" || parts[1].size() != 1 ||
      std::string("fFbB").find(parts[1][0]) == std::string::npos) {
    return bad("not a token from this service");
  }
  PageToken token;
  token.direction = parts[1][0];
  if (!absl::SimpleAtoi(parts[2], &token.score)) return bad("bad score");
  token.subject_id = parts[3];
  if (!ValidId(token.subject_id)) return bad("bad subject");
  token.period = parts[4];
  token.board_key = parts[5];
  if (token.period.empty() || token.board_key.empty()) return bad("bad board");
  return token;
}

// ---------------------------------------------------------------- streaks

bool WorkCalendar::IsWorkDay(absl::CivilDay day) const {
  return work_days.count(common::calendar::DayOfWeekNumber(day)) > 0 &&
         holidays.count(day) == 0;
}

bool ReachesGivingStreakBadge(const std::vector<absl::CivilDay>& active_days,
                              const OrgCalendar& calendar, absl::CivilDay day) {
  WorkCalendar work{calendar.work_days, calendar.holidays, calendar.freezes_per_month};
  return ComputeStreak(active_days, work, day).longest >= kGivingStreakBadgeDays;
}

StreakResult ComputeStreak(const std::vector<absl::CivilDay>& active_days,
                           const WorkCalendar& calendar, absl::CivilDay today) {
  std::set<absl::CivilDay> active;
  for (absl::CivilDay day : active_days) {
    if (day <= today) active.insert(day);
  }
  StreakResult result;
  if (active.empty()) return result;
  result.last_active = *active.rbegin();
  std::map<absl::CivilMonth, int> used;       // freezes spent per month
  std::map<absl::CivilMonth, int> run_frozen;  // of which by the running streak
  int run = 0;
  for (absl::CivilDay day = *active.begin(); day <= today; ++day) {
    if (!calendar.IsWorkDay(day)) continue;
    if (active.count(day) > 0) {
      ++run;
      result.longest = std::max(result.longest, run);
      continue;
    }
    if (day == today) continue;  // the day is not over yet
    absl::CivilMonth month(day);
    if (run > 0 && used[month] < calendar.freezes_per_month) {
      ++used[month];
      ++run_frozen[month];
    } else {
      run = 0;
      run_frozen.clear();
    }
  }
  result.current = run;
  if (run > 0) {
    auto it = run_frozen.find(absl::CivilMonth(today));
    result.freezes_used = it == run_frozen.end() ? 0 : it->second;
  }
  return result;
}

std::string DayMember(absl::CivilDay day) {
  return absl::StrCat(day - absl::CivilDay(1970, 1, 1));
}

absl::StatusOr<absl::CivilDay> ParseDay(absl::string_view text) {
  // A day number: at most 7 digits (year 29349), so no overflow below.
  if (!text.empty() && text.size() <= 7 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int64_t number = 0;
    for (char c : text) number = number * 10 + (c - '0');
    return absl::CivilDay(1970, 1, 1) + number;
  }
  absl::CivilDay day;
  if (!absl::ParseCivilTime(text, &day)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a date"));
  }
  return day;
}

// ---------------------------------------------------------------- badges

const std::vector<BadgeRule>& BadgeRules() {
  static const std::vector<BadgeRule> kRules = {
      {"first_kudos_given", "First kudos given"},
      {"first_kudos_received", "First kudos received"},
      {"received_10", "10 kudos received"},
      {"received_50", "50 kudos received"},
      {"received_100", "100 kudos received"},
      {"given_10", "10 kudos given"},
      {"given_50", "50 kudos given"},
      {"all_values_received", "Every value received"},
      {kGivingStreakBadge, "4-week giving streak"},
  };
  return kRules;
}

const BadgeRule* FindBadge(absl::string_view id) {
  for (const BadgeRule& rule : BadgeRules()) {
    if (id == rule.id) return &rule;
  }
  return nullptr;
}

// ---------------------------------------------------------------- events

bool ApplyPlan::EntryId(char* stream, std::string* id) const {
  if (args.empty() || args[0].size() < 3 || args[0][1] != ':' ||
      (args[0][0] != 'k' && args[0][0] != 'l')) {
    return false;
  }
  *stream = args[0][0];
  *id = args[0].substr(2);
  return true;
}

const std::vector<Window>& AllWindows() {
  static const std::vector<Window> kWindows = {v1::WINDOW_DAY,     v1::WINDOW_WEEK,
                                               v1::WINDOW_MONTH,   v1::WINDOW_QUARTER,
                                               v1::WINDOW_YEAR,    v1::WINDOW_ALL_TIME};
  return kWindows;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* ts) {
  int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

namespace {

std::string Ms(absl::Time t) { return absl::StrCat(absl::ToUnixMillis(t)); }

class PlanBuilder {
 public:
  PlanBuilder(absl::string_view org, absl::string_view dedupe_id, const OrgCalendar& calendar,
              bool list_touched)
      : org_(org), calendar_(calendar), list_touched_(list_touched) {
    Idx(MarksKey(org));
    Idx(RebuildLockKey(org));
    plan_.args.push_back(std::string(dedupe_id));
    plan_.args.push_back("");  // the rebuild token, set by the caller
  }

  // Logical ids are remembered for the retry window after the entry that
  // applied them (its append time, not the event's: backfilled events are
  // old, their retries are not).
  void Guard(const std::string& logical_id) {
    Op({"G", logical_id,
        Idx(GuardKey(org_, plan_.args[0].empty() ? '?' : plan_.args[0][0], logical_id)),
        absl::StrCat(int64_t{calendar_.guard_days} * 86400 * 1000)});
  }

  // A guard on its own zset with its own window: a retraction is taken
  // back once for as long as its kudos can be on a board (the producer may
  // append it again on a retry; the id set grows by one per retraction).
  void LongGuard(const std::string& logical_id, char set, int64_t window_days) {
    Op({"G", logical_id, Idx(GuardKey(org_, set, logical_id)),
        absl::StrCat(window_days * 86400 * 1000)});
  }

  // Adds `amount` for `subject` on every window of (metric, scope).
  void AddAllWindows(Metric metric, Scope scope, absl::string_view scope_id,
                     const std::string& subject, int64_t amount, absl::Time t) {
    // Events add points and counts; a retraction (issue 18) takes back what
    // its kudos added, in the same periods. A score back at 0 leaves the board.
    KUDOS_CHECK(amount != 0, "a board increment is never zero");
    const std::vector<WindowPeriod>& periods = PeriodsAt(t);
    std::string amount_text = absl::StrCat(amount);
    for (size_t w = 0; w < AllWindows().size(); ++w) {
      Window window = AllWindows()[w];
      bool derived = BoardDerived(window, scope);
      if (derived && window == v1::WINDOW_ALL_TIME) {
        const std::string& year = periods[kYearIndex].key;
        if (years_.insert(year).second) Op({"S", Idx(YearsKey(org_)), year});
      }
      if (derived && !list_touched_) continue;
      std::string key = BoardKey(org_, metric, window, periods[w].key, scope, scope_id);
      // A derived board is read from the boards it sums; watchers of it
      // still learn it moved.
      if (!derived) Op({"Z", Idx(key), subject, amount_text, periods[w].expiry});
      if (list_touched_) touched_.push_back(std::move(key));
    }
  }

  // The boards of the org's seasons counting (metric, person or team) at t.
  void AddSeasons(Metric metric, const std::string& person, const std::string& team,
                  int64_t amount, absl::Time t) {
    if (calendar_.seasons == nullptr) return;
    std::string amount_text = absl::StrCat(amount);
    for (const SeasonDef& season : calendar_.seasons->seasons) {
      const std::string& subject = season.teams ? team : person;
      if (season.metric != metric || !season.Counts(subject, t)) continue;
      std::string key = SeasonBoardKey(org_, season.id, season.teams);
      Op({"Z", Idx(key), subject, amount_text, season.expiry});
      if (list_touched_) touched_.push_back(std::move(key));
    }
  }

  // A person's contribution to every scope of a metric.
  void AddPerson(Metric metric, const std::string& person, const std::string& team,
                 const std::vector<std::string>& values, int64_t amount, absl::Time t) {
    AddSeasons(metric, person, team, amount, t);
    AddAllWindows(metric, v1::SCOPE_ORG, "", person, amount, t);
    if (ValidId(team)) {
      AddAllWindows(metric, v1::SCOPE_TEAM, team, person, amount, t);
      AddAllWindows(metric, v1::SCOPE_TEAMS, "", team, amount, t);
    }
    for (const std::string& value : values) {
      AddAllWindows(metric, v1::SCOPE_VALUE, value, person, amount, t);
    }
  }

  void Op(std::initializer_list<std::string> op) {
    plan_.args.insert(plan_.args.end(), op.begin(), op.end());
  }
  void Op(const std::vector<std::string>& op) {
    plan_.args.insert(plan_.args.end(), op.begin(), op.end());
  }
  // The plan's KEYS index of `key` (1-based), added when new.
  std::string Idx(const std::string& key) {
    auto [it, added] = key_index_.try_emplace(key, 0);
    if (added) {
      plan_.keys.push_back(key);
      it->second = static_cast<int>(plan_.keys.size());
    }
    return absl::StrCat(it->second);
  }

  ApplyPlan Finish() {
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    plan_.touched_boards = std::move(touched_);
    return std::move(plan_);
  }
  ApplyPlan& plan() { return plan_; }

 private:
  // Every window's period at one instant: computed once per plan (an event
  // touches the same windows for each metric and scope).
  struct WindowPeriod {
    std::string key;
    std::string expiry;  // unix seconds, "0" for none
  };
  // Periods depend only on the local day (zone, week start): computed once
  // per day and kept across plans (a rebuild plans thousands per day).
  const std::vector<WindowPeriod>& PeriodsAt(absl::Time t) {
    auto it = periods_.find(t);
    if (it != periods_.end()) return it->second;
    absl::CivilDay day = absl::ToCivilDay(t, calendar_.zone);
    std::string day_key = absl::StrCat(calendar_.zone_name, "|", calendar_.week_start, "|",
                                       day - absl::CivilDay(1970, 1, 1));
    thread_local absl::flat_hash_map<std::string, std::vector<WindowPeriod>> by_day;
    auto cached = by_day.find(day_key);
    if (cached == by_day.end()) {
      if (by_day.size() >= 8192) by_day.clear();  // bounded; refilled on demand
      std::vector<WindowPeriod> periods;
      for (Window window : AllWindows()) {
        Period period = common::calendar::PeriodAt(WindowUnit(window), t, calendar_.zone,
                                                   calendar_.week_start);
        std::optional<absl::Time> expiry = BoardExpiry(window, period);
        periods.push_back(
            {period.key, expiry ? absl::StrCat(absl::ToUnixSeconds(*expiry)) : "0"});
      }
      cached = by_day.emplace(day_key, std::move(periods)).first;
    }
    return periods_.emplace(t, cached->second).first->second;
  }

  static constexpr size_t kYearIndex = 4;  // AllWindows()[4] == WINDOW_YEAR

  std::string org_;
  const OrgCalendar& calendar_;
  bool list_touched_;
  std::set<std::string> years_;  // years added to YearsKey by this plan
  ApplyPlan plan_;
  std::vector<std::string> touched_;
  absl::flat_hash_map<std::string, int> key_index_;
  std::map<absl::Time, std::vector<WindowPeriod>> periods_;
};

// Value ids, deduplicated, in first-seen order, only valid ids.
std::vector<std::string> CleanValues(const std::vector<std::string>& raw) {
  std::vector<std::string> out;
  for (const std::string& value : raw) {
    if (ValidId(value) && std::find(out.begin(), out.end(), value) == out.end()) {
      out.push_back(value);
    }
  }
  return out;
}

absl::TimeZone ZoneOf(const std::string& name, const OrgCalendar& calendar) {
  if (name.empty()) return calendar.zone;
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(name);
  return zone.ok() ? *zone : calendar.zone;
}

}  // namespace

std::vector<std::string> PeopleOfEvent(const kudos::v1::KudosEvent& event) {
  std::vector<std::string> people;
  if (event.has_kudos_sent()) {
    const kudos::v1::Kudos& kudos = event.kudos_sent().kudos();
    if (!kudos.giver_id().empty()) people.push_back(kudos.giver_id());
    for (const std::string& r : kudos.recipient_ids()) people.push_back(r);
  }
  return people;
}

namespace {

// The recipients a kudos counts for: valid, not the giver, each once.
std::vector<std::string> CountedRecipients(const kudos::v1::Kudos& kudos) {
  std::vector<std::string> recipients;
  for (const std::string& r : kudos.recipient_ids()) {
    if (ValidId(r) && r != kudos.giver_id() &&
        std::find(recipients.begin(), recipients.end(), r) == recipients.end()) {
      recipients.push_back(r);
    }
  }
  return recipients;
}

std::string TeamOf(const google::protobuf::Map<std::string, std::string>& teams,
                   const std::string& person) {
  auto it = teams.find(person);
  return it == teams.end() ? "" : it->second;
}

absl::Time KudosTime(const kudos::v1::Kudos& kudos, const kudos::v1::KudosEvent& event) {
  return kudos.has_create_time() ? FromProto(kudos.create_time()) : FromProto(event.event_time());
}

// A private kudos (issue 18) counts on no board and earns no badge; the
// people involved still had an active day, so their own streaks count it
// (the days sets; no StreakExtended event: AddEmitOp leaves it out).
void PlanPrivateKudos(PlanBuilder& b, absl::string_view org, const kudos::v1::Kudos& kudos,
                      absl::Time t, const OrgCalendar& calendar, const ZoneLookup& person_zone) {
  b.Guard(absl::StrCat("kudos:", kudos.kudos_id()));
  const std::string& giver = kudos.giver_id();
  if (!kudos.from_company()) {
    absl::CivilDay giver_day = absl::ToCivilDay(t, ZoneOf(person_zone(giver), calendar));
    b.Op({"S", b.Idx(DaysKey(org, "giving", giver)), DayMember(giver_day)});
  }
  for (const std::string& r : CountedRecipients(kudos)) {
    absl::CivilDay day = absl::ToCivilDay(t, ZoneOf(person_zone(r), calendar));
    b.Op({"S", b.Idx(DaysKey(org, "receiving", r)), DayMember(day)});
  }
}

// Takes back the counts KudosSent added (issue 18), in the periods of the
// kudos' time, once (a long guard: the kudos service may append the event
// again when an admin retries). Points come back through the ledger's
// RETRACTION transfers (PlanLedgerEvent), never from here. Badges earned
// and active days stay (the person did give or receive that day).
void PlanRetraction(PlanBuilder& b, const kudos::v1::KudosRetracted& retracted, absl::Time t) {
  const kudos::v1::Kudos& kudos = retracted.kudos();
  if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) return;  // counted nothing
  std::vector<std::string> values = CleanValues({kudos.values().begin(), kudos.values().end()});
  b.LongGuard(absl::StrCat("retracted:", kudos.kudos_id()), 'r', kRetractionGuardDays);
  if (!kudos.from_company()) {  // a kudos from the company counted no giver
    b.AddPerson(v1::METRIC_KUDOS_GIVEN, kudos.giver_id(), retracted.giver_team_id(), values, -1,
                t);
  }
  for (const std::string& r : CountedRecipients(kudos)) {
    b.AddPerson(v1::METRIC_KUDOS_RECEIVED, r, TeamOf(retracted.recipient_team_ids(), r), values,
                -1, t);
  }
}

}  // namespace

ApplyPlan PlanKudosEvent(absl::string_view org, absl::string_view dedupe_id,
                         const kudos::v1::KudosEvent& event, const OrgCalendar& calendar,
                         const ZoneLookup& person_zone, bool list_touched) {
  PlanBuilder b(org, dedupe_id, calendar, list_touched);
  switch (event.event_case()) {
    case kudos::v1::KudosEvent::kKudosSent: {
      const kudos::v1::KudosSent& sent = event.kudos_sent();
      const kudos::v1::Kudos& kudos = sent.kudos();
      // A kudos from the company (issue 18 part 3, a celebration) has no
      // giver: only its recipients count.
      const bool from_company = kudos.from_company();
      if (kudos.kudos_id().empty() || (!from_company && !ValidId(kudos.giver_id()))) break;
      absl::Time t = KudosTime(kudos, event);
      if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
        PlanPrivateKudos(b, org, kudos, t, calendar, person_zone);
        break;
      }
      std::vector<std::string> values =
          CleanValues({kudos.values().begin(), kudos.values().end()});
      std::vector<std::string> recipients = CountedRecipients(kudos);
      b.Guard(absl::StrCat("kudos:", kudos.kudos_id()));
      const std::string& giver = kudos.giver_id();
      std::string ms = Ms(t);
      absl::CivilDay giver_day;
      if (!from_company) {
        b.AddPerson(v1::METRIC_KUDOS_GIVEN, giver, sent.giver_team_id(), values, 1, t);
        giver_day = absl::ToCivilDay(t, ZoneOf(person_zone(giver), calendar));
        b.Op({"S", b.Idx(DaysKey(org, "giving", giver)), DayMember(giver_day)});
        std::string giver_badges = b.Idx(BadgesKey(org, giver));
        std::string given_all = b.Idx(BoardKey(org, v1::METRIC_KUDOS_GIVEN, v1::WINDOW_ALL_TIME,
                                               "all", v1::SCOPE_ORG, ""));
        b.Op({"N", giver_badges, "first_kudos_given", ms});
        b.Op({"T", giver_badges, "given_10", ms, given_all, giver, "10"});
        b.Op({"T", giver_badges, "given_50", ms, given_all, giver, "50"});
      }
      std::string received_all = b.Idx(BoardKey(org, v1::METRIC_KUDOS_RECEIVED,
                                                 v1::WINDOW_ALL_TIME, "all", v1::SCOPE_ORG, ""));
      for (const std::string& r : recipients) {
        b.AddPerson(v1::METRIC_KUDOS_RECEIVED, r, TeamOf(sent.recipient_team_ids(), r), values, 1,
                    t);
        absl::CivilDay day = absl::ToCivilDay(t, ZoneOf(person_zone(r), calendar));
        b.Op({"S", b.Idx(DaysKey(org, "receiving", r)), DayMember(day)});
        std::string values_key = b.Idx(ValuesKey(org, r));
        for (const std::string& value : values) b.Op({"S", values_key, ValueMember(value)});
        std::string badges = b.Idx(BadgesKey(org, r));
        b.Op({"N", badges, "first_kudos_received", ms});
        b.Op({"T", badges, "received_10", ms, received_all, r, "10"});
        b.Op({"T", badges, "received_50", ms, received_all, r, "50"});
        b.Op({"T", badges, "received_100", ms, received_all, r, "100"});
        if (!calendar.values.empty()) {
          std::vector<std::string> op = {"V", badges, "all_values_received", ms, values_key,
                                         absl::StrCat(2 * calendar.values.size())};
          for (const std::string& value : calendar.values) {
            op.insert(op.end(), {ValueMember(value), value});
          }
          b.Op(op);
        }
      }
      if (!from_company) b.plan().streak_checks.push_back({giver, giver_day, t});
      break;
    }
    case kudos::v1::KudosEvent::kOrgSettingsChanged:
      b.Op({"P", b.Idx(SettingsKey(org)),
            event.org_settings_changed().settings().SerializeAsString()});
      break;
    case kudos::v1::KudosEvent::kPersonChanged: {
      const kudos::v1::Person& person = event.person_changed().person();
      if (!ValidId(person.person_id())) break;
      b.Op({"H", b.Idx(PeopleKey(org)), person.person_id(), person.SerializeAsString()});
      b.Op({person.hidden_from_leaderboards() ? "S" : "R", b.Idx(HiddenKey(org)),
            person.person_id()});
      break;
    }
    case kudos::v1::KudosEvent::kKudosRetracted: {
      const kudos::v1::Kudos& kudos = event.kudos_retracted().kudos();
      if (kudos.kudos_id().empty() || (!kudos.from_company() && !ValidId(kudos.giver_id()))) break;
      PlanRetraction(b, event.kudos_retracted(), KudosTime(kudos, event));
      break;
    }
    case kudos::v1::KudosEvent::kTeamChanged: {
      const kudos::v1::Team& team = event.team_changed().team();
      if (!ValidId(team.team_id())) break;
      b.Op({"H", b.Idx(TeamsKey(org)), team.team_id(), team.SerializeAsString()});
      break;
    }
    default:
      // KudosBoosted: points arrive through the ledger; no counts change.
      break;
  }
  return b.Finish();
}

std::optional<BoardPoints> PointsOf(const ledger::v1::Transfer& transfer, absl::Time posted) {
  auto tag = [&](const char* name) {
    auto it = transfer.tags().find(name);
    return it == transfer.tags().end() ? std::string() : it->second;
  };
  if (transfer.amount() <= 0 || transfer.transfer_id().empty() ||
      tag("visibility") == "private") {  // a private kudos' points show on no board
    return std::nullopt;
  }
  BoardPoints points;
  points.team = tag("team");
  points.values = CleanValues(absl::StrSplit(tag("values"), ',', absl::SkipEmpty()));
  points.time = transfer.has_post_time() ? FromProto(transfer.post_time()) : posted;
  bool earned_credit = transfer.credit_account().type() == ledger::v1::ACCOUNT_TYPE_EARNED;
  switch (transfer.kind()) {
    case ledger::v1::TRANSFER_KIND_KUDOS:
    case ledger::v1::TRANSFER_KIND_BOOST:
    case ledger::v1::TRANSFER_KIND_CELEBRATION:  // a kudos from the company (issue 18 part 3)
      if (!earned_credit) return std::nullopt;
      points.person = transfer.credit_account().person_id();
      points.amount = transfer.amount();
      break;
    case ledger::v1::TRANSFER_KIND_RETRACTION: {
      // The reversal of a KUDOS/BOOST transfer: EARNED(recipient) debited.
      // Its points leave the periods of the original's post time.
      if (transfer.debit_account().type() != ledger::v1::ACCOUNT_TYPE_EARNED ||
          tag("retracts").empty()) {
        return std::nullopt;
      }
      int64_t original_ms = 0;
      if (absl::SimpleAtoi(tag("retracts_post_ms"), &original_ms) && original_ms > 0) {
        points.time = absl::FromUnixMillis(original_ms);
      }
      points.person = transfer.debit_account().person_id();
      points.amount = -transfer.amount();
      break;
    }
    default:
      return std::nullopt;
  }
  if (!ValidId(points.person)) return std::nullopt;
  return points;
}

ApplyPlan PlanLedgerEvent(absl::string_view org, absl::string_view dedupe_id,
                          const ledger::v1::LedgerEvent& event, const OrgCalendar& calendar,
                          bool list_touched) {
  PlanBuilder b(org, dedupe_id, calendar, list_touched);
  if (event.has_transfers_posted()) {
    const ledger::v1::TransfersPosted& posted = event.transfers_posted();
    for (const ledger::v1::Transfer& transfer : posted.transfers()) {
      std::optional<BoardPoints> points = PointsOf(transfer, FromProto(posted.post_time()));
      if (!points.has_value()) continue;
      b.Guard(absl::StrCat("transfer:", transfer.transfer_id()));
      b.AddPerson(v1::METRIC_POINTS_RECEIVED, points->person, points->team, points->values,
                  points->amount, points->time);
    }
  }
  return b.Finish();
}

// ---------------------------------------------------------------- the rebuild's plans

RebuildPlanner::RebuildPlanner(std::string org) : org_(std::move(org)) {
  Key(MarksKey(org_));
  Atom("");
}

uint32_t RebuildPlanner::Key(std::string key) {
  auto [it, added] = key_ids_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
  if (added) keys_.push_back(std::move(key));
  return it->second;
}

uint32_t RebuildPlanner::Atom(absl::string_view text) {
  auto it = atom_ids_.find(text);
  if (it != atom_ids_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(atoms_.size());
  atoms_.emplace_back(text);
  atom_ids_.emplace(std::string(text), id);
  return id;
}

uint32_t RebuildPlanner::ValueMemberAtom(absl::string_view value) {
  auto [it, added] = value_members_.try_emplace(Atom(value), 0);
  if (added) it->second = Atom(ValueMember(value));
  return it->second;
}

const std::vector<RebuildPlanner::PeriodIds>& RebuildPlanner::PeriodsAt(
    absl::Time t, const OrgCalendar& calendar) {
  if (calendar.zone_name != periods_zone_ || calendar.week_start != periods_week_start_) {
    periods_.clear();  // periods depend on the zone and week start only
    periods_zone_ = calendar.zone_name;
    periods_week_start_ = calendar.week_start;
  }
  absl::CivilDay day = absl::ToCivilDay(t, calendar.zone);
  int64_t day_number = day - absl::CivilDay(1970, 1, 1);
  auto it = periods_.find(day_number);
  if (it != periods_.end()) return it->second;
  std::vector<PeriodIds> periods;
  for (Window window : AllWindows()) {
    Period period =
        common::calendar::PeriodAt(WindowUnit(window), t, calendar.zone, calendar.week_start);
    std::optional<absl::Time> expiry = BoardExpiry(window, period);
    periods.push_back({Atom(period.key), expiry ? absl::ToUnixSeconds(*expiry) : 0});
  }
  return periods_.emplace(day_number, std::move(periods)).first->second;
}

uint32_t RebuildPlanner::BoardId(Metric metric, size_t window, uint32_t period_atom, Scope scope,
                                 uint32_t scope_atom) {
  std::pair<uint64_t, uint32_t> id = {
      (static_cast<uint64_t>(period_atom) << 32) | scope_atom,
      static_cast<uint32_t>(metric) * 64 + static_cast<uint32_t>(window) * 8 +
          static_cast<uint32_t>(scope)};
  auto it = boards_.find(id);
  if (it != boards_.end()) return it->second;
  uint32_t key = Key(BoardKey(org_, metric, AllWindows()[window], atoms_[period_atom], scope,
                              atoms_[scope_atom]));
  boards_.emplace(id, key);
  return key;
}

RebuildPlanner::PersonKeys& RebuildPlanner::KeysOf(uint32_t person_atom) {
  PersonKeys& keys = people_[person_atom];
  if (keys.badges == UINT32_MAX) {
    const std::string& person = atoms_[person_atom];
    keys.giving = Key(DaysKey(org_, "giving", person));
    keys.receiving = Key(DaysKey(org_, "receiving", person));
    keys.badges = Key(BadgesKey(org_, person));
    keys.values = Key(ValuesKey(org_, person));
  }
  return keys;
}

// PlanBuilder (list_touched false) with ids: the same operations in the
// same order.
class RebuildPlanner::Builder {
 public:
  Builder(RebuildPlanner& planner, char stream, absl::string_view entry_id,
          const OrgCalendar& calendar)
      : p_(planner), calendar_(calendar) {
    plan_.stream = stream;
    plan_.entry_id = std::string(entry_id);
    plan_.ops.reserve(48);
  }

  CompactOp& Op(CompactOp::Code code, uint32_t key) {
    CompactOp& op = plan_.ops.emplace_back();
    op.code = code;
    op.key = key;
    return op;
  }
  uint32_t Text(std::string text) {
    plan_.texts.push_back(std::move(text));
    return static_cast<uint32_t>(plan_.texts.size() - 1);
  }
  void Guard(absl::string_view logical_id, char set, int64_t window_ms) {
    uint32_t text = Text(std::string(logical_id));  // unique ids: not interned
    CompactOp& op = Op(CompactOp::kGuard, p_.Key(GuardKey(p_.org_, set, logical_id)));
    op.text = text;
    op.number = window_ms;
  }
  void Guard(absl::string_view logical_id) {
    Guard(logical_id, plan_.stream, int64_t{calendar_.guard_days} * 86400 * 1000);
  }

  void AddAllWindows(Metric metric, Scope scope, uint32_t scope_atom, uint32_t subject,
                     int64_t amount, const std::vector<PeriodIds>& periods) {
    KUDOS_CHECK(amount != 0, "a board increment is never zero");
    for (size_t w = 0; w < AllWindows().size(); ++w) {
      Window window = AllWindows()[w];
      if (BoardDerived(window, scope)) {
        if (window == v1::WINDOW_ALL_TIME) {
          uint32_t year = periods[kYearIndex].atom;
          if (std::find(years_.begin(), years_.end(), year) == years_.end()) {
            years_.push_back(year);
            Op(CompactOp::kSadd, p_.Key(YearsKey(p_.org_))).atom = year;
          }
        }
        continue;
      }
      CompactOp& op = Op(CompactOp::kZincr, p_.BoardId(metric, w, periods[w].atom, scope, scope_atom));
      op.atom = subject;
      op.number = amount;
      op.expire_at = periods[w].expire_at;
    }
  }

  void AddSeasons(Metric metric, const std::string& person, const std::string& team,
                  int64_t amount, absl::Time t) {
    if (calendar_.seasons == nullptr) return;
    for (const SeasonDef& season : calendar_.seasons->seasons) {
      const std::string& subject = season.teams ? team : person;
      if (season.metric != metric || !season.Counts(subject, t)) continue;
      int64_t expire_at = 0;
      if (!absl::SimpleAtoi(season.expiry, &expire_at) && plan_.error.empty()) {
        plan_.error = "Z expiry";
        plan_.error_at = plan_.ops.size();
      }
      CompactOp& op = Op(CompactOp::kZincr, p_.Key(SeasonBoardKey(p_.org_, season.id, season.teams)));
      op.atom = p_.Atom(subject);
      op.number = amount;
      op.expire_at = expire_at;
    }
  }

  void AddPerson(Metric metric, const std::string& person, const std::string& team,
                 const std::vector<std::string>& values, int64_t amount, absl::Time t) {
    AddSeasons(metric, person, team, amount, t);
    const std::vector<PeriodIds>& periods = p_.PeriodsAt(t, calendar_);
    uint32_t person_atom = p_.Atom(person);
    AddAllWindows(metric, v1::SCOPE_ORG, 0, person_atom, amount, periods);
    if (ValidId(team)) {
      uint32_t team_atom = p_.Atom(team);
      AddAllWindows(metric, v1::SCOPE_TEAM, team_atom, person_atom, amount, periods);
      AddAllWindows(metric, v1::SCOPE_TEAMS, 0, team_atom, amount, periods);
    }
    for (const std::string& value : values) {
      AddAllWindows(metric, v1::SCOPE_VALUE, p_.Atom(value), person_atom, amount, periods);
    }
  }

  // The org-scope all-time board of `metric` (the badges' thresholds).
  uint32_t AllTimeBoard(Metric metric) {
    return p_.BoardId(metric, kAllTimeIndex, p_.Atom("all"), v1::SCOPE_ORG, 0);
  }

  void Day(uint32_t key, absl::Time t, const std::string& person, const ZoneLookup& person_zone,
           absl::CivilDay* day_out = nullptr) {
    absl::CivilDay day = absl::ToCivilDay(t, Zone(person_zone(person)));
    Op(CompactOp::kSadd, key).atom = p_.Atom(DayMember(day));
    if (day_out != nullptr) *day_out = day;
  }

  // ZoneOf, with the zones loaded once per name (nullopt: not a zone, the
  // org's then, which may change).
  absl::TimeZone Zone(const std::string& name) {
    if (name.empty()) return calendar_.zone;
    auto it = p_.zones_.find(name);
    if (it == p_.zones_.end()) {
      if (p_.zones_.size() >= 1024) p_.zones_.clear();  // bounded; refilled on demand
      absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(name);
      it = p_.zones_.emplace(name, zone.ok() ? std::optional<absl::TimeZone>(*zone) : std::nullopt)
               .first;
    }
    return it->second.has_value() ? *it->second : calendar_.zone;
  }

  CompactPlan& plan() { return plan_; }
  RebuildPlanner& planner() { return p_; }
  const OrgCalendar& calendar() const { return calendar_; }

 private:
  static constexpr size_t kYearIndex = 4;     // AllWindows()[4] == WINDOW_YEAR
  static constexpr size_t kAllTimeIndex = 5;  // AllWindows()[5] == WINDOW_ALL_TIME
  RebuildPlanner& p_;
  const OrgCalendar& calendar_;
  CompactPlan plan_;
  std::vector<uint32_t> years_;  // years added to YearsKey by this plan
};

CompactPlan RebuildPlanner::PlanKudos(absl::string_view entry_id,
                                      const kudos::v1::KudosEvent& event,
                                      const OrgCalendar& calendar, const ZoneLookup& person_zone) {
  Builder b(*this, 'k', entry_id, calendar);
  switch (event.event_case()) {
    case kudos::v1::KudosEvent::kKudosSent: {
      const kudos::v1::KudosSent& sent = event.kudos_sent();
      const kudos::v1::Kudos& kudos = sent.kudos();
      const bool from_company = kudos.from_company();
      if (kudos.kudos_id().empty() || (!from_company && !ValidId(kudos.giver_id()))) break;
      absl::Time t = KudosTime(kudos, event);
      const std::string& giver = kudos.giver_id();
      uint32_t giver_atom = Atom(giver);
      if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
        b.Guard(absl::StrCat("kudos:", kudos.kudos_id()));
        if (!from_company) b.Day(KeysOf(giver_atom).giving, t, giver, person_zone);
        for (const std::string& r : CountedRecipients(kudos)) {
          b.Day(KeysOf(Atom(r)).receiving, t, r, person_zone);
        }
        break;
      }
      std::vector<std::string> values = CleanValues({kudos.values().begin(), kudos.values().end()});
      std::vector<std::string> recipients = CountedRecipients(kudos);
      b.Guard(absl::StrCat("kudos:", kudos.kudos_id()));
      uint32_t ms = b.Text(Ms(t));
      absl::CivilDay giver_day;
      auto badge = [&](CompactOp::Code code, uint32_t badges, const char* name) -> CompactOp& {
        CompactOp& op = b.Op(code, badges);
        op.atom = Atom(name);
        op.text = ms;
        return op;
      };
      auto threshold = [&](uint32_t badges, const char* name, uint32_t board, uint32_t member,
                           int64_t at) {
        CompactOp& op = badge(CompactOp::kThreshold, badges, name);
        op.key2 = board;
        op.atom2 = member;
        op.number = at;
      };
      PersonKeys giver_keys;
      if (!from_company) {
        b.AddPerson(v1::METRIC_KUDOS_GIVEN, giver, sent.giver_team_id(), values, 1, t);
        giver_keys = KeysOf(giver_atom);
        b.Day(giver_keys.giving, t, giver, person_zone, &giver_day);
        uint32_t given_all = b.AllTimeBoard(v1::METRIC_KUDOS_GIVEN);
        badge(CompactOp::kHsetnx, giver_keys.badges, "first_kudos_given");
        threshold(giver_keys.badges, "given_10", given_all, giver_atom, 10);
        threshold(giver_keys.badges, "given_50", given_all, giver_atom, 50);
      }
      uint32_t received_all = b.AllTimeBoard(v1::METRIC_KUDOS_RECEIVED);
      for (const std::string& r : recipients) {
        b.AddPerson(v1::METRIC_KUDOS_RECEIVED, r, TeamOf(sent.recipient_team_ids(), r), values, 1,
                    t);
        uint32_t r_atom = Atom(r);
        PersonKeys keys = KeysOf(r_atom);
        b.Day(keys.receiving, t, r, person_zone);
        for (const std::string& value : values) {
          b.Op(CompactOp::kSadd, keys.values).atom = ValueMemberAtom(value);
        }
        badge(CompactOp::kHsetnx, keys.badges, "first_kudos_received");
        threshold(keys.badges, "received_10", received_all, r_atom, 10);
        threshold(keys.badges, "received_50", received_all, r_atom, 50);
        threshold(keys.badges, "received_100", received_all, r_atom, 100);
        if (!calendar.values.empty()) {
          CompactOp& op = badge(CompactOp::kAllValues, keys.badges, "all_values_received");
          op.key2 = keys.values;
          op.atom2 = static_cast<uint32_t>(b.plan().lists.size());
          op.number = static_cast<int64_t>(2 * calendar.values.size());
          for (const std::string& value : calendar.values) {
            b.plan().lists.insert(b.plan().lists.end(), {ValueMemberAtom(value), Atom(value)});
          }
        }
      }
      if (!from_company) {
        b.plan().streak_checks.push_back({giver_keys.giving, giver_keys.badges, giver_day, t});
      }
      break;
    }
    case kudos::v1::KudosEvent::kOrgSettingsChanged:
      b.Op(CompactOp::kSet, Key(SettingsKey(org_))).text =
          b.Text(event.org_settings_changed().settings().SerializeAsString());
      break;
    case kudos::v1::KudosEvent::kPersonChanged: {
      const kudos::v1::Person& person = event.person_changed().person();
      if (!ValidId(person.person_id())) break;
      CompactOp& set = b.Op(CompactOp::kHset, Key(PeopleKey(org_)));
      set.atom = Atom(person.person_id());
      set.text = b.Text(person.SerializeAsString());
      b.Op(person.hidden_from_leaderboards() ? CompactOp::kSadd : CompactOp::kSrem,
           Key(HiddenKey(org_)))
          .atom = Atom(person.person_id());
      break;
    }
    case kudos::v1::KudosEvent::kKudosRetracted: {
      const kudos::v1::KudosRetracted& retracted = event.kudos_retracted();
      const kudos::v1::Kudos& kudos = retracted.kudos();
      if (kudos.kudos_id().empty() || (!kudos.from_company() && !ValidId(kudos.giver_id()))) break;
      if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) break;  // counted nothing
      absl::Time t = KudosTime(kudos, event);
      std::vector<std::string> values = CleanValues({kudos.values().begin(), kudos.values().end()});
      b.Guard(absl::StrCat("retracted:", kudos.kudos_id()), 'r',
              kRetractionGuardDays * 86400 * 1000);
      if (!kudos.from_company()) {
        b.AddPerson(v1::METRIC_KUDOS_GIVEN, kudos.giver_id(), retracted.giver_team_id(), values,
                    -1, t);
      }
      for (const std::string& r : CountedRecipients(kudos)) {
        b.AddPerson(v1::METRIC_KUDOS_RECEIVED, r, TeamOf(retracted.recipient_team_ids(), r),
                    values, -1, t);
      }
      break;
    }
    case kudos::v1::KudosEvent::kTeamChanged: {
      const kudos::v1::Team& team = event.team_changed().team();
      if (!ValidId(team.team_id())) break;
      CompactOp& set = b.Op(CompactOp::kHset, Key(TeamsKey(org_)));
      set.atom = Atom(team.team_id());
      set.text = b.Text(team.SerializeAsString());
      break;
    }
    default:
      break;
  }
  return std::move(b.plan());
}

CompactPlan RebuildPlanner::PlanLedger(absl::string_view entry_id,
                                       const ledger::v1::LedgerEvent& event,
                                       const OrgCalendar& calendar) {
  Builder b(*this, 'l', entry_id, calendar);
  if (event.has_transfers_posted()) {
    const ledger::v1::TransfersPosted& posted = event.transfers_posted();
    for (const ledger::v1::Transfer& transfer : posted.transfers()) {
      std::optional<BoardPoints> points = PointsOf(transfer, FromProto(posted.post_time()));
      if (!points.has_value()) continue;
      b.Guard(absl::StrCat("transfer:", transfer.transfer_id()));
      b.AddPerson(v1::METRIC_POINTS_RECEIVED, points->person, points->team, points->values,
                  points->amount, points->time);
    }
  }
  return std::move(b.plan());
}

ApplyPlan ExpandCompactPlan(absl::string_view org, const CompactPlan& plan,
                            const std::vector<std::string>& keys,
                            const std::vector<std::string>& atoms) {
  ApplyPlan out;
  absl::flat_hash_map<uint32_t, int> index;
  auto idx = [&](uint32_t key) {
    auto [it, added] = index.try_emplace(key, 0);
    if (added) {
      out.keys.push_back(keys[key]);
      it->second = static_cast<int>(out.keys.size());
    }
    return absl::StrCat(it->second);
  };
  idx(0);  // the marks
  out.keys.push_back(RebuildLockKey(org));
  out.args = {absl::StrCat(std::string(1, plan.stream), ":", plan.entry_id), ""};
  auto add = [&](std::initializer_list<std::string> op) {
    out.args.insert(out.args.end(), op.begin(), op.end());
  };
  for (const CompactOp& op : plan.ops) {
    switch (op.code) {
      case CompactOp::kGuard:
        add({"G", plan.texts[op.text], idx(op.key), absl::StrCat(op.number)});
        break;
      case CompactOp::kZincr:
        add({"Z", idx(op.key), atoms[op.atom], absl::StrCat(op.number),
             absl::StrCat(op.expire_at)});
        break;
      case CompactOp::kSadd:
      case CompactOp::kSrem:
        add({op.code == CompactOp::kSadd ? "S" : "R", idx(op.key), atoms[op.atom]});
        break;
      case CompactOp::kHset:
      case CompactOp::kHsetnx:
        add({op.code == CompactOp::kHset ? "H" : "N", idx(op.key), atoms[op.atom],
             plan.texts[op.text]});
        break;
      case CompactOp::kSet:
        add({"P", idx(op.key), plan.texts[op.text]});
        break;
      case CompactOp::kDel:
        add({"D", idx(op.key)});
        break;
      case CompactOp::kThreshold:
        add({"T", idx(op.key), atoms[op.atom], plan.texts[op.text], idx(op.key2),
             atoms[op.atom2], absl::StrCat(op.number)});
        break;
      case CompactOp::kAllValues: {
        add({"V", idx(op.key), atoms[op.atom], plan.texts[op.text], idx(op.key2),
             absl::StrCat(op.number)});
        for (int64_t i = 0; i < op.number; ++i) out.args.push_back(atoms[plan.lists[op.atom2 + i]]);
        break;
      }
    }
  }
  for (const CompactPlan::StreakCheck& check : plan.streak_checks) {
    // DaysKey(org, "giving", person): the person is the key's last part.
    const std::string& days = keys[check.days_key];
    out.streak_checks.push_back(
        {days.substr(days.rfind("giving:") + 7), check.day, check.time});
  }
  return out;
}

}  // namespace leaderboard
