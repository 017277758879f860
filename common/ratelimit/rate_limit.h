// The general API rate limit: in-process token buckets, one per person
// (org, subject) and one per token, both charged by every call. A call that
// finds either bucket empty is refused without taking from the other.
//
// Each bucket is kept in GCRA form (one "theoretical arrival time" per key,
// equivalent to a token bucket of `burst` tokens refilled at `per_second`):
// a key whose time is in the past holds a full bucket and is forgotten, so
// memory follows the callers of the last few seconds.
//
// Per replica: N replicas behind a load balancer allow up to N times the
// configured rate. This limit is about abuse (a runaway client, a leaked
// token), not quotas; kudos has its own per-giver limit in Redis.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace common::ratelimit {

struct Limit {
  double per_second = 0;  // <= 0: unlimited
  int64_t burst = 0;      // calls allowed at once after a quiet period
  bool enabled() const { return per_second > 0 && burst > 0; }
};

struct Options {
  Limit per_person{50, 100};
  Limit per_token{50, 100};
  // Server streams one person may hold open at once; 0 = unlimited.
  int max_streams_per_person = 32;
  // Keys remembered per kind before idle ones are swept.
  size_t max_keys = 100000;
};

// Options from flags whose defaults come from the environment:
//   --rate_limit_person_rps   (RATE_LIMIT_PERSON_RPS,   default 50)
//   --rate_limit_person_burst (RATE_LIMIT_PERSON_BURST, default 100)
//   --rate_limit_token_rps    (RATE_LIMIT_TOKEN_RPS,    default 50)
//   --rate_limit_token_burst  (RATE_LIMIT_TOKEN_BURST,  default 100)
//   --max_streams_per_person  (MAX_STREAMS_PER_PERSON,  default 32)
// A rate (or stream count) of 0 turns that limit off.
Options OptionsFromFlags();

// RESOURCE_EXHAUSTED "rate limit: retry after N ms (...)".
absl::Status RateLimitedError(absl::Duration retry_after, absl::string_view what);
// The N of a status made by RateLimitedError; -1 for any other status.
int64_t RetryAfterMillis(const absl::Status& status);

// Counts the server streams each person holds open. A slot is released when
// its StreamSlot is destroyed (keep it alive for the stream's lifetime).
class StreamSlots {
 public:
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : owner_(other.owner_), key_(std::move(other.key_)) {
      other.owner_ = nullptr;
    }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

   private:
    friend class StreamSlots;
    Slot(StreamSlots* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    void Release();
    StreamSlots* owner_ = nullptr;
    std::string key_;
  };

  explicit StreamSlots(int per_person) : per_person_(per_person) {}
  // A slot, or RESOURCE_EXHAUSTED when the person already holds the maximum.
  absl::StatusOr<Slot> Open(absl::string_view org, absl::string_view subject);
  int open(absl::string_view org, absl::string_view subject) const;

 private:
  int per_person_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
};

class RateLimiter {
 public:
  explicit RateLimiter(Options options);

  // OK and one token taken from both buckets, or RESOURCE_EXHAUSTED from
  // RateLimitedError naming the empty bucket (nothing taken). `token_key`
  // identifies the credential (e.g. a hash of the token); empty skips the
  // per-token bucket.
  absl::Status Acquire(absl::string_view org, absl::string_view subject,
                       absl::string_view token_key, absl::Time now);

  const Options& options() const { return options_; }
  // Keys currently remembered (tests).
  size_t size() const;

 private:
  struct Bucket {
    Limit limit;
    absl::Duration interval;   // 1 / per_second
    absl::Duration tolerance;  // interval * (burst - 1)
    std::unordered_map<std::string, absl::Time> arrival;  // next theoretical arrival
  };
  static Bucket MakeBucket(Limit limit);
  // How long until `key` may take a token; zero when it may now.
  static absl::Duration WaitLocked(const Bucket& bucket, const std::string& key, absl::Time now);
  void TakeLocked(Bucket& bucket, const std::string& key, absl::Time now);

  Options options_;
  mutable absl::Mutex mu_;
  Bucket person_ ABSL_GUARDED_BY(mu_);
  Bucket token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace common::ratelimit
