// What SendKudos reads of the directory (the org's settings and the people
// it names), kept per replica so that most kudos skip that round trip.
//
// Exact, not merely fresh: every directory write (put_settings.lua,
// put_directory_entry.lua) increments kudos:{org}:directory_version, the
// cache keeps each org's entries under the version they were read at, and
// begin_recognition.lua refuses ('STALE', nothing written) a kudos validated
// against cached entries when the version moved since. The caller then reads
// the directory again and validates once more, as if nothing had been
// cached. A refusal computed from cached entries is never answered either:
// the caller reads again first (a person reactivated on another replica).
//
// Bounds: at most `max_orgs` orgs (past it every org is dropped) and
// `max_people` people over all orgs (past it the other orgs are dropped,
// then the org's own earlier reads): rare, cheap, and the next kudos reads
// again. An org's entries older than `max_age` are read again, which bounds
// what a replica of the previous version (its scripts write no version) can
// hide during a rolling upgrade, or a Redis that lost its last writes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kudos/v1/kudos.pb.h"

namespace kudos {

struct DirectoryCacheOptions {
  size_t max_orgs = 1000;
  size_t max_people = 200000;
  absl::Duration max_age = absl::Seconds(10);  // <= 0: nothing is kept
  // After this many lookups of an org found someone missing, the org's whole
  // directory is read at once (WarmUp), when it has at most
  // `max_people_warmed` people; 0 = never.
  int misses_before_warm_up = 32;
  size_t max_people_warmed = 20000;
};

class DirectoryCache {
 public:
  using Clock = std::function<absl::Time()>;
  explicit DirectoryCache(DirectoryCacheOptions options = {},
                          Clock clock = [] { return absl::Now(); })
      : options_(options), clock_(std::move(clock)) {}

  // The org's settings and the people `ids` (all of them, every one fresh),
  // with the version they were read at; nullopt when anything is missing.
  struct Hit {
    std::string version;
    kudos::v1::OrgSettings settings;
    std::map<std::string, kudos::v1::Person> people;
  };
  std::optional<Hit> Find(const std::string& org, const std::vector<std::string>& ids) {
    if (!enabled()) return std::nullopt;
    const absl::Time oldest = clock_() - options_.max_age;
    absl::MutexLock lock(&mu_);
    auto org_it = orgs_.find(org);
    if (org_it == orgs_.end()) return std::nullopt;
    const Org& cached = *org_it->second;
    if (cached.read_at < oldest) return std::nullopt;
    Hit hit;
    for (const std::string& id : ids) {
      if (hit.people.count(id) != 0) continue;
      auto person = cached.people.find(id);
      if (person == cached.people.end()) {
        ++org_it->second->misses;
        return std::nullopt;
      }
      hit.people.emplace(id, person->second);
    }
    hit.version = cached.version;
    hit.settings = cached.settings;
    return hit;
  }

  // Keeps what one read found at `version`: the settings and the people
  // (ids absent from the directory are not kept). Entries of another
  // version are dropped first.
  void Put(const std::string& org, const std::string& version,
           const kudos::v1::OrgSettings& settings,
           const std::map<std::string, kudos::v1::Person>& people) {
    if (!enabled()) return;
    const absl::Time now = clock_();
    absl::MutexLock lock(&mu_);
    auto org_it = orgs_.find(org);
    if (org_it != orgs_.end() &&
        (org_it->second->version != version || org_it->second->read_at < now - options_.max_age)) {
      DropLocked(org_it);
      org_it = orgs_.end();
    }
    if (org_it == orgs_.end()) {
      if (orgs_.size() >= options_.max_orgs) ClearLocked();
      org_it = orgs_.emplace(org, std::make_unique<Org>()).first;
      org_it->second->version = version;
      // The org's entries are as old as its oldest read.
      org_it->second->read_at = now;
    }
    Org& cached = *org_it->second;
    cached.settings = settings;
    for (const auto& [id, person] : people) {
      if (!cached.people.contains(id) && people_ >= options_.max_people) {
        // Full: the other orgs go first, then this org's earlier reads.
        ClearLockedExcept(org);
        if (people_ >= options_.max_people) {
          people_ -= cached.people.size();
          cached.people.clear();
        }
        if (people_ >= options_.max_people) break;  // a bound of 0 keeps no one
      }
      if (cached.people.insert_or_assign(id, person).second) ++people_;
    }
  }

  // True once per org entry (a new version or age starts a new one), when
  // its lookups missed someone `misses_before_warm_up` times: the caller
  // then reads the org's whole directory and Puts it (one read instead of
  // one per kudos while the org's people are first met).
  bool ShouldWarmUp(const std::string& org) {
    if (options_.misses_before_warm_up <= 0 || options_.max_people_warmed == 0) return false;
    absl::MutexLock lock(&mu_);
    auto org_it = orgs_.find(org);
    if (org_it == orgs_.end()) return false;
    Org& cached = *org_it->second;
    if (cached.warm_up_started || cached.misses < options_.misses_before_warm_up) return false;
    cached.warm_up_started = true;
    return true;
  }
  size_t max_people_warmed() const {
    return std::min(options_.max_people_warmed, options_.max_people);
  }

  // This replica wrote the org's directory: forget it at once (the version
  // check would catch it too, one refused begin later).
  void Invalidate(const std::string& org) {
    absl::MutexLock lock(&mu_);
    auto org_it = orgs_.find(org);
    if (org_it != orgs_.end()) DropLocked(org_it);
  }

  bool enabled() const {
    return options_.max_age > absl::ZeroDuration() && options_.max_orgs > 0;
  }
  size_t orgs() const {
    absl::MutexLock lock(&mu_);
    return orgs_.size();
  }
  size_t people() const {
    absl::MutexLock lock(&mu_);
    return people_;
  }

 private:
  struct Org {
    std::string version;
    absl::Time read_at;
    kudos::v1::OrgSettings settings;
    absl::flat_hash_map<std::string, kudos::v1::Person> people;
    int misses = 0;
    bool warm_up_started = false;
  };
  using Orgs = absl::flat_hash_map<std::string, std::unique_ptr<Org>>;

  void DropLocked(Orgs::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    people_ -= it->second->people.size();
    orgs_.erase(it);
  }
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    orgs_.clear();
    people_ = 0;
  }
  void ClearLockedExcept(const std::string& org) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = orgs_.begin(); it != orgs_.end();) {
      if (it->first == org) {
        ++it;
        continue;
      }
      people_ -= it->second->people.size();
      orgs_.erase(it++);
    }
  }

  const DirectoryCacheOptions options_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  Orgs orgs_ ABSL_GUARDED_BY(mu_);
  size_t people_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kudos
