// The read side of the insights (GetInsights, ListUnrecognized): access
// rules, arguments, and the figures from the incrementally kept counters.
// Called by the gRPC layer (leaderboard_service.cc) with an authenticated
// principal.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/auth/auth.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "services/leaderboard/insights_store.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard::insights {

inline constexpr int kDefaultUnrecognizedDays = 30;
inline constexpr int kMaxUnrecognizedDays = 3660;
inline constexpr int kDefaultUnrecognizedPageSize = 50;
inline constexpr int kMaxUnrecognizedPageSize = 200;

class Reader {
 public:
  // `unrecognized_limit`: most people ListUnrecognized lists (all pages).
  Reader(Store& store, InsightsStore& insights, int64_t unrecognized_limit = 1000);

  absl::Status GetInsights(const common::auth::Principal& who, const v1::GetInsightsRequest& request,
                           v1::GetInsightsResponse& response);
  absl::Status ListUnrecognized(const common::auth::Principal& who,
                                const v1::ListUnrecognizedRequest& request,
                                v1::ListUnrecognizedResponse& response);

 private:
  struct Scope {
    std::vector<std::string> members;  // active people of the scope, by id
    std::map<std::string, kudos::v1::Person> people;  // the org's directory
  };
  // Roles, the team id's syntax (before any Redis read).
  absl::Status CheckCaller(const common::auth::Principal& who, const std::string& team_id);
  // The team exists (NOT_FOUND), the caller manages it (PERMISSION_DENIED).
  absl::StatusOr<Scope> ResolveScope(const common::auth::Principal& who, const std::string& team_id);
  absl::Status Figures(const std::string& org, v1::Window window,
                       const common::calendar::Period& period, const Scope& scope,
                       const std::vector<std::pair<std::string, std::string>>& catalog,
                       v1::InsightFigures* out);

  Store& store_;
  InsightsStore& insights_;
  int64_t unrecognized_limit_;
};

}  // namespace leaderboard::insights
