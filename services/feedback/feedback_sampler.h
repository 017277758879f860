// Who each team served, and the invitations of each survey period.
//
// ServedConsumer: a consumer group ("feedback") on every org's
// kudos:{org}:events records, per team, the people who thanked its members
// and the people its members thanked (bounded, expiring sets; writes are
// idempotent, so at-least-once is enough). Orgs are isolated: one whose
// entries fail backs off alone. The leaderboard's compaction trims the
// stream only below every group's delivered and pending entries, so this
// group is honoured without any change there.
//
// Sampler::RunOnce(org, now): for each survey whose current period has no
// invitations yet, samples up to invitations_per_period served people
// (never a member of the team, active, served within kServedLookbackDays,
// under the weekly cap) and creates their invitations in one script that
// also marks the period swept: exactly once across replicas.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/feedback/feedback_store.h"
#include "services/kudos/kudos_store.h"

namespace feedback {

// Directory reads through kudos_store's public functions.
class Directory {
 public:
  explicit Directory(kudos::KudosStore& kudos) : kudos_(kudos) {}
  // The team, or nullopt when the org has none of that id.
  absl::StatusOr<std::optional<kudos::v1::Team>> FindTeam(const std::string& org,
                                                          const std::string& team_id);
  // Whether `person` is the manager_id of an active member of the team.
  absl::StatusOr<bool> Manages(const std::string& org, const std::string& team_id,
                               const std::string& person);
  kudos::KudosStore& kudos() { return kudos_; }

 private:
  kudos::KudosStore& kudos_;
};

struct SweepStats {
  int surveys_swept = 0;      // periods this run created invitations for
  int invitations = 0;        // invitations created
  int already_swept = 0;      // periods found swept (earlier run, another replica)
};

class Sampler {
 public:
  Sampler(FeedbackStore& store, Directory& directory) : store_(store), directory_(directory) {}
  // One sweep of one org at `now` (the clock is the caller's).
  absl::StatusOr<SweepStats> RunOnce(const std::string& org, absl::Time now);
  // Every org; an org that fails is logged and skipped.
  SweepStats RunAllOrgs(absl::Time now, const std::function<bool()>& stop);

 private:
  FeedbackStore& store_;
  Directory& directory_;
};

struct ConsumerOptions {
  std::string group = "feedback";
  std::string consumer_name;  // default: host and pid
  int batch = 200;
  // Between passes unless a batch came back full: the served sets are read
  // by the survey sweeps, not live, and a pass per few entries cost about 1.5
  // more Redis commands per kudos (a ZADD, a trim and an expiry per team
  // touched) on the write path's Redis (bench/README.md).
  std::chrono::milliseconds idle_sleep{200};
  std::chrono::milliseconds claim_min_idle{60000};  // entries of a dead consumer
  std::chrono::milliseconds max_backoff{60000};
};

class ServedConsumer {
 public:
  ServedConsumer(FeedbackStore& store, kudos::KudosStore& kudos, ConsumerOptions options = {});
  // One pass over every org (reads and applies what is there, no blocking);
  // the number of entries applied.
  int PollOnce();
  // Whether the last pass read a full batch of some org's new entries (more
  // may be waiting: the next pass starts at once).
  bool backlog() const { return backlog_; }
  // Until `stop`: a pass, then idle_sleep unless backlog().
  void Run(const std::atomic<bool>& stop);

 private:
  absl::StatusOr<int> PollOrg(const std::string& org);
  absl::Status Apply(const std::string& org, const common::redis::Reply& reply,
                     std::vector<std::string>* ids);

  FeedbackStore& store_;
  kudos::KudosStore& kudos_;
  ConsumerOptions options_;
  struct OrgState {
    bool group_ready = false;
    std::chrono::steady_clock::time_point next_attempt{};
    std::chrono::milliseconds backoff{0};
    std::chrono::steady_clock::time_point next_claim{};
  };
  std::map<std::string, OrgState> orgs_;
  bool backlog_ = false;
};

}  // namespace feedback
