#include "services/leaderboard/leaderboard_events.h"

#include "services/leaderboard/seasons.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/events/leaderboard_event.h"
#include "common/log/log.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_store.h"

// The events' flags live here, beside what they configure (main.cc reads
// them through EventsOptionsFromFlags()).
ABSL_FLAG(bool, lb_events, common::config::IntEnvOr("LB_EVENTS", 1) != 0,
          "append badge.earned, streak.extended and period.closed to lb:{org}:events "
          "(env LB_EVENTS, 0 = off)");
ABSL_FLAG(bool, lb_events_full, common::config::IntEnvOr("LB_EVENTS_FULL", 0) != 0,
          "append badge and streak events in their full form (org, event_id and a badge's earn "
          "times in each): only for the rolling upgrade from a version whose readers take only "
          "that form (env LB_EVENTS_FULL, 1 = on; docs/retention-leaderboard.md)");
ABSL_FLAG(int64_t, lb_events_max_len, common::config::IntEnvOr("LB_EVENTS_MAX_LEN", 100000, 1),
          "entries kept in each org's lb:{org}:events (XADD MAXLEN ~; env LB_EVENTS_MAX_LEN)");
ABSL_FLAG(int, lb_events_top_n,
          static_cast<int>(common::config::IntEnvOr("LB_EVENTS_TOP_N", 10, 1)),
          "entries of a period.closed event, the board's final top N, at most 100 "
          "(env LB_EVENTS_TOP_N)");
ABSL_FLAG(int, lb_events_close_grace_s,
          static_cast<int>(common::config::IntEnvOr("LB_EVENTS_CLOSE_GRACE_S", 300, 0)),
          "a period closes once the consumer has applied everything up to its end plus this "
          "(late events still count) (env LB_EVENTS_CLOSE_GRACE_S)");
ABSL_FLAG(int, lb_events_sweep_interval_s,
          static_cast<int>(common::config::IntEnvOr("LB_EVENTS_SWEEP_INTERVAL_S", 60, 1)),
          "how often the consumer looks for closed periods (env LB_EVENTS_SWEEP_INTERVAL_S)");

namespace leaderboard {

namespace v1 = leaderboard::v1;
using common::calendar::Period;
using common::redis::Reply;

namespace {

// One script: the marker (NX, expiring) and every event of the period, or
// nothing when the marker was there (another sweep closed it).
// KEYS[1] marker, KEYS[2] events stream; ARGV[1] marker expiry (unix s),
// ARGV[2] max len, ARGV[3..] events. Returns the events appended, -1 when
// closed before.
constexpr char kCloseLua[] = R"lua(
if not redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then return -1 end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[i])
end
return #ARGV - 2
)lua";

// Markers outlive the span in which their period is looked at.
constexpr absl::Duration kMarkerMargin = absl::Hours(24 * 8);

const v1::Window kClosedWindows[] = {v1::WINDOW_DAY, v1::WINDOW_WEEK, v1::WINDOW_MONTH,
                                     v1::WINDOW_QUARTER, v1::WINDOW_YEAR};
const v1::Metric kMetrics[] = {v1::METRIC_POINTS_RECEIVED, v1::METRIC_KUDOS_RECEIVED,
                               v1::METRIC_KUDOS_GIVEN};

v1::LeaderboardEvent NewEvent(absl::string_view org, std::string event_id, int64_t ms) {
  v1::LeaderboardEvent event;
  event.set_event_id(std::move(event_id));
  event.set_org_id(std::string(org));
  ToProto(absl::FromUnixMillis(ms), event.mutable_event_time());
  return event;
}

// What the stream keeps of a badge or streak event: the stored form
// (common/events/leaderboard_event.h), or the full one during a rolling upgrade.
std::string ForStream(const v1::LeaderboardEvent& event) {
  return absl::GetFlag(FLAGS_lb_events_full) ? event.SerializeAsString()
                                             : common::events::StoredEvent(event);
}

std::string WorkDaysText(const OrgCalendar& calendar) {
  std::string out;
  for (int day : calendar.work_days) absl::StrAppend(&out, day);
  return out;
}

std::string HolidaysText(const OrgCalendar& calendar) {
  std::vector<std::string> days;
  for (absl::CivilDay day : calendar.holidays) days.push_back(absl::FormatCivilTime(day));
  return absl::StrJoin(days, ",");
}

}  // namespace

std::string EventsStream(absl::string_view org) { return absl::StrCat(Prefix(org), "events"); }

std::string PeriodClosedMarkerKey(absl::string_view org, absl::string_view window,
                                  absl::string_view period) {
  return absl::StrCat("lbctl:{", org, "}:closed:", window, ":", period);
}

