#include "services/leaderboard/insights_service.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/ids.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard::insights {

using common::auth::Principal;

namespace {

absl::Status BadId(absl::string_view field, absl::string_view id) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", id, "' must be 1..64 characters of [A-Za-z0-9._-]"));
}

void Stamp(absl::Time t, google::protobuf::Timestamp* ts) { ToProto(t, ts); }

}  // namespace

Reader::Reader(Store& store, InsightsStore& insights, int64_t unrecognized_limit)
    : store_(store), insights_(insights), unrecognized_limit_(std::max<int64_t>(1, unrecognized_limit)) {}

absl::Status Reader::CheckCaller(const Principal& who, const std::string& team_id) {
  bool admin = who.is_admin();
  if (!admin && !who.Has(common::auth::Role::kManager)) {
    return absl::PermissionDeniedError(
        "insights are for the managers of a team (its members' manager_id) and admins; members "
        "and screens see none");
  }
  if (team_id.empty() && !admin) {
    return absl::PermissionDeniedError("team_id: org-wide insights are for admins only");
  }
  if (!team_id.empty() && !common::auth::ValidId(team_id)) return BadId("team_id", team_id);
  return absl::OkStatus();
}

absl::StatusOr<Reader::Scope> Reader::ResolveScope(const Principal& who,
                                                   const std::string& team_id) {
  Scope scope;
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> people = store_.AllPeople(who.org);
  if (!people.ok()) return people.status();
  scope.people = *std::move(people);
  bool known = team_id.empty();
  bool manages = false;
  for (const auto& [id, person] : scope.people) {
    if (!team_id.empty() && person.team_id() != team_id) continue;
    known = true;
    if (!person.active()) continue;
    scope.members.push_back(id);
    if (!who.subject.empty() && person.manager_id() == who.subject) manages = true;
  }
  if (!known) {
    absl::StatusOr<std::map<std::string, kudos::v1::Team>> teams = store_.Teams(who.org, {team_id});
    if (!teams.ok()) return teams.status();
    known = teams->count(team_id) > 0;
  }
  if (!known) {
    return absl::NotFoundError(absl::StrCat("team_id: '", team_id, "' is not a team of this org"));
  }
  if (!who.is_admin() && !manages) {
    return absl::PermissionDeniedError(absl::StrCat(
        "team_id: '", team_id, "' has no active member managed by the caller"));
  }
  return scope;
}

absl::Status Reader::Figures(const std::string& org, v1::Window window,
                             const common::calendar::Period& period, const Scope& scope,
                             const std::vector<std::pair<std::string, std::string>>& catalog,
                             v1::InsightFigures* out) {
  std::vector<std::string> value_ids;
  for (const auto& [id, name] : catalog) value_ids.push_back(id);
  absl::StatusOr<std::map<std::string, PersonCounters>> counters =
      insights_.Counters(org, window, period.key, scope.members, value_ids);
  if (!counters.ok()) return counters.status();
  absl::StatusOr<std::vector<PairCounts>> pairs = insights_.Candidates(org, window, period.key);
  if (!pairs.ok()) return pairs.status();
  absl::StatusOr<bool> truncated = insights_.PairsTruncated(org, window, period.key);
  if (!truncated.ok()) return truncated.status();
  ComputeFigures(scope.members, *counters, catalog, *pairs, out);
  out->set_period(period.key);
  Stamp(period.start, out->mutable_period_start());
  Stamp(period.end, out->mutable_period_end());
  out->set_pairs_truncated(*truncated);
  return absl::OkStatus();
}

absl::Status Reader::GetInsights(const Principal& who, const v1::GetInsightsRequest& request,
                                 v1::GetInsightsResponse& response) {
  if (absl::Status s = CheckCaller(who, request.team_id()); !s.ok()) return s;
  v1::Window window =
      request.window() == v1::WINDOW_UNSPECIFIED ? v1::WINDOW_MONTH : request.window();
  if (!SupportedWindow(window)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "window: ", v1::Window_Name(window).empty() ? absl::StrCat(request.window())
                                                    : v1::Window_Name(window),
        " is not an insights window (WINDOW_DAY, _WEEK, _MONTH, _QUARTER or _YEAR)"));
  }
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(who.org);
  if (!calendar.ok()) return calendar.status();
  common::calendar::PeriodUnit unit = Unit(window);
  common::calendar::Period period;
  if (request.period().empty()) {
    period = common::calendar::PeriodAt(unit, absl::Now(), calendar->zone, calendar->week_start);
  } else {
    absl::StatusOr<common::calendar::Period> parsed =
        common::calendar::ParsePeriod(unit, request.period(), calendar->zone, calendar->week_start);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("period: '", request.period(),
                                                     "' is not a period of ", WindowKeyName(window),
                                                     ": ", parsed.status().message()));
    }
    period = *parsed;
  }
  common::calendar::Period previous = common::calendar::PeriodOfDay(
      unit, period.first_day - 1, calendar->zone, calendar->week_start);

  absl::StatusOr<Scope> scope = ResolveScope(who, request.team_id());
  if (!scope.ok()) return scope.status();

  // Fields 1..6, as before: from the boards of the window and period.
  v1::Board board;
  board.set_window(window);
  board.set_scope(v1::SCOPE_ORG);
  board.set_period(period.key);
  board.set_metric(v1::METRIC_KUDOS_RECEIVED);
  absl::StatusOr<ResolvedBoard> received = ResolveBoard(who.org, board, *calendar, absl::Now());
  if (!received.ok()) return received.status();
  board.set_metric(v1::METRIC_KUDOS_GIVEN);
  absl::StatusOr<ResolvedBoard> given = ResolveBoard(who.org, board, *calendar, absl::Now());
  if (!given.ok()) return given.status();
  absl::StatusOr<std::map<std::string, int64_t>> recognized =
      store_.Scores(received->key, scope->members);
  if (!recognized.ok()) return recognized.status();
  absl::StatusOr<std::map<std::string, int64_t>> givers = store_.Scores(given->key, scope->members);
  if (!givers.ok()) return givers.status();
  int64_t recognized_count = 0, giving_count = 0;
  for (const std::string& id : scope->members) {
    auto r = recognized->find(id);
    if (r != recognized->end() && r->second > 0) {
      ++recognized_count;
    } else {
      response.add_unrecognized_person_ids(id);
    }
    auto g = givers->find(id);
    if (g != givers->end() && g->second > 0) ++giving_count;
  }
  int64_t members = static_cast<int64_t>(scope->members.size());
  response.set_member_count(members);
  response.set_recognized_count(recognized_count);
  response.set_giving_count(giving_count);
  response.set_recognition_coverage_percent(
      members == 0 ? 0 : 100.0 * static_cast<double>(recognized_count) / static_cast<double>(members));
  response.set_period(received->period.key);

  // The figures kept by the insights consumer.
  response.set_team_id(request.team_id());
  response.set_window(window);
  absl::StatusOr<kudos::v1::OrgSettings> settings = store_.Settings(who.org);
  if (!settings.ok()) return settings.status();
  std::vector<std::pair<std::string, std::string>> catalog;
  std::set<std::string> seen;
  for (const kudos::v1::Value& value : settings->values()) {
    if (seen.insert(value.value_id()).second) {
      catalog.emplace_back(value.value_id(), value.display_name());
    }
  }
  if (absl::Status s = Figures(who.org, window, period, *scope, catalog, response.mutable_current());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          Figures(who.org, window, previous, *scope, catalog, response.mutable_previous());
      !s.ok()) {
    return s;
  }
  ComputeTrend(response.current(), response.previous(), response.mutable_trend());
  return absl::OkStatus();
}

