// Redis access of the insights: the ids of people and values, the apply
// script and the reads of the per-period counters (quarter and year summed
// from their months), the reciprocity candidates and last-recognized times.
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
  // Plans nothing: gives every name of the planner an id (first sight
  // assigns the next one; idempotent, safe with other replicas), then runs
  // the apply script.
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
  // How many pair fields the period's keys hold (written windows).
  absl::StatusOr<int64_t> StoredPairs(const std::string& org, v1::Window window,
                                      const std::string& period);
  // person -> ms of the last kudos received (absent: never).
  absl::StatusOr<std::map<std::string, int64_t>> LastRecognized(
      const std::string& org, const std::vector<std::string>& people);

 private:
  using PairSums = std::map<std::pair<int64_t, int64_t>, int64_t>;
  // name -> id of the names that have one; Intern assigns the missing.
  absl::StatusOr<std::map<std::string, int64_t>> Ids(const std::string& org,
                                                     const std::vector<std::string>& names);
  absl::StatusOr<std::map<std::string, int64_t>> Intern(const std::string& org,
                                                        const std::vector<std::string>& names);
  absl::StatusOr<std::map<int64_t, std::string>> NamesById(const std::string& org);
  // (giver, recipient) -> kudos over the periods' pair buckets.
  absl::StatusOr<PairSums> SummedPairs(const std::string& org,
                                       const std::vector<std::string>& prefixes);
  // Replies of many commands, pipelined in chunks; the first error fails.
  absl::StatusOr<std::vector<common::redis::Reply>> RunAll(
      const std::vector<common::redis::Command>& commands);

  common::redis::Pool& pool_;
  common::redis::Script apply_script_;
};

}  // namespace leaderboard::insights