EventsOptions EventsOptionsFromFlags() {
  EventsOptions options;
  options.enabled = absl::GetFlag(FLAGS_lb_events);
  options.max_len = absl::GetFlag(FLAGS_lb_events_max_len);
  options.top_n = std::clamp(absl::GetFlag(FLAGS_lb_events_top_n), 1, 100);
  options.close_grace = absl::Seconds(absl::GetFlag(FLAGS_lb_events_close_grace_s));
  options.sweep_interval = absl::Seconds(std::max(1, absl::GetFlag(FLAGS_lb_events_sweep_interval_s)));
  return options;
}

std::string BadgeEventId(absl::string_view person, absl::string_view badge) {
  return common::events::BadgeEventId(person, badge);
}

std::string StreakEventId(absl::string_view kind, absl::string_view person, absl::CivilDay day) {
  return common::events::StreakEventId(kind, person, absl::FormatCivilTime(day));
}

std::string PeriodClosedEventId(v1::Metric metric, v1::Window window, absl::string_view period,
                                absl::string_view scope) {
  return absl::StrCat("period.closed/", MetricName(metric), "/", WindowName(window), "/", period,
                      "/", scope);
}

std::string BadgeEarnedEvent(absl::string_view org, absl::string_view person,
                             absl::string_view badge, int64_t earn_ms,
                             absl::string_view cause_kudos_id) {
  v1::LeaderboardEvent event = NewEvent(org, BadgeEventId(person, badge), earn_ms);
  v1::BadgeEarned* earned = event.mutable_badge_earned();
  earned->set_person_id(std::string(person));
  earned->mutable_badge()->set_badge_id(std::string(badge));
  const BadgeRule* rule = FindBadge(badge);
  earned->mutable_badge()->set_display_name(rule != nullptr ? rule->display_name
                                                            : std::string(badge));
  ToProto(absl::FromUnixMillis(earn_ms), earned->mutable_badge()->mutable_earn_time());
  *earned->mutable_earned_time() = earned->badge().earn_time();
  earned->set_cause_kudos_id(std::string(cause_kudos_id));
  return ForStream(event);
}

std::string StreakExtendedEventPrefix(absl::string_view org, absl::string_view kind,
                                      absl::string_view person, absl::CivilDay day, int64_t ms,
                                      absl::string_view cause_kudos_id) {
  v1::LeaderboardEvent event = NewEvent(org, StreakEventId(kind, person, day), ms);
  v1::StreakExtended* streak = event.mutable_streak_extended();
  streak->set_person_id(std::string(person));
  streak->set_kind(kind == "giving" ? v1::STREAK_KIND_GIVING : v1::STREAK_KIND_RECEIVING);
  streak->mutable_day()->set_year(static_cast<int32_t>(day.year()));
  streak->mutable_day()->set_month(day.month());
  streak->mutable_day()->set_day(day.day());
  streak->set_cause_kudos_id(std::string(cause_kudos_id));
  return ForStream(event);
}

void AddEmitOp(ApplyPlan& plan, absl::string_view org, const kudos::v1::KudosEvent& event,
               const OrgCalendar& calendar, const EventsOptions& options) {
  if (!options.enabled || !event.has_kudos_sent() || plan.empty()) return;
  const kudos::v1::Kudos& kudos = event.kudos_sent().kudos();
  // A private kudos appends nothing to the org's stream (issue 18).
  if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) return;
  absl::Time t = kudos.has_create_time() ? FromProto(kudos.create_time())
                                         : FromProto(event.event_time());
  std::string stream = EventsStream(org);
  plan.keys.push_back(stream);
  plan.args.insert(plan.args.end(),
                   {"E", absl::StrCat(plan.keys.size()), absl::StrCat(options.max_len),
                    kudos.kudos_id(), absl::StrCat(absl::ToUnixMillis(t)),
                    absl::StrCat(calendar.freezes_per_month), WorkDaysText(calendar),
                    HolidaysText(calendar)});
}

// ---------------------------------------------------------------- PeriodCloser

PeriodCloser::PeriodCloser(Store& store, EventsOptions options)
    : store_(store), options_(options), close_script_("leaderboard_close_period", kCloseLua) {
  KUDOS_CHECK(options_.top_n >= 1 && options_.max_len >= 1 && options_.max_teams >= 1 &&
                  options_.max_periods_per_run >= 1,
              "a period close lists a bounded, positive number of entries");
}

