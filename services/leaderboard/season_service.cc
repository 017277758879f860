// Seasons and closed periods (issue 18 part 5): the LeaderboardService RPCs
// over SeasonStore (seasons.h). Their reads are written against the blocking
// pool, so each call runs on the insights worker, never on a callback thread.
#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/events/leaderboard_event.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_events.h"
#include "services/leaderboard/leaderboard_service.h"

namespace leaderboard {

namespace {

constexpr int kDefaultEventsPage = 20;
constexpr int kMaxEventsPage = 100;
// Entries of lb:{org}:events one ListPeriodEvents call looks at, at most
// (badges and streaks share the stream): a page may come back short, with a
// token to go on from.
constexpr int kMaxEventsScanned = 2000;

}  // namespace

void LeaderboardServiceImpl::OnSeasons(Call& call,
                                       absl::AnyInvocable<absl::Status(SeasonStore&) &&> work) {
  if (seasons_ == nullptr) {
    call.Then([]() -> absl::Status {
      return absl::UnimplementedError("seasons are not served by this server");
    });
    return;
  }
  OnWorker(call, *workers_.insights, [this, work = std::move(work)]() mutable {
    return std::move(work)(*seasons_);
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::CreateSeason(
    grpc::CallbackServerContext* context, const v1::CreateSeasonRequest* request,
    v1::CreateSeasonResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (!call.principal().is_admin()) {
      return absl::PermissionDeniedError("CreateSeason is for admins only");
    }
    OnSeasons(call, [this, &call, request, response](SeasonStore& seasons) -> absl::Status {
      const common::auth::Principal& who = call.principal();
      absl::StatusOr<v1::Season> season = seasons.Create(who.org, request->season(), absl::Now());
      if (!season.ok()) return season.status();
      absl::StatusOr<common::redis::Reply> audited =
          store_.pool().Run(common::audit::AppendCommand(
              who.org, who.subject, "leaderboard.create_season",
              absl::StrCat("season:", season->season_id()), season->display_name()));
      if (!audited.ok()) return audited.status();
      *response->mutable_season() = *std::move(season);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::GetSeason(grpc::CallbackServerContext* context,
                                                            const v1::GetSeasonRequest* request,
                                                            v1::GetSeasonResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    OnSeasons(call, [&call, request, response](SeasonStore& seasons) -> absl::Status {
      absl::StatusOr<v1::Season> season =
          seasons.Get(call.principal().org, request->season_id(), absl::Now());
      if (!season.ok()) return season.status();
      *response->mutable_season() = *std::move(season);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::ListSeasons(
    grpc::CallbackServerContext* context, const v1::ListSeasonsRequest* /*request*/,
    v1::ListSeasonsResponse* response) {
  return calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    OnSeasons(call, [&call, response](SeasonStore& seasons) -> absl::Status {
      absl::StatusOr<std::vector<v1::Season>> all =
          seasons.List(call.principal().org, absl::Now());
      if (!all.ok()) return all.status();
      for (v1::Season& season : *all) *response->add_seasons() = std::move(season);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::JoinSeason(grpc::CallbackServerContext* context,
                                                             const v1::JoinSeasonRequest* request,
                                                             v1::JoinSeasonResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    const common::auth::Principal& who = call.principal();
    if (who.is_service() || who.is_screen_only() || !ValidId(who.subject)) {
      return absl::PermissionDeniedError("JoinSeason: only a person joins, as themself");
    }
    OnSeasons(call, [&call, request, response](SeasonStore& seasons) -> absl::Status {
      const common::auth::Principal& who = call.principal();
      absl::StatusOr<std::pair<v1::Season, absl::Time>> joined =
          seasons.Join(who.org, request->season_id(), who.subject, absl::Now());
      if (!joined.ok()) return joined.status();
      *response->mutable_season() = std::move(joined->first);
      ToProto(joined->second, response->mutable_join_time());
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::ListPeriodEvents(
    grpc::CallbackServerContext* context, const v1::ListPeriodEventsRequest* request,
    v1::ListPeriodEventsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    int page_size = request->page_size() == 0 ? kDefaultEventsPage : request->page_size();
    if (page_size < 1 || page_size > kMaxEventsPage) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_size: ", request->page_size(), " is not within 1..", kMaxEventsPage));
    }
    // The token is the stream id to continue below (exclusive).
    const std::string& token = request->page_token();
    if (!token.empty() && !StreamIdMs(token).has_value()) {
      return absl::InvalidArgumentError("page_token: malformed");
    }
    OnWorker(call, *workers_.insights, [this, &call, token, page_size, response] {
      std::string from = token.empty() ? "+" : "(" + token;
      int scanned = 0;
      while (scanned < kMaxEventsScanned && response->events_size() < page_size) {
        int count = std::min(200, kMaxEventsScanned - scanned);
        absl::StatusOr<common::redis::Reply> reply = store_.pool().Run(
            {"XREVRANGE", EventsStream(call.principal().org), from, "-", "COUNT",
             absl::StrCat(count)});
        if (!reply.ok()) return reply.status();
        std::vector<StreamEntry> entries = ParseEntries(*reply);
        for (const StreamEntry& entry : entries) {
          ++scanned;
          from = "(" + entry.id;
          absl::StatusOr<v1::LeaderboardEvent> event =
              common::events::ParseStoredEvent(call.principal().org, entry.event);
          if (!event.ok() || !event->has_period_closed()) continue;
          *response->add_events() = *std::move(event);
          if (response->events_size() == page_size) break;
        }
        if (static_cast<int>(entries.size()) < count && response->events_size() < page_size) {
          return absl::OkStatus();  // the stream's start: no further page
        }
      }
      response->set_next_page_token(from.substr(1));
      return absl::OkStatus();
    });
    return absl::OkStatus();
  });
}

}  // namespace leaderboard
