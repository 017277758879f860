// A short-lived, bounded, per-replica cache of hot reads with single-flight
// (issue 13): concurrent identical reads share one fetch, and (ttl > 0) a
// value read at most `ttl` ago is served without a Redis round trip.
//
// ttl 0 is single-flight alone: a read that arrives while the same read is
// in flight gets that read's answer (taken at most one round trip before
// it arrived), and nothing is kept once it is answered, so a stalled Redis
// still fails every call on time.
//
// Staleness is bounded and documented by the user of the cache: a value is
// served only while `now - (time its fetch started) < ttl`, and never after
// Invalidate(group) (the fetches in flight then are neither stored nor
// joined). So a change is visible at the latest `ttl` after it was written
// (at once when this replica is told of it through Invalidate).
// A writer of this replica brackets its writes with BeginWrite/EndWrite: in
// between, the group's reads go to Redis and nothing is stored or served,
// so no read that starts after a write took effect gets a value from before
// it (Invalidate after the write would leave the moment between the write
// and the call open).
//
// Bounds: at most `max_keys` keys (fresh values + fetches in flight; past it a
// read fetches on its own, uncached), at most `max_waiters_per_fetch` calls
// joined to one fetch. A joiner never waits past its own deadline: it joins
// only a fetch whose deadline is not later than its own; it shares the
// fetch's result, its error included.
//
// Thread-safe; callbacks run without the cache's lock, on the thread that
// completes the fetch (or, for a hit, the caller's).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <iterator>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/check/check.h"

namespace common::grpc_util {

struct ReadCacheOptions {
  std::chrono::milliseconds ttl{100};  // 0 = single-flight only: nothing kept
  size_t max_keys = 4096;
  size_t max_waiters_per_fetch = 1024;
};

template <typename V>
class ReadCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Value = std::shared_ptr<const V>;
  // Gets the value (or the error) exactly once.
  using Done = absl::AnyInvocable<void(absl::StatusOr<Value>) &&>;
  // What a fetch calls exactly once with what it read.
  using Fetched = absl::AnyInvocable<void(absl::StatusOr<V>) &&>;
  using Fetch = absl::AnyInvocable<void(Fetched) &&>;

  struct Stats {
    uint64_t hits = 0;      // served from a fresh value
    uint64_t joined = 0;    // shared a fetch in flight
    uint64_t fetches = 0;   // fetches started for the cache
    uint64_t uncached = 0;  // fetched alone (a bound, or a fetch it could not join)
  };

  explicit ReadCache(ReadCacheOptions options) : options_(options) {}
  ReadCache(const ReadCache&) = delete;
  ReadCache& operator=(const ReadCache&) = delete;

  // `key` is unique across groups; `group` is what Invalidate drops (an org).
  // `now` is the caller's clock reading (tests inject it); `deadline` that of
  // the caller's fetch. `done` runs exactly once: at once on a hit, else when
  // the fetch ends. `fetch` runs here (without the lock) unless served.
  void Get(const std::string& group, const std::string& key, Clock::time_point now,
           Clock::time_point deadline, Fetch fetch, Done done);

  // Drops the group's values; its fetches in flight are neither stored nor joined.
  void Invalidate(const std::string& group);
  // Invalidate, and until the matching EndWrite the group's reads fetch alone
  // (neither served, stored nor joined). Calls nest: one EndWrite per BeginWrite.
  void BeginWrite(const std::string& group);
  // Invalidate (what was read during the writes is gone), and ends one BeginWrite.
  void EndWrite(const std::string& group);

  const ReadCacheOptions& options() const { return options_; }
  Stats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slots_.size();
  }

 private:
  struct Flight {
    Clock::time_point started;
    Clock::time_point deadline;
    std::vector<Done> waiters;
  };
  struct Slot {
    std::string group;
    Value value;                      // set once fetched
    Clock::time_point fetched_at{};   // when its fetch started
    std::shared_ptr<Flight> flight;   // set while fetching
  };

  // Calls Complete once, or with INTERNAL from its destructor if the fetch
  // dropped it unanswered (a waiter never hangs).
  class Completion {
   public:
    Completion(ReadCache* cache, std::string key, std::shared_ptr<Flight> flight)
        : cache_(cache), key_(std::move(key)), flight_(std::move(flight)) {}
    Completion(Completion&& other) noexcept
        : cache_(other.cache_), key_(std::move(other.key_)), flight_(std::move(other.flight_)) {
      other.flight_ = nullptr;
    }
    Completion& operator=(Completion&&) = delete;
    ~Completion() {
      if (flight_ != nullptr) {
        Run(absl::InternalError("a cached read ended without reporting its result (a bug)"));
      }
    }
    void Run(absl::StatusOr<V> result) {
      KUDOS_CHECK(flight_ != nullptr, "a fetch reports its result exactly once");
      std::shared_ptr<Flight> flight = std::move(flight_);
      flight_ = nullptr;
      cache_->Complete(key_, flight, std::move(result));
    }

   private:
    ReadCache* cache_;
    std::string key_;
    std::shared_ptr<Flight> flight_;
  };

  void Complete(const std::string& key, const std::shared_ptr<Flight>& flight,
                absl::StatusOr<V> result);
  void EraseLocked(typename std::unordered_map<std::string, Slot>::iterator it);
  void InvalidateLocked(const std::string& group);
  // Drops expired values (not fetches in flight), at most every ttl / 4.
  void PurgeLocked(Clock::time_point now);
  static void Alone(Fetch fetch, Done done);

  const ReadCacheOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> slots_;
  std::unordered_map<std::string, std::unordered_set<std::string>> keys_of_group_;
  std::unordered_map<std::string, int> writes_of_group_;  // BeginWrite - EndWrite
  Clock::time_point next_purge_{};
  Stats stats_;
};

