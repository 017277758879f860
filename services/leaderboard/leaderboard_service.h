// The gRPC layer of leaderboard.v1: authenticate, validate, translate, call
// the store / rules, map statuses. Every method is on the gRPC callback API
// (issue 13): the unary ones through common/grpc/unary.h (authenticate ->
// validate -> asynchronous steps over the AsyncClient -> Finish once), so no
// call holds a thread while Redis answers; WatchLeaderboard is one reactor
// per stream. RebuildProjections (seconds of replay) and the insights (their
// reads are still written against the blocking pool) run on bounded workers,
// never on a callback or Redis loop thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "common/auth/guard.h"
#include "common/grpc/unary.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/blocking_worker.h"
#include "services/leaderboard/insights_service.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/leaderboard_watch.h"
#include "services/leaderboard/seasons.h"

namespace leaderboard {

// Where the long or blocking calls run; owned by main.
struct ServiceWorkers {
  BlockingWorker* rebuild = nullptr;   // RebuildProjections
  BlockingWorker* insights = nullptr;  // GetInsights, ListUnrecognized
};

class LeaderboardServiceImpl final : public v1::LeaderboardService::CallbackService {
 public:
  // `store` needs its AsyncClient (Store::has_async).
  LeaderboardServiceImpl(common::auth::Guard auth, Store& store, Projector& projector,
                         Watchers& watchers, insights::Reader& insights, ServiceWorkers workers,
                         common::grpc_util::UnaryOptions options, SeasonStore* seasons = nullptr);

  grpc::ServerUnaryReactor* GetLeaderboard(grpc::CallbackServerContext* context,
                                           const v1::GetLeaderboardRequest* request,
                                           v1::GetLeaderboardResponse* response) override;
  grpc::ServerUnaryReactor* GetRank(grpc::CallbackServerContext* context,
                                    const v1::GetRankRequest* request,
                                    v1::GetRankResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchLeaderboardResponse>* WatchLeaderboard(
      grpc::CallbackServerContext* context, const v1::WatchLeaderboardRequest* request) override;
  grpc::ServerUnaryReactor* GetStreaks(grpc::CallbackServerContext* context,
                                       const v1::GetStreaksRequest* request,
                                       v1::GetStreaksResponse* response) override;
  grpc::ServerUnaryReactor* ListBadges(grpc::CallbackServerContext* context,
                                       const v1::ListBadgesRequest* request,
                                       v1::ListBadgesResponse* response) override;
  grpc::ServerUnaryReactor* GetInsights(grpc::CallbackServerContext* context,
                                        const v1::GetInsightsRequest* request,
                                        v1::GetInsightsResponse* response) override;
  grpc::ServerUnaryReactor* ListUnrecognized(grpc::CallbackServerContext* context,
                                             const v1::ListUnrecognizedRequest* request,
                                             v1::ListUnrecognizedResponse* response) override;
  grpc::ServerUnaryReactor* RebuildProjections(grpc::CallbackServerContext* context,
                                               const v1::RebuildProjectionsRequest* request,
                                               v1::RebuildProjectionsResponse* response) override;

  // Seasons (issue 18; season_service.cc): on the insights worker (blocking
  // reads); UNIMPLEMENTED when the server has no SeasonStore.
  grpc::ServerUnaryReactor* CreateSeason(grpc::CallbackServerContext* context,
                                         const v1::CreateSeasonRequest* request,
                                         v1::CreateSeasonResponse* response) override;
  grpc::ServerUnaryReactor* GetSeason(grpc::CallbackServerContext* context,
                                      const v1::GetSeasonRequest* request,
                                      v1::GetSeasonResponse* response) override;
  grpc::ServerUnaryReactor* ListSeasons(grpc::CallbackServerContext* context,
                                        const v1::ListSeasonsRequest* request,
                                        v1::ListSeasonsResponse* response) override;
  grpc::ServerUnaryReactor* JoinSeason(grpc::CallbackServerContext* context,
                                       const v1::JoinSeasonRequest* request,
                                       v1::JoinSeasonResponse* response) override;
  grpc::ServerUnaryReactor* ListPeriodEvents(grpc::CallbackServerContext* context,
                                             const v1::ListPeriodEventsRequest* request,
                                             v1::ListPeriodEventsResponse* response) override;
  const common::grpc_util::UnaryCalls& calls() const { return calls_; }

 private:
  using Call = common::grpc_util::Call;
  using Done = common::grpc_util::Done;
  struct BoardRead;  // one GetLeaderboard / GetRank in flight

  absl::StatusOr<common::auth::Principal> Authenticate(grpc::ServerContextBase& context);
  // Authentication, top_n and the board's shape, before a watch opens.
  absl::StatusOr<common::auth::Principal> CheckWatch(grpc::CallbackServerContext& context,
                                                     const v1::WatchLeaderboardRequest& request);
  // retry-after-ms / grpc-retry-pushback-ms for a refused watch.
  void AddRetryTrailers(grpc::ServerContextBase& context);

  // The bodies: validate, then queue the call's steps.
  absl::Status StartGetLeaderboard(Call& call, const v1::GetLeaderboardRequest& request,
                                   v1::GetLeaderboardResponse& response);
  absl::Status StartGetRank(Call& call, const v1::GetRankRequest& request,
                            v1::GetRankResponse& response);
  absl::Status StartGetStreaks(Call& call, const v1::GetStreaksRequest& request,
                               v1::GetStreaksResponse& response);
  absl::Status StartListBadges(Call& call, const v1::ListBadgesRequest& request,
                               v1::ListBadgesResponse& response);
  // Steps shared by the board reads: the org calendar, then (for an empty
  // board) whether its scope exists, then the display names.
  // (and, for a season's board, its definition: NOT_FOUND when unknown)
  void ReadCalendar(Call& call, const std::shared_ptr<BoardRead>& read);
  // The board's key and period: a season's from its definition.
  static absl::StatusOr<ResolvedBoard> Resolve(const BoardRead& read);
  // Runs a season call's body on the insights worker.
  void OnSeasons(Call& call, absl::AnyInvocable<absl::Status(SeasonStore&) &&> work);
  void CheckEmptyScope(Call& call, const std::shared_ptr<BoardRead>& read);
  void ReadNames(Call& call, const std::shared_ptr<BoardRead>& read);
  // Whether the board's subjects are teams (their names) or people.
  static bool NamesOfTeams(const BoardRead& read);
  // GetLeaderboard's first page and its names through the page cache
  // (Watchers::pages(); staleness bounded there); `done` once.
  void ReadFirstPage(Call& call, const std::shared_ptr<BoardRead>& read, int page_size,
                     Done done);
  void FetchFirstPage(const std::string& org, const std::string& board_key, bool teams,
                      int page_size, common::redis::Deadline deadline, PageCache::Fetched fetched);
  // Runs `work` on `worker` as the call's one step; a full worker is
  // RESOURCE_EXHAUSTED.
  void OnWorker(Call& call, BlockingWorker& worker, absl::AnyInvocable<absl::Status() &&> work);
  absl::Status DoRebuild(const common::auth::Principal& who,
                         v1::RebuildProjectionsResponse& response);

  common::auth::Guard auth_;  // authentication, rate limits, stream slots
  Store& store_;
  SeasonStore* seasons_;
  Projector& projector_;
  Watchers& watchers_;
  insights::Reader& insights_;  // GetInsights, ListUnrecognized
  ServiceWorkers workers_;
  common::grpc_util::UnaryCalls calls_;
};

}  // namespace leaderboard
