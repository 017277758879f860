// Celebrations in Redis (blocking common::redis::Pool). Every key is the
// org's, in its {org} slot; every script declares every key it touches.
//
//   programs:{org}:celebrations:profiles      HASH person -> CelebrationProfile
//                                             (birthday, hire date, opt-out);
//                                             at most kMaxPeoplePerOrg fields
//   programs:{org}:celebrations:due           ZSET "kind\tperson" -> ms of the
//                                             next celebration (09:00 local)
//   programs:{org}:celebrations:next          HASH "kind\tperson" -> its year
//   programs:{org}:celebrations:fired:<year>  HASH "kind\tperson" -> "pending" |
//                                             "paid": the once-marker, expires
//                                             after kFiredTtlSeconds
//   programs:{org}:celebrations:pending       ZSET "kind\tyear\tperson" -> ms
//                                             when a half-done payment is retried
//   programs:{org}:celebrations:pending_data  HASH same member -> Celebration
//   programs:{org}:celebrations:feed          LIST Celebration, newest first,
//                                             at most kMaxFeedEntries
//   programs:{org}:celebrations:settings      HASH birthday_points,
//                                             anniversary_points_per_year
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "programs/v1/celebrations.pb.h"

namespace programs::celebrations {

inline constexpr int kMaxPeoplePerOrg = 100000;
inline constexpr int kMaxFeedEntries = 1000;
// Markers outlive their year's celebrations (a late retry still finds them).
inline constexpr int64_t kFiredTtlSeconds = 400 * 24 * 3600;

// The celebrations keys of one org.
struct Keys {
  explicit Keys(absl::string_view org);
  std::string profiles, due, next, pending, pending_data, feed, settings;
  std::string Fired(int year) const;

 private:
  std::string prefix_;
};

// "kind\tperson": a schedule's member in `due` and `next`, and a marker field.
std::string ScheduleMember(v1::CelebrationKind kind, absl::string_view person);
// "kind\tyear\tperson": a pending payment.
std::string PendingMember(v1::CelebrationKind kind, int year, absl::string_view person);

// A schedule to write: the kind's next celebration, or none (removed).
struct Schedule {
  v1::CelebrationKind kind = v1::CELEBRATION_KIND_UNSPECIFIED;
  std::optional<int> year;  // nullopt: no celebration of this kind
  absl::Time time;
};

// A celebration found due by the sweep.
struct DueEntry {
  v1::CelebrationKind kind = v1::CELEBRATION_KIND_UNSPECIFIED;
  std::string person;
  int year = 0;
  absl::Time due;
};

enum class ClaimResult {
  kClaimed,  // the marker was set now: this caller pays
  kAlready,  // the marker existed (another replica, an earlier pass): schedule advanced
  kStale,    // the schedule changed meanwhile (a setter, another replica): nothing done
};

struct StoreOptions {
  int max_people = kMaxPeoplePerOrg;      // profiles per org
  int max_feed_entries = kMaxFeedEntries;  // celebrations kept in the feed
};

class CelebrationsStore {
 public:
  explicit CelebrationsStore(common::redis::Pool& pool, StoreOptions options = {});

  // The stored profile, or nullopt.
  absl::StatusOr<std::optional<v1::CelebrationProfile>> GetProfile(const std::string& org,
                                                                   const std::string& person);
  // Writes `profile` and its schedules if the stored profile still equals
  // `expected` (nullopt: none stored). ABORTED when it changed meanwhile
  // (read again and retry); RESOURCE_EXHAUSTED past options.max_people.
  absl::Status PutProfile(const std::string& org, const v1::CelebrationProfile& profile,
                          const std::optional<v1::CelebrationProfile>& expected,
                          const std::vector<Schedule>& schedules);

  absl::StatusOr<v1::CelebrationSettings> GetSettings(const std::string& org);
  absl::Status PutSettings(const std::string& org, const v1::CelebrationSettings& settings);

  // Up to `limit` schedules due at `now`, earliest first.
  absl::StatusOr<std::vector<DueEntry>> Due(const std::string& org, absl::Time now, int limit);
  // Sets the (kind, person, year) marker and records `celebration` as a
  // pending payment (retried from `retry_at`), and moves the schedule to
  // `next` — one script. Without `celebration` (nullopt): only moves the
  // schedule (a person who is no longer active, or a zone change).
  absl::StatusOr<ClaimResult> Claim(const std::string& org, const DueEntry& entry,
                                    const std::optional<v1::Celebration>& celebration,
                                    absl::Time retry_at, const Schedule& next);
  // Pending payments due for a retry at `now` (up to `limit`).
  absl::StatusOr<std::vector<v1::Celebration>> DuePending(const std::string& org, absl::Time now,
                                                          int limit);
  // Pushes a pending payment's retry to `retry_at` (a lease while it is tried).
  absl::Status Postpone(const std::string& org, const v1::Celebration& celebration,
                        absl::Time retry_at);
  // Marks a claimed celebration paid and adds it to the feed, once: false
  // when it was already complete.
  absl::StatusOr<bool> Complete(const std::string& org, const v1::Celebration& celebration);

  // The feed from `offset`, up to `limit` entries, newest first.
  absl::StatusOr<std::vector<v1::Celebration>> Feed(const std::string& org, int offset, int limit);
  // The marker of (kind, person, year): "", "pending" or "paid".
  absl::StatusOr<std::string> Marker(const std::string& org, v1::CelebrationKind kind, int year,
                                     const std::string& person);

 private:
  common::redis::Pool& pool_;
  StoreOptions options_;
  common::redis::Script put_profile_;
  common::redis::Script claim_;
  common::redis::Script complete_;
};

}  // namespace programs::celebrations
