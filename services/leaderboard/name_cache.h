// Display names of people and teams, cached per replica for the read path
// (a board page, a watch snapshot) for `fresh` after they were read.
//
// Bounded by `max_entries`: past it the oldest reads are evicted first
// (they are also the first to go stale), never the whole cache at once, so
// a hot board's names survive a burst of reads of other boards. Reads are
// kept in a queue by the time they were made; each Put first drops what went
// stale, then the oldest while over the bound. A name read again gets a new
// queue entry (its older one is skipped when it comes up), and the queue is
// itself bounded (2 * max_entries) so refreshes cannot grow it.
//
// Thread-safe. Times are the caller's (tests inject them).
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace leaderboard {

class NameCache {
 public:
  NameCache(size_t max_entries, absl::Duration fresh)
      : max_entries_(max_entries < 1 ? 1 : max_entries), fresh_(fresh) {}

  // The name cached for `key` if read less than `fresh` before `now`.
  bool Get(const std::string& key, absl::Time now, std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return GetLocked(key, now, name);
  }
  bool GetLocked(const std::string& key, absl::Time now, std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = entries_.find(key);
    if (it == entries_.end() || now - it->second.read_at >= fresh_) return false;
    name = it->second.name;
    return true;
  }

  // Remembers `name` for `key`, read at `read_at`.
  void Put(const std::string& key, std::string name, absl::Time read_at)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    PutLocked(key, std::move(name), read_at);
  }
  void PutLocked(const std::string& key, std::string name, absl::Time read_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Entry& entry = entries_[key];
    entry.name = std::move(name);
    entry.read_at = read_at;
    order_.emplace_back(key, read_at);
    // Stale ones first, then the oldest while over a bound.
    while (!order_.empty() &&
           (read_at - order_.front().second >= fresh_ || entries_.size() > max_entries_ ||
            order_.size() > 2 * max_entries_)) {
      DropFront();
    }
  }

  void Clear() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    entries_.clear();
    order_.clear();
  }

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }
  size_t max_entries() const { return max_entries_; }
  // For callers that look up many keys under one lock.
  absl::Mutex& mutex() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

 private:
  struct Entry {
    std::string name;
    absl::Time read_at;
  };

  // Drops the queue's oldest record and, unless the name was read again
  // since (a later record stands for it), its entry.
  void DropFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto& [key, read_at] = order_.front();
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.read_at == read_at) entries_.erase(it);
    order_.pop_front();
  }

  const size_t max_entries_;
  const absl::Duration fresh_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, absl::Time>> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace leaderboard