template <typename V>
void ReadCache<V>::Alone(Fetch fetch, Done done) {
  std::move(fetch)([done = std::move(done)](absl::StatusOr<V> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    std::move(done)(std::make_shared<const V>(*std::move(result)));
  });
}

template <typename V>
void ReadCache<V>::Get(const std::string& group, const std::string& key, Clock::time_point now,
                       Clock::time_point deadline, Fetch fetch, Done done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (writes_of_group_.count(group) > 0) {
    ++stats_.uncached;
    lock.unlock();
    return Alone(std::move(fetch), std::move(done));
  }
  auto it = slots_.find(key);
  if (it != slots_.end()) {
    Slot& slot = it->second;
    KUDOS_CHECK(slot.group == group, "a cache key belongs to one group");
    if (slot.value != nullptr && now - slot.fetched_at < options_.ttl) {
      ++stats_.hits;
      Value value = slot.value;
      lock.unlock();
      return std::move(done)(std::move(value));
    }
    if (slot.flight != nullptr) {
      if (slot.flight->deadline <= deadline &&
          slot.flight->waiters.size() < options_.max_waiters_per_fetch) {
        ++stats_.joined;
        slot.flight->waiters.push_back(std::move(done));
        return;
      }
      ++stats_.uncached;
      lock.unlock();
      return Alone(std::move(fetch), std::move(done));
    }
    slot.value = nullptr;  // expired: this call fetches it again
  } else {
    if (slots_.size() >= options_.max_keys) PurgeLocked(now);
    if (slots_.size() >= options_.max_keys) {
      ++stats_.uncached;
      lock.unlock();
      return Alone(std::move(fetch), std::move(done));
    }
    it = slots_.emplace(key, Slot{group, nullptr, {}, nullptr}).first;
    keys_of_group_[group].insert(key);
  }
  auto flight = std::make_shared<Flight>();
  flight->started = now;
  flight->deadline = deadline;
  flight->waiters.push_back(std::move(done));
  it->second.flight = flight;
  ++stats_.fetches;
  lock.unlock();
  std::move(fetch)([completion = Completion(this, key, std::move(flight))](
                       absl::StatusOr<V> result) mutable { completion.Run(std::move(result)); });
}

template <typename V>
void ReadCache<V>::Complete(const std::string& key, const std::shared_ptr<Flight>& flight,
                            absl::StatusOr<V> result) {
  absl::StatusOr<Value> shared = result.ok()
                                     ? absl::StatusOr<Value>(std::make_shared<const V>(*std::move(result)))
                                     : absl::StatusOr<Value>(result.status());
  std::vector<Done> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiters = std::move(flight->waiters);
    flight->waiters.clear();
    auto it = slots_.find(key);
    // Not ours any more: the group was invalidated while it was in flight.
    if (it != slots_.end() && it->second.flight == flight) {
      it->second.flight = nullptr;
      if (shared.ok() && options_.ttl.count() > 0) {
        it->second.value = *shared;
        it->second.fetched_at = flight->started;
      } else {
        EraseLocked(it);
      }
    }
  }
  KUDOS_CHECK(!waiters.empty(), "a fetch has at least the call that started it");
  for (Done& waiter : waiters) std::move(waiter)(shared);
}

template <typename V>
void ReadCache<V>::Invalidate(const std::string& group) {
  std::lock_guard<std::mutex> lock(mu_);
  InvalidateLocked(group);
}

template <typename V>
void ReadCache<V>::InvalidateLocked(const std::string& group) {
  auto keys = keys_of_group_.find(group);
  if (keys == keys_of_group_.end()) return;
  for (const std::string& key : keys->second) slots_.erase(key);
  keys_of_group_.erase(keys);
}

template <typename V>
void ReadCache<V>::BeginWrite(const std::string& group) {
  std::lock_guard<std::mutex> lock(mu_);
  InvalidateLocked(group);
  ++writes_of_group_[group];
}

template <typename V>
void ReadCache<V>::EndWrite(const std::string& group) {
  std::lock_guard<std::mutex> lock(mu_);
  InvalidateLocked(group);
  auto writes = writes_of_group_.find(group);
  KUDOS_CHECK(writes != writes_of_group_.end() && writes->second > 0,
              "EndWrite follows a BeginWrite of the same group");
  if (--writes->second == 0) writes_of_group_.erase(writes);
}

template <typename V>
void ReadCache<V>::EraseLocked(typename std::unordered_map<std::string, Slot>::iterator it) {
  auto keys = keys_of_group_.find(it->second.group);
  KUDOS_CHECK(keys != keys_of_group_.end(), "every cached key is indexed by its group");
  keys->second.erase(it->first);
  if (keys->second.empty()) keys_of_group_.erase(keys);
  slots_.erase(it);
}

template <typename V>
void ReadCache<V>::PurgeLocked(Clock::time_point now) {
  if (now < next_purge_) return;
  next_purge_ = now + std::max<Clock::duration>(options_.ttl / 4, std::chrono::milliseconds(1));
  for (auto it = slots_.begin(); it != slots_.end();) {
    auto next = std::next(it);
    if (it->second.flight == nullptr && now - it->second.fetched_at >= options_.ttl) {
      EraseLocked(it);
    }
    it = next;
  }
}

}  // namespace common::grpc_util
