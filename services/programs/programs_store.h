// Redis access of the awards area (issue 18): records as hashes {v, pb}
// (a version and a serialized protobuf), bounded indexes, and one write
// script (scripts/programs_write.lua) that applies a batch of checked
// operations atomically with the request's idempotency record and the audit
// entry. Every key is `programs:{org}:...` (or the org's audit stream and
// registry, same slot) and every key a batch touches is declared in KEYS.
//
// Keys (org = the token's org):
//   programs:{org}:budgets                ZSET budget ids (at most kMaxBudgets)
//   programs:{org}:budget:<id>            HASH v, pb = programs.v1.Budget
//   programs:{org}:budget:<id>:history    STREAM e = BudgetHistoryEntry (MAXLEN kMaxHistory)
//   programs:{org}:awards                 ZSET award ids by creation ms (at most kMaxAwards)
//   programs:{org}:award:<id>             HASH v, pb = programs.v1.Award
//   programs:{org}:award:<id>:noms        ZSET nomination ids by creation ms (kMaxNominations)
//   programs:{org}:award:<id>:pairs       HASH "<nominator> <nominee>" -> nomination id
//   programs:{org}:award:<id>:nom:<nid>   HASH v, pb = programs.v1.Nomination
//   programs:{org}:payments               ZSET award ids with a payment in flight, by ms
//   programs:{org}:req:<subject>:<id>     STRING the request's fingerprint and result (TTL)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"

namespace programs {

// Bounds (services/programs/README.md).
inline constexpr int kMaxBudgets = 200;
inline constexpr int kMaxHistory = 1000;
inline constexpr int kMaxAwards = 1000;
inline constexpr int kMaxNominations = 500;
// How long a request id is remembered (the retry window).
inline constexpr int64_t kRequestTtlSeconds = 30 * 24 * 3600;

namespace keys {
std::string Budgets(absl::string_view org);
std::string Budget(absl::string_view org, absl::string_view budget_id);
std::string BudgetHistory(absl::string_view org, absl::string_view budget_id);
std::string Awards(absl::string_view org);
std::string Award(absl::string_view org, absl::string_view award_id);
std::string Nominations(absl::string_view org, absl::string_view award_id);
std::string Pairs(absl::string_view org, absl::string_view award_id);
std::string Nomination(absl::string_view org, absl::string_view award_id,
                       absl::string_view nomination_id);
std::string Payments(absl::string_view org);
std::string Request(absl::string_view org, absl::string_view subject,
                    absl::string_view request_id);
}  // namespace keys

// A stored record: its version (0 = absent) and serialized protobuf.
struct Record {
  int64_t version = 0;
  std::string pb;
  bool exists() const { return version > 0; }
};

// Operations applied together by one script call (see programs_write.lua).
class WriteBatch {
 public:
  explicit WriteBatch(std::string org) : org_(std::move(org)) {}
  // The batch is the effect of request `request_id` of `subject`: a retry
  // with the same fingerprint gets `result` back; another payload MISMATCH.
  void Idempotent(absl::string_view subject, absl::string_view request_id,
                  std::string fingerprint, std::string result);
  // Writes a record if its version is still `expected_version` (0: absent).
  void Put(std::string key, int64_t expected_version, std::string pb);
  // Fails the batch (CONFLICT) unless the record is still at `expected_version`.
  void Expect(std::string key, int64_t expected_version);
  // Adds `member` unless the set already holds `max` others.
  void ZAddBounded(std::string key, int64_t score, std::string member, int max);
  void ZRem(std::string key, std::string member);
  // Sets hash field `field` to `value` unless it holds another value.
  void Unique(std::string key, std::string field, std::string value);
  void Append(std::string key, int max_length, std::string field, std::string value);
  void Audit(absl::string_view actor, absl::string_view action, absl::string_view target,
             absl::string_view reason, absl::Time now);
  // Adds the org to its slot's registry (the sweep finds it there).
  void RegisterOrg();

  const std::string& org() const { return org_; }
  const std::vector<std::string>& keys() const { return keys_; }
  std::vector<std::string> Args() const;

 private:
  int KeyIndex(std::string key);
  void Op(absl::string_view name, std::string key, std::vector<std::string> args);

  std::string org_;
  std::vector<std::string> keys_;
  int request_index_ = 0;
  std::string fingerprint_;
  std::string result_;
  std::vector<std::string> ops_;
};

struct WriteOutcome {
  enum class Kind { kOk, kDone, kMismatch, kConflict, kExists, kFull };
  Kind kind = Kind::kOk;
  // The 0-based op of kConflict/kExists/kFull.
  int op = -1;
  // kDone: the stored result; kExists: the value held.
  std::string value;
};

class ProgramsStore {
 public:
  explicit ProgramsStore(common::redis::Pool& pool);

  absl::StatusOr<WriteOutcome> Write(const WriteBatch& batch);
  absl::StatusOr<Record> Get(const std::string& key);
  // In order of `keys`; absent ones have version 0.
  absl::StatusOr<std::vector<Record>> GetMany(const std::vector<std::string>& keys);
  // Members of a sorted set by rank [start, stop], ascending or not.
  absl::StatusOr<std::vector<std::string>> Range(const std::string& key, int64_t start,
                                                 int64_t stop, bool newest_first);
  // Members with a score at most `max_score`, at most `limit` of them.
  absl::StatusOr<std::vector<std::string>> RangeByScore(const std::string& key,
                                                        int64_t max_score, int limit);
  // The newest `count` entries' `field` values of a stream.
  absl::StatusOr<std::vector<std::string>> NewestEntries(const std::string& key,
                                                         absl::string_view field, int count);

  common::redis::Pool& pool() { return pool_; }

 private:
  common::redis::Pool& pool_;
  common::redis::Script write_;
};

}  // namespace programs