absl::Status Reader::ListUnrecognized(const Principal& who,
                                      const v1::ListUnrecognizedRequest& request,
                                      v1::ListUnrecognizedResponse& response) {
  if (absl::Status s = CheckCaller(who, request.team_id()); !s.ok()) return s;
  int days = request.days() == 0 ? kDefaultUnrecognizedDays : request.days();
  if (days < 1 || days > kMaxUnrecognizedDays) {
    return absl::InvalidArgumentError(
        absl::StrCat("days: ", request.days(), " is not within 1..", kMaxUnrecognizedDays));
  }
  int page_size = request.page_size() == 0 ? kDefaultUnrecognizedPageSize : request.page_size();
  if (page_size < 1 || page_size > kMaxUnrecognizedPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(),
                                                   " is not within 1..", kMaxUnrecognizedPageSize));
  }
  std::optional<UnrecognizedToken> after;
  if (!request.page_token().empty()) {
    absl::StatusOr<UnrecognizedToken> token = DecodeUnrecognizedToken(request.page_token());
    if (!token.ok()) return token.status();
    if (token->team_id != request.team_id() || token->days != days) {
      return absl::InvalidArgumentError(
          "page_token: belongs to another listing (team_id or days differ)");
    }
    after = *std::move(token);
  }
  absl::StatusOr<Scope> scope = ResolveScope(who, request.team_id());
  if (!scope.ok()) return scope.status();
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(who.org);
  if (!calendar.ok()) return calendar.status();
  absl::StatusOr<std::map<std::string, int64_t>> last =
      insights_.LastRecognized(who.org, scope->members);
  if (!last.ok()) return last.status();
  absl::CivilDay today = absl::ToCivilDay(absl::Now(), calendar->zone);
  struct Row {
    int64_t ms;
    std::string id;
    int64_t days_since;
  };
  std::vector<Row> rows;
  for (const std::string& id : scope->members) {
    auto it = last->find(id);
    int64_t ms = it == last->end() ? -1 : it->second;
    int64_t since = -1;
    if (ms >= 0) {
      since = today - absl::ToCivilDay(absl::FromUnixMillis(ms), calendar->zone);
      if (since < days) continue;
    }
    rows.push_back({ms, id, since});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.ms, a.id) < std::tie(b.ms, b.id);
  });
  response.set_total_count(static_cast<int64_t>(rows.size()));
  if (static_cast<int64_t>(rows.size()) > unrecognized_limit_) {
    response.set_truncated(true);
    rows.resize(static_cast<size_t>(unrecognized_limit_));
  }
  size_t start = 0;
  if (after) {
    start = static_cast<size_t>(
        std::upper_bound(rows.begin(), rows.end(), std::make_pair(after->last_ms, after->person_id),
                         [](const std::pair<int64_t, std::string>& key, const Row& row) {
                           return std::tie(key.first, key.second) < std::tie(row.ms, row.id);
                         }) -
        rows.begin());
  }
  size_t end = std::min(rows.size(), start + static_cast<size_t>(page_size));
  for (size_t i = start; i < end; ++i) {
    const Row& row = rows[i];
    v1::UnrecognizedPerson* out = response.add_people();
    out->set_person_id(row.id);
    const kudos::v1::Person& person = scope->people.at(row.id);
    out->set_display_name(person.display_name().empty() ? row.id : person.display_name());
    out->set_team_id(person.team_id());
    if (row.ms >= 0) Stamp(absl::FromUnixMillis(row.ms), out->mutable_last_recognized_time());
    out->set_days_since_recognized(row.days_since);
  }
  if (end < rows.size() && end > start) {
    response.set_next_page_token(EncodeUnrecognizedToken(
        UnrecognizedToken{request.team_id(), days, rows[end - 1].ms, rows[end - 1].id}));
  }
  return absl::OkStatus();
}

}  // namespace leaderboard::insights
