#include "services/leaderboard/leaderboard_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

namespace leaderboard {

using common::auth::Principal;
using common::grpc_util::ToGrpcStatus;

namespace {

constexpr int kDefaultPageSize = 10;
constexpr int kMaxPageSize = 100;
static_assert(kMaxWatchTopN == kMaxPageSize, "a watch shows at most one page");
constexpr int kMaxNeighbors = 50;

void FillPeriod(const common::calendar::Period& period, v1::Window window,
                google::protobuf::Timestamp* start, google::protobuf::Timestamp* end) {
  if (window == v1::WINDOW_ALL_TIME) return;
  ToProto(period.start, start);
  ToProto(period.end, end);
}

void FillDate(absl::CivilDay day, common::v1::Date* date) {
  date->set_year(static_cast<int32_t>(day.year()));
  date->set_month(day.month());
  date->set_day(day.day());
}

}  // namespace

LeaderboardServiceImpl::LeaderboardServiceImpl(common::auth::Guard auth, Store& store,
                                               Projector& projector, Watchers& watchers,
                                               insights::Reader& insights)
    : auth_(std::move(auth)),
      store_(store),
      projector_(projector),
      watchers_(watchers),
      insights_(insights) {}

absl::StatusOr<Principal> LeaderboardServiceImpl::Authenticate(
    grpc::ServerContextBase& context) {
  // Sync and callback contexts alike; also charges the rate limits.
  absl::StatusOr<Principal> who = auth_.Authenticate(context);
  if (!who.ok()) return who.status();
  if (!ValidId(who->org)) return absl::UnauthenticatedError("token: org claim is not a valid id");
  return who;
}

absl::Status LeaderboardServiceImpl::FillEntries(
    const std::string& org, bool teams, const std::vector<RankedEntry>& entries,
    google::protobuf::RepeatedPtrField<v1::LeaderboardEntry>* out) {
  std::vector<std::string> ids;
  for (const RankedEntry& entry : entries) ids.push_back(entry.subject_id);
  absl::StatusOr<std::map<std::string, std::string>> names = store_.DisplayNames(org, teams, ids);
  if (!names.ok()) return names.status();
  for (const RankedEntry& entry : entries) {
    v1::LeaderboardEntry* e = out->Add();
    e->set_rank(entry.rank);
    e->set_subject_id(entry.subject_id);
    e->set_display_name((*names)[entry.subject_id]);
    e->set_score(entry.score);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- boards

absl::Status LeaderboardServiceImpl::DoGetLeaderboard(const Principal& who,
                                                      const v1::GetLeaderboardRequest& request,
                                                      v1::GetLeaderboardResponse& response) {
  int page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  if (page_size < 1 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " is not within 1..", kMaxPageSize));
  }
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(who.org);
  if (!calendar.ok()) return calendar.status();
  v1::Board board = request.board();
  std::optional<PageToken> token;
  if (!request.page_token().empty()) {
    absl::StatusOr<PageToken> decoded = DecodePageToken(request.page_token());
    if (!decoded.ok()) return decoded.status();
    if (!board.period().empty() && board.window() != v1::WINDOW_ALL_TIME &&
        board.period() != decoded->period) {
      return absl::InvalidArgumentError("page_token: belongs to another period");
    }
    // A token keeps paging the period it started on, even after a rollover.
    if (board.window() != v1::WINDOW_ALL_TIME) board.set_period(decoded->period);
    token = *std::move(decoded);
  }
  absl::StatusOr<ResolvedBoard> resolved = ResolveBoard(who.org, board, *calendar, absl::Now());
  if (!resolved.ok()) return resolved.status();
  if (token && token->board_key != resolved->key) {
    return absl::InvalidArgumentError("page_token: belongs to another board");
  }
  absl::StatusOr<BoardPage> page =
      token ? store_.Page(resolved->key, token->direction, token->score, token->subject_id,
                          page_size)
            : store_.FirstPage(resolved->key, page_size);
  if (!page.ok()) return page.status();
  if (page->total == 0) {
    if (absl::Status known = CheckEmptyBoardScope(store_, who.org, board, *calendar); !known.ok()) {
      return known;
    }
  }
  if (absl::Status s = FillEntries(who.org, board.scope() == v1::SCOPE_TEAMS, page->entries,
                                   response.mutable_entries());
      !s.ok()) {
    return s;
  }
  auto make = [&](char direction, int64_t score, const std::string& subject) {
    return EncodePageToken(
        PageToken{direction, score, subject, resolved->period.key, resolved->key});
  };
  if (!page->entries.empty()) {
    if (page->has_next) {
      response.set_next_page_token(
          make('f', page->entries.back().score, page->entries.back().subject_id));
    }
    if (page->has_prev) {
      response.set_prev_page_token(
          make('b', page->entries.front().score, page->entries.front().subject_id));
    }
  } else if (token) {
    // An empty page (past the end, or before the start): the way back
    // includes the boundary entry itself.
    bool forward = token->direction == 'f' || token->direction == 'F';
    if (page->has_prev && forward) {
      response.set_prev_page_token(make('B', token->score, token->subject_id));
    }
    if (page->has_next && !forward) {
      response.set_next_page_token(make('F', token->score, token->subject_id));
    }
  }
  response.set_period(resolved->period.key);
  FillPeriod(resolved->period, board.window(), response.mutable_period_start(),
             response.mutable_period_end());
  response.set_total_entries(page->total);
  return absl::OkStatus();
}

grpc::Status LeaderboardServiceImpl::GetLeaderboard(grpc::ServerContext* context,
                                                    const v1::GetLeaderboardRequest* request,
                                                    v1::GetLeaderboardResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(DoGetLeaderboard(*who, *request, *response));
}

absl::Status LeaderboardServiceImpl::DoGetRank(const Principal& who,
                                               const v1::GetRankRequest& request,
                                               v1::GetRankResponse& response) {
  if (request.neighbors() < 0 || request.neighbors() > kMaxNeighbors) {
    return absl::InvalidArgumentError(
        absl::StrCat("neighbors: ", request.neighbors(), " is not within 0..", kMaxNeighbors));
  }
  if (!ValidId(request.subject_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subject_id: '", request.subject_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(who.org);
  if (!calendar.ok()) return calendar.status();
  absl::StatusOr<ResolvedBoard> resolved =
      ResolveBoard(who.org, request.board(), *calendar, absl::Now());
  if (!resolved.ok()) return resolved.status();
  absl::StatusOr<BoardAround> around =
      store_.Around(resolved->key, request.subject_id(), request.neighbors());
  if (!around.ok()) return around.status();
  if (around->total == 0) {
    if (absl::Status known = CheckEmptyBoardScope(store_, who.org, request.board(), *calendar);
        !known.ok()) {
      return known;
    }
  }
  bool teams = request.board().scope() == v1::SCOPE_TEAMS;
  response.set_ranked(around->ranked);
  response.set_total_entries(around->total);
  response.set_period(resolved->period.key);
  // One display-name lookup for the subject and its neighbors.
  std::vector<RankedEntry> all = {around->ranked ? around->entry
                                                 : RankedEntry{0, request.subject_id(), 0}};
  all.insert(all.end(), around->above.begin(), around->above.end());
  all.insert(all.end(), around->below.begin(), around->below.end());
  google::protobuf::RepeatedPtrField<v1::LeaderboardEntry> filled;
  if (absl::Status s = FillEntries(who.org, teams, all, &filled); !s.ok()) return s;
  *response.mutable_entry() = filled[0];
  if (!around->ranked) return absl::OkStatus();
  response.set_percentile(Percentile(around->below_count, around->total));
  int at = 1;
  for (size_t i = 0; i < around->above.size(); ++i) *response.add_above() = filled[at++];
  for (size_t i = 0; i < around->below.size(); ++i) *response.add_below() = filled[at++];
  return absl::OkStatus();
}

grpc::Status LeaderboardServiceImpl::GetRank(grpc::ServerContext* context,
                                             const v1::GetRankRequest* request,
                                             v1::GetRankResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(DoGetRank(*who, *request, *response));
}

absl::StatusOr<Principal> LeaderboardServiceImpl::CheckWatch(
    grpc::CallbackServerContext& context, const v1::WatchLeaderboardRequest& request) {
  absl::StatusOr<Principal> who = Authenticate(context);
  if (!who.ok()) return who.status();
  int top_n = request.top_n() == 0 ? kDefaultPageSize : request.top_n();
  if (top_n < 1 || top_n > kMaxWatchTopN) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_n: ", request.top_n(), " is not within 1..", kMaxWatchTopN));
  }
  // The board's shape and period syntax; the period's range and the scope's
  // existence need the org's calendar and directory: the hub's first refresh
  // checks them (no Redis read on the callback thread).
  absl::StatusOr<ResolvedBoard> resolved =
      ResolveBoard(who->org, request.board(), OrgCalendar(), absl::Now());
  if (!resolved.ok()) return resolved.status();
  return who;
}

void LeaderboardServiceImpl::AddRetryTrailers(grpc::ServerContextBase& context) {
  std::string ms = absl::StrCat(watchers_.limits().retry_after.count());
  context.AddTrailingMetadata(common::auth::kRetryAfterMetadata, ms);
  context.AddTrailingMetadata(common::auth::kRetryPushbackMetadata, ms);
}

grpc::ServerWriteReactor<v1::WatchLeaderboardResponse>* LeaderboardServiceImpl::WatchLeaderboard(
    grpc::CallbackServerContext* context, const v1::WatchLeaderboardRequest* request) {
  int top_n = request->top_n() == 0 ? kDefaultPageSize : request->top_n();
  absl::StatusOr<Principal> who = CheckWatch(*context, *request);
  // One slot among the person's open streams, held by the reactor until the
  // stream is done. Services (the gateway's shared watch) are not charged.
  absl::StatusOr<common::ratelimit::StreamSlots::Slot> slot =
      who.ok() ? auth_.OpenStream(*who) : absl::StatusOr<common::ratelimit::StreamSlots::Slot>(
                                              who.status());
  if (!slot.ok()) {
    if (who.ok() && slot.status().code() == absl::StatusCode::kResourceExhausted) {
      AddRetryTrailers(*context);
    }
    std::shared_ptr<WatchReactor> reactor = WatchReactor::Create(watchers_, "", kDefaultPageSize);
    reactor->Close(ToGrpcStatus(slot.status()));
    return reactor.get();
  }
  std::shared_ptr<WatchReactor> reactor = WatchReactor::Create(
      watchers_, Watchers::HubId(who->org, request->board()), top_n, *std::move(slot));
  WatchReactor* raw = reactor.get();
  absl::Status registered = watchers_.Register(who->org, request->board(), reactor);
  if (!registered.ok()) {
    if (registered.code() == absl::StatusCode::kResourceExhausted) AddRetryTrailers(*context);
    reactor->Close(ToGrpcStatus(registered));
  }
  return raw;
}

// ---------------------------------------------------------------- people

absl::Status LeaderboardServiceImpl::DoGetStreaks(const Principal& who,
                                                  const v1::GetStreaksRequest& request,
                                                  v1::GetStreaksResponse& response) {
  if (!ValidId(request.person_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "person_id: '", request.person_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  absl::StatusOr<OrgCalendar> calendar = store_.CachedCalendar(who.org);
  if (!calendar.ok()) return calendar.status();
  absl::StatusOr<std::map<std::string, kudos::v1::Person>> people =
      store_.People(who.org, {request.person_id()});
  if (!people.ok()) return people.status();
  absl::TimeZone zone = calendar->zone;
  auto person = people->find(request.person_id());
  if (person != people->end() && !person->second.time_zone().empty()) {
    absl::StatusOr<absl::TimeZone> own = common::calendar::LoadZone(person->second.time_zone());
    if (own.ok()) zone = *own;
  }
  absl::CivilDay today = absl::ToCivilDay(absl::Now(), zone);
  WorkCalendar work{calendar->work_days, calendar->holidays, calendar->freezes_per_month};
  bool any = person != people->end();
  response.set_person_id(request.person_id());
  for (const char* kind : {"giving", "receiving"}) {
    absl::StatusOr<std::vector<absl::CivilDay>> days =
        store_.Days(who.org, kind, request.person_id());
    if (!days.ok()) return days.status();
    any = any || !days->empty();
    StreakResult streak = ComputeStreak(*days, work, today);
    v1::Streak* out = std::string(kind) == "giving" ? response.mutable_giving()
                                                    : response.mutable_receiving();
    out->set_current_days(streak.current);
    out->set_longest_days(streak.longest);
    out->set_freezes_used(streak.freezes_used);
    if (streak.last_active) FillDate(*streak.last_active, out->mutable_last_active_date());
  }
  if (!any) {
    return absl::NotFoundError(
        absl::StrCat("person_id: '", request.person_id(), "' is not known in this org"));
  }
  return absl::OkStatus();
}

grpc::Status LeaderboardServiceImpl::GetStreaks(grpc::ServerContext* context,
                                                const v1::GetStreaksRequest* request,
                                                v1::GetStreaksResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(DoGetStreaks(*who, *request, *response));
}

absl::Status LeaderboardServiceImpl::DoListBadges(const Principal& who,
                                                  const v1::ListBadgesRequest& request,
                                                  v1::ListBadgesResponse& response) {
  if (!ValidId(request.person_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "person_id: '", request.person_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  absl::StatusOr<std::map<std::string, int64_t>> badges =
      store_.Badges(who.org, request.person_id());
  if (!badges.ok()) return badges.status();
  for (const BadgeRule& rule : BadgeRules()) {
    auto it = badges->find(rule.id);
    if (it == badges->end()) continue;
    v1::Badge* badge = response.add_badges();
    badge->set_badge_id(rule.id);
    badge->set_display_name(rule.display_name);
    ToProto(absl::FromUnixMillis(it->second), badge->mutable_earn_time());
  }
  return absl::OkStatus();
}

grpc::Status LeaderboardServiceImpl::ListBadges(grpc::ServerContext* context,
                                                const v1::ListBadgesRequest* request,
                                                v1::ListBadgesResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(DoListBadges(*who, *request, *response));
}

// ---------------------------------------------------------------- insights
// services/leaderboard/insights_service.cc: access, arguments and figures.

grpc::Status LeaderboardServiceImpl::GetInsights(grpc::ServerContext* context,
                                                 const v1::GetInsightsRequest* request,
                                                 v1::GetInsightsResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(insights_.GetInsights(*who, *request, *response));
}

grpc::Status LeaderboardServiceImpl::ListUnrecognized(grpc::ServerContext* context,
                                                      const v1::ListUnrecognizedRequest* request,
                                                      v1::ListUnrecognizedResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(insights_.ListUnrecognized(*who, *request, *response));
}

// ---------------------------------------------------------------- rebuild

absl::Status LeaderboardServiceImpl::DoRebuild(const Principal& who,
                                               v1::RebuildProjectionsResponse& response) {
  if (!who.is_admin()) {
    return absl::PermissionDeniedError("RebuildProjections is for admins only");
  }
  auto started = std::chrono::steady_clock::now();
  // Rebuild holds apply_mutex only for its final swap (other orgs carry on).
  absl::StatusOr<Projector::RebuildResult> result = projector_.Rebuild(who.org);
  if (!result.ok()) return result.status();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  response.set_events_applied(result->events_applied);
  response.set_duration_ms(elapsed.count());
  absl::StatusOr<common::redis::Reply> audited = store_.pool().Run(common::audit::AppendCommand(
      who.org, who.subject, "leaderboard.rebuild_projections", "lb:{" + who.org + "}:*",
      absl::StrCat("replayed ", result->events_read, " entries, applied ",
                   result->events_applied)));
  if (!audited.ok()) return audited.status();
  common::log::Info(absl::StrCat("leaderboard: rebuilt org '", who.org, "': ",
                                 result->events_applied, " events in ", elapsed.count(), " ms"));
  watchers_.TouchOrg(who.org);
  return absl::OkStatus();
}

grpc::Status LeaderboardServiceImpl::RebuildProjections(
    grpc::ServerContext* context, const v1::RebuildProjectionsRequest* /*request*/,
    v1::RebuildProjectionsResponse* response) {
  absl::StatusOr<Principal> who = Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::Status status = DoRebuild(*who, *response);
  if (std::optional<int64_t> retry_after_ms = RetryAfterMs(status)) {
    context->AddTrailingMetadata(common::auth::kRetryAfterMetadata, absl::StrCat(*retry_after_ms));
    context->AddTrailingMetadata(common::auth::kRetryPushbackMetadata,
                                 absl::StrCat(*retry_after_ms));
  }
  return ToGrpcStatus(status);
}

}  // namespace leaderboard
