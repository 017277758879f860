// The insights consumer: its own consumer group ("insights") on every org's
// kudos:{org}:events, applying each org's entries with insights_apply.lua
// (exactly once by the mark ins:{org}:hwm moved in the same script), orgs
// isolated (a failing org backs off alone; the others keep moving).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "services/leaderboard/insights_store.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard::insights {

struct ConsumerOptions {
  std::string group = kGroup;
  std::string consumer_name = "insights-1";
  int batch = 200;
  // Wait after a round that applied nothing.
  std::chrono::milliseconds idle_wait{50};
  // Entries pending this long at another consumer are claimed.
  std::chrono::milliseconds claim_min_idle{30000};
  std::chrono::milliseconds claim_every{5000};
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  // Distinct giver -> recipient pairs kept per written period (day, week,
  // month; a quarter or year holds its months' pairs).
  int64_t pair_cap = 200000;
};

class Consumer {
 public:
  Consumer(Store& store, InsightsStore& insights, ConsumerOptions options);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void Start();
  void Stop();
  // One round over every org; entries applied. The thread's loop body.
  int64_t RunOnce();

 private:
  struct OrgState {
    bool group = false;
    bool pending = true;  // our own pending entries may exist (start, claim, a gap)
    int failures = 0;
    std::chrono::steady_clock::time_point next_try{};
    std::chrono::steady_clock::time_point last_claim{};
  };
  absl::StatusOr<int64_t> Step(const std::string& org, OrgState& state);
  // Applies entries (stream order); ABORTED when entries before them are not
  // applied yet. Acknowledges what it applied or found below the mark.
  absl::StatusOr<int64_t> Apply(const std::string& org, std::vector<StreamEntry> entries,
                                OrgState& state);
  absl::StatusOr<std::vector<StreamEntry>> Read(const std::string& org, const std::string& from);
  absl::Status Ack(const std::string& org, const std::vector<std::string>& ids);

  Store& store_;
  InsightsStore& insights_;
  ConsumerOptions options_;
  std::map<std::string, OrgState> orgs_;  // the loop's thread only
  std::vector<std::string> org_list_;
  std::chrono::steady_clock::time_point orgs_read_{};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace leaderboard::insights