absl::StatusOr<absl::Time> PeriodCloser::Position(const std::string& org, absl::Time now) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = store_.pool().Pipeline(
      {{"HMGET", MarksKey(org), "k", "l"},
       {"XREVRANGE", KudosStream(org), "+", "-", "COUNT", "1"},
       {"XREVRANGE", LedgerStream(org), "+", "-", "COUNT", "1"}});
  if (!replies.ok()) return replies.status();
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
  }
  const Reply& marks = *(*replies)[0];
  if (marks.elements.size() != 2) return absl::InternalError("HMGET: unexpected reply");
  absl::Time position = now;
  for (int s = 0; s < 2; ++s) {
    std::vector<StreamEntry> last = ParseEntries(*(*replies)[1 + s]);
    if (last.empty()) continue;  // an empty stream holds nothing back
    const Reply& mark = marks.elements[s];
    // Caught up: nothing after the mark, so everything before now is applied.
    if (!mark.is_nil() && !StreamIdLess(mark.str, last[0].id)) continue;
    std::optional<int64_t> ms = mark.is_nil() ? std::optional<int64_t>(0) : StreamIdMs(mark.str);
    if (!ms.has_value()) return absl::InternalError(absl::StrCat("bad mark '", mark.str, "'"));
    position = std::min(position, absl::FromUnixMillis(*ms));
  }
  return position;
}

