// What PostTransfers needs for its givers' allowances (the policy, the org's
// allowance rules, each giver's profile and boosts), kept per replica so a
// post sends no read before its script (issue 13: the reads of stop 23 cost
// a round trip and four commands per kudos).
//
// Exactness does not rest on the cache. Every change of those inputs moves
// the org's allowance version `ledger:{org}:alw:ver` in the same atomic step
// (allowance.lua, SetPolicy's MULTI; a profile set while the org has no
// rules changes no allowance and moves nothing, and a rule added moves it);
// a post passes the version its inputs
// were read under, and post.lua compares it with the stored one atomically
// with the post: a difference answers STALE_ALLOWANCE before anything is
// written, and the post reads the inputs again and runs once more. So a
// rule, profile, boost or policy change made through any replica is seen by
// the very next post on every replica. The read puts the version first in
// its pipeline, so the inputs read are at least as new as the version.
// This replica's own changes also drop the org's entry (no stale round).
//
// Writes by a previous version of the ledger (a rolling update) do not move
// the version: an entry is therefore read again once it is `max_age` old
// (<= 1 s), which brings the policy and the rules (and the givers of that
// post) up to date; a boost or profile written by an old replica for another
// person is seen at the org's next version move. Finish the rollout before
// changing boosts and profiles (services/ledger/README.md).
//
// Bounded: at most `max_orgs` orgs (the least recently used one leaves) and
// `max_people` person entries over all orgs (a full org drops its people).
// A person entry exists only when it is needed: the org has rules (their
// profile counts) or the person has boosts. In an org without rules, a giver
// without an entry has no boosts (a grant would have moved the version).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/ledger/allowance_rules.h"

namespace ledger {

// What a post needs for its givers' allowances, parsed.
struct GiversAllowance {
  AllowancePolicy policy;
  std::vector<AllowanceRule> rules;
  std::map<std::string, AllowanceProfile> profiles;
  std::map<std::string, std::vector<AllowanceBoost>> boosts;
  // Each giver whose allowance in `period` differs from the policy's.
  std::map<std::string, int64_t> Limits(const common::calendar::Period& period) const;
};

// The inputs of one post and the org's allowance version they were read
// under ("0" when the key does not exist yet).
struct PostAllowance {
  GiversAllowance inputs;
  std::string version;
};

class AllowanceCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    size_t max_orgs = 4096;
    size_t max_people = 100'000;
    std::chrono::milliseconds max_age{1000};
  };
  AllowanceCache() : AllowanceCache(Options{}) {}
  explicit AllowanceCache(Options options) : options_(options) {}

  // The inputs of `givers` when the cache can answer for all of them, else
  // nullopt (read, then Put).
  std::optional<PostAllowance> Lookup(absl::string_view org,
                                      const std::vector<std::string>& givers,
                                      Clock::time_point now = Clock::now());
  // What a read found: the org's version, policy and rules, and each giver's.
  void Put(absl::string_view org, const PostAllowance& read,
           Clock::time_point now = Clock::now());
  // This replica changed the org's allowance inputs, or a post found them
  // stale: its next post reads again.
  void DropOrg(absl::string_view org);

  size_t org_count() const;
  size_t person_count() const;

 private:
  struct OrgEntry {
    std::string version;
    Clock::time_point read_at;
    AllowancePolicy policy;
    std::vector<AllowanceRule> rules;
    struct Person {
      AllowanceProfile profile;
      std::vector<AllowanceBoost> boosts;
    };
    absl::flat_hash_map<std::string, Person> people;  // see the header comment
    uint64_t last_used = 0;
  };

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<OrgEntry>> orgs_ ABSL_GUARDED_BY(mu_);
  size_t people_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ledger
