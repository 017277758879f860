// The gRPC layer of leaderboard.v1: authenticate, validate, translate, call
// the store / rules, map statuses. WatchLeaderboard uses the callback API
// (one reactor per stream, no thread each); the other methods are sync.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/auth/guard.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "services/leaderboard/insights_service.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/leaderboard_watch.h"

namespace leaderboard {

class LeaderboardServiceImpl final
    : public v1::LeaderboardService::WithCallbackMethod_WatchLeaderboard<
          v1::LeaderboardService::Service> {
 public:
  LeaderboardServiceImpl(common::auth::Guard auth, Store& store, Projector& projector,
                         Watchers& watchers, insights::Reader& insights);

  grpc::Status GetLeaderboard(grpc::ServerContext* context, const v1::GetLeaderboardRequest* request,
                              v1::GetLeaderboardResponse* response) override;
  grpc::Status GetRank(grpc::ServerContext* context, const v1::GetRankRequest* request,
                       v1::GetRankResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchLeaderboardResponse>* WatchLeaderboard(
      grpc::CallbackServerContext* context, const v1::WatchLeaderboardRequest* request) override;
  grpc::Status GetStreaks(grpc::ServerContext* context, const v1::GetStreaksRequest* request,
                          v1::GetStreaksResponse* response) override;
  grpc::Status ListBadges(grpc::ServerContext* context, const v1::ListBadgesRequest* request,
                          v1::ListBadgesResponse* response) override;
  grpc::Status GetInsights(grpc::ServerContext* context, const v1::GetInsightsRequest* request,
                           v1::GetInsightsResponse* response) override;
  grpc::Status ListUnrecognized(grpc::ServerContext* context,
                                const v1::ListUnrecognizedRequest* request,
                                v1::ListUnrecognizedResponse* response) override;
  grpc::Status RebuildProjections(grpc::ServerContext* context,
                                  const v1::RebuildProjectionsRequest* request,
                                  v1::RebuildProjectionsResponse* response) override;

 private:
  absl::StatusOr<common::auth::Principal> Authenticate(grpc::ServerContextBase& context);
  // Authentication, top_n and the board's shape, before a watch opens.
  absl::StatusOr<common::auth::Principal> CheckWatch(grpc::CallbackServerContext& context,
                                                     const v1::WatchLeaderboardRequest& request);
  // retry-after-ms / grpc-retry-pushback-ms for a refused watch.
  void AddRetryTrailers(grpc::ServerContextBase& context);
  absl::Status DoGetLeaderboard(const common::auth::Principal& who,
                                const v1::GetLeaderboardRequest& request,
                                v1::GetLeaderboardResponse& response);
  absl::Status DoGetRank(const common::auth::Principal& who, const v1::GetRankRequest& request,
                         v1::GetRankResponse& response);
  absl::Status DoGetStreaks(const common::auth::Principal& who,
                            const v1::GetStreaksRequest& request,
                            v1::GetStreaksResponse& response);
  absl::Status DoListBadges(const common::auth::Principal& who,
                            const v1::ListBadgesRequest& request,
                            v1::ListBadgesResponse& response);
  absl::Status DoRebuild(const common::auth::Principal& who,
                         v1::RebuildProjectionsResponse& response);
  absl::Status FillEntries(const std::string& org, bool teams,
                           const std::vector<RankedEntry>& entries,
                           google::protobuf::RepeatedPtrField<v1::LeaderboardEntry>* out);

  common::auth::Guard auth_;  // authentication and rate limits
  Store& store_;
  Projector& projector_;
  Watchers& watchers_;
  insights::Reader& insights_;  // GetInsights, ListUnrecognized
};

}  // namespace leaderboard