absl::StatusOr<PeriodCloser::Result> PeriodCloser::RunOnce(const std::string& org,
                                                           absl::Time now) {
  Result result;
  if (!options_.enabled) return result;
  absl::StatusOr<absl::Time> position = Position(org, now);
  if (!position.ok()) return position.status();
  if (*position <= absl::UnixEpoch()) return result;  // nothing applied yet
  if (seasons_ != nullptr) {
    absl::StatusOr<SeasonCloser::Result> seasons = seasons_->RunOnce(org, now, *position);
    if (!seasons.ok()) return seasons.status();
    result.seasons_closed = seasons->closed;
    result.events += seasons->closed;
  }
  absl::StatusOr<OrgCalendar> calendar = store_.Calendar(org);
  if (!calendar.ok()) return calendar.status();
  absl::Time closed_by = *position - options_.close_grace;
  // The candidates: per window, the periods that ended within the lookback.
  std::vector<std::pair<v1::Window, Period>> due;
  for (v1::Window window : kClosedWindows) {
    common::calendar::PeriodUnit unit = WindowUnit(window);
    Period current = common::calendar::PeriodAt(unit, closed_by, calendar->zone,
                                                calendar->week_start);
    // Bounded: a day window over a week of lookback is 7 periods.
    for (int back = 0; back < 40; ++back) {
      Period previous = common::calendar::PeriodAt(unit, current.start - absl::Nanoseconds(1),
                                                   calendar->zone, calendar->week_start);
      if (previous.end <= closed_by - options_.close_lookback) break;
      due.emplace_back(window, previous);
      current = previous;
    }
  }
  if (due.empty()) return result;
  // Oldest first: a backlog of closes goes out in the order periods ended.
  std::stable_sort(due.begin(), due.end(), [](const auto& a, const auto& b) {
    return a.second.end < b.second.end;
  });
  // The markers first: a closed period costs one EXISTS per sweep.
  std::vector<common::redis::Command> exists;
  for (const auto& [window, period] : due) {
    exists.push_back({"EXISTS", PeriodClosedMarkerKey(org, WindowName(window), period.key)});
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> found = store_.pool().Pipeline(exists);
  if (!found.ok()) return found.status();
  int built = 0;
  for (size_t i = 0; i < due.size() && built < options_.max_periods_per_run; ++i) {
    if (!(*found)[i].ok()) return (*found)[i].status();
    if ((*found)[i]->integer == 1) continue;
    ++built;
    const auto& [window, period] = due[i];
    absl::StatusOr<std::vector<std::string>> events = BuildEvents(org, window, period);
    if (!events.ok()) return events.status();
    absl::Time expire = std::max(period.end + options_.close_grace + options_.close_lookback, now) +
                        kMarkerMargin;
    std::vector<std::string> args = {absl::StrCat(absl::ToUnixSeconds(expire)),
                                     absl::StrCat(options_.max_len)};
    args.insert(args.end(), events->begin(), events->end());
    std::string marker = PeriodClosedMarkerKey(org, WindowName(window), period.key);
    KUDOS_CHECK(absl::StrContains(marker, absl::StrCat("{", org, "}")) &&
                    absl::StrContains(EventsStream(org), absl::StrCat("{", org, "}")),
                "a period close touches only its org's slot");
    absl::StatusOr<Reply> closed =
        store_.pool().Eval(close_script_, {marker, EventsStream(org)}, args);
    if (!closed.ok()) return closed.status();
    if (closed->integer < 0) continue;  // another sweep closed it first
    ++result.periods_closed;
    result.events += static_cast<int>(closed->integer);
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> PeriodCloser::TeamsOf(const std::string& org,
                                                               v1::Window window,
                                                               const Period& period) {
  // The teams with entries: members of the period's teams-scope boards of
  // every metric (a quarter's are derived: its months').
  std::vector<std::string> sources;
  for (v1::Metric metric : kMetrics) {
    std::string key = BoardKey(org, metric, window, period.key, v1::SCOPE_TEAMS, "");
    if (!BoardDerived(window, v1::SCOPE_TEAMS)) {
      sources.push_back(key);
      continue;
    }
    std::optional<DerivedBoard> derived = ParseDerivedBoard(key);
    if (!derived.has_value()) return absl::InternalError("a derived quarter board");
    sources.insert(sources.end(), derived->sources.begin(), derived->sources.end());
  }
  std::vector<common::redis::Command> reads;
  for (const std::string& source : sources) {
    reads.push_back({"ZRANGE", source, "0", absl::StrCat(options_.max_teams - 1)});
  }
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = store_.pool().Pipeline(reads);
  if (!replies.ok()) return replies.status();
  std::set<std::string> teams;
  for (const absl::StatusOr<Reply>& reply : *replies) {
    if (!reply.ok()) return reply.status();
    for (const Reply& team : reply->elements) {
      if (static_cast<int>(teams.size()) < options_.max_teams && ValidId(team.str)) {
        teams.insert(team.str);
      }
    }
  }
  return std::vector<std::string>(teams.begin(), teams.end());
}

absl::StatusOr<std::vector<std::string>> PeriodCloser::BuildEvents(const std::string& org,
                                                                   v1::Window window,
                                                                   const Period& period) {
  absl::StatusOr<std::vector<std::string>> teams = TeamsOf(org, window, period);
  if (!teams.ok()) return teams.status();
  std::vector<std::pair<v1::Scope, std::string>> scopes = {{v1::SCOPE_ORG, ""}};
  for (const std::string& team : *teams) scopes.emplace_back(v1::SCOPE_TEAM, team);
  std::vector<std::string> out;
  for (v1::Metric metric : kMetrics) {
    for (const auto& [scope, scope_id] : scopes) {
      std::string key = BoardKey(org, metric, window, period.key, scope, scope_id);
      absl::StatusOr<BoardPage> page = store_.FirstPage(key, options_.top_n);
      if (!page.ok()) return page.status();
      if (page->entries.empty()) continue;
      std::vector<std::string> ids;
      for (const RankedEntry& entry : page->entries) ids.push_back(entry.subject_id);
      absl::StatusOr<std::map<std::string, std::string>> names =
          store_.DisplayNames(org, /*teams=*/false, ids);
      if (!names.ok()) return names.status();
      std::string scope_name = ScopeName(scope, scope_id);
      v1::LeaderboardEvent event =
          NewEvent(org, PeriodClosedEventId(metric, window, period.key, scope_name),
                   absl::ToUnixMillis(period.end));
      v1::PeriodClosed* closed = event.mutable_period_closed();
      v1::Board* board = closed->mutable_board();
      board->set_metric(metric);
      board->set_window(window);
      board->set_scope(scope);
      board->set_scope_id(scope_id);
      board->set_period(period.key);
      closed->set_period(period.key);
      ToProto(period.start, closed->mutable_period_start());
      ToProto(period.end, closed->mutable_period_end());
      closed->set_total_entries(page->total);
      for (const RankedEntry& entry : page->entries) {
        v1::LeaderboardEntry* e = closed->add_entries();
        e->set_rank(entry.rank);
        e->set_subject_id(entry.subject_id);
        auto name = names->find(entry.subject_id);
        e->set_display_name(name == names->end() ? entry.subject_id : name->second);
        e->set_score(entry.score);
      }
      out.push_back(event.SerializeAsString());
    }
  }
  return out;
}

PeriodSweep::Turn PeriodSweep::RunTurn(const std::set<std::string>& orgs, absl::Time now,
                                       const std::function<bool()>& over_budget) {
  Turn turn;
  if (!in_round_) resume_at_.clear();
  in_round_ = true;
  // Bounded: each org at most once a turn.
  for (auto it = orgs.lower_bound(resume_at_); it != orgs.end(); ++it) {
    if (turn.orgs > 0 && over_budget()) {
      resume_at_ = *it;
      return turn;
    }
    ++turn.orgs;
    absl::StatusOr<PeriodCloser::Result> closed = closer_.RunOnce(*it, now);
    if (!closed.ok()) {
      common::log::Warning(absl::StrCat("leaderboard: closing the periods of org '", *it,
                                        "': ", closed.status().ToString()));
      continue;
    }
    turn.periods_closed += closed->periods_closed;
    turn.events += closed->events;
    if (closed->periods_closed > 0) {
      common::log::Info(absl::StrCat("leaderboard: org '", *it, "': ", closed->periods_closed,
                                     " periods closed, ", closed->events, " events"));
    }
  }
  in_round_ = false;
  turn.round_done = true;
  return turn;
}

}  // namespace leaderboard
