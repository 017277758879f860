// Redis access of the insights: the apply script and the reads of the
// per-period counters, the reciprocity candidates and last-recognized times.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/insights_rules.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard::insights {

// What one call of the apply script did.
struct ApplyResult {
  enum class Kind { kApplied, kBelowMark, kGap } kind = Kind::kApplied;
  std::string mark;  // kApplied: the new mark; kBelowMark: the stored one
  int prefix = 0;    // kGap: how many leading entries follow the mark
};

class InsightsStore {
 public:
  explicit InsightsStore(common::redis::Pool& pool);
  common::redis::Pool& pool() { return pool_; }

  // The settings the planner starts from: the insights' own copy (as of
  // the mark), else the leaderboard's directory copy, else the defaults.
  absl::StatusOr<kudos::v1::OrgSettings> PlanningSettings(const std::string& org);
  absl::StatusOr<ApplyResult> Apply(const std::string& org, const std::vector<std::string>& ids,
                                    const Planner& planner, int64_t pair_cap);
  // "" when nothing was applied yet.
  absl::StatusOr<std::string> Mark(const std::string& org);

  absl::StatusOr<std::map<std::string, PersonCounters>> Counters(
      const std::string& org, v1::Window window, const std::string& period,
      const std::vector<std::string>& members, const std::vector<std::string>& values);
  // Pairs of the candidate set (both ways >= 3) with their counts.
  absl::StatusOr<std::vector<PairCounts>> Candidates(const std::string& org, v1::Window window,
                                                     const std::string& period);
  absl::StatusOr<bool> PairsTruncated(const std::string& org, v1::Window window,
                                      const std::string& period);
  // person -> ms of the last kudos received (absent: never).
  absl::StatusOr<std::map<std::string, int64_t>> LastRecognized(
      const std::string& org, const std::vector<std::string>& people);

 private:
  common::redis::Pool& pool_;
  common::redis::Script apply_script_;
};

}  // namespace leaderboard::insights
