// An in-memory image of one org's projection keys (lb:{org}:*), for
// RebuildProjections. Replaying the streams through Redis ran one apply
// script per entry (~70 commands, ~400 µs of Redis CPU each: 1,600 events/s,
// bench/README.md); here the same ApplyPlans are applied in memory, with
// exactly the semantics of scripts/apply_event.lua, and the final keys are
// written in bulk (pipelined ZADD/SADD/HSET/SET/EXPIREAT).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard {

// Gives each distinct key string a small id (for ProjectionImage::Apply);
// used on the planning thread, so the applying thread hashes no key names.
class KeyInterner {
 public:
  std::vector<uint32_t> Ids(const std::vector<std::string>& keys) {
    std::vector<uint32_t> ids;
    ids.reserve(keys.size());
    for (const std::string& key : keys) {
      ids.push_back(ids_.try_emplace(key, static_cast<uint32_t>(ids_.size())).first->second);
    }
    return ids;
  }

 private:
  absl::flat_hash_map<std::string, uint32_t> ids_;
};

class ProjectionImage {
 public:
  // `now`: the time against which EXPIREAT in the past deletes a key, as
  // Redis does.
  explicit ProjectionImage(absl::Time now) : now_unix_seconds_(absl::ToUnixSeconds(now)) {}

  // apply_event.lua on the image: true when the entry was new. INTERNAL for
  // a malformed plan (the script would refuse it too).
  // `key_ids` (optional, one per plan key): the same id for the same key
  // string in every plan of this image (KeyInterner), so each key is looked
  // up by name once per image instead of once per plan.
  absl::StatusOr<bool> Apply(const ApplyPlan& plan,
                             const std::vector<uint32_t>* key_ids = nullptr);

  // Issue 15 part 5: a RebuildPlanner's plan, applied with exactly the
  // semantics of Apply(ExpandCompactPlan(plan)) followed by CheckGivingStreak
  // of its checks (run even when the entry was applied before, as the
  // rebuild always did), with the ids' names given by AddNames first. Each
  // key id is looked up by name once per image.
  absl::StatusOr<bool> ApplyCompact(const CompactPlan& plan, const OrgCalendar& calendar);
  // The names of the planner's ids given since the last call, in id order
  // (ResetNames: a new planner's ids start again).
  void AddNames(std::vector<std::string> keys, std::vector<std::string> atoms);
  void ResetNames();

  // What Store reads from Redis, read from the image.
  absl::StatusOr<OrgCalendar> Calendar(const std::string& org);
  std::map<std::string, kudos::v1::Person> People(const std::string& org,
                                                  const std::vector<std::string>& ids);
  // Store::CheckGivingStreak on the image.
  void CheckGivingStreak(const std::string& org, const OrgCalendar& calendar,
                         const ApplyPlan::StreakCheck& check);

  // Writes every key (the caller dropped the old ones), `batch` commands per
  // pipeline; `between_batches` runs after each (refreshes the rebuild lock).
  absl::Status Write(common::redis::Pool& pool, int batch,
                     const std::function<absl::Status()>& between_batches);

  // The same keys under temporary names (`prefix` + a number), each
  // expiring after `ttl` so a rebuild that dies before its swap leaves no
  // garbage; returns each staged name with its final name and expiry, for
  // Store::SwapInProjections. `connections` pipelines of up to `batch`
  // commands run at once (each its share of the keys); `between_batches`
  // runs at most once a second (thread-safe is not required of it).
  absl::StatusOr<std::vector<StagedKey>> Stage(common::redis::Pool& pool,
                                               const std::string& prefix,
                                               std::chrono::milliseconds ttl, int batch,
                                               const std::function<absl::Status()>& between_batches,
                                               int connections = 1);

  // Staging sends each key as one RESTORE of its DUMP payload (with the
  // staging ttl), or, when Redis refuses RESTORE (an ACL without it, a
  // server older than the payload's format), with the plain commands and a
  // PEXPIRE per key. False: the plain commands only (tests compare both).
  void set_stage_by_restore(bool by_restore) { stage_by_restore_ = by_restore; }
  // Whether the last Stage used RESTORE.
  bool staged_by_restore() const { return staged_by_restore_; }

  // Boards ApplyCompact switched to member ids get their names back
  // (ReplayStreams does it at its end; Apply, Write and Stage first).
  void NamedBoards();

  size_t key_count() const { return keys_.size(); }

  // A snapshot of a version that wrote the sub-scope quarter and all-time
  // boards (BoardDerived): they leave the image (derived on read now) and,
  // when it holds no YearsKey, the years of its org-scope year boards are
  // listed there (the derived all-time boards read those years). Returns
  // the boards dropped.
  int UpgradeDerivedBoards(const std::string& org);
  // A snapshot of a version that kept one guard zset per stream
  // (LegacyGuardKey): its ids move into their buckets (GuardKey), as
  // Store::SplitLegacyGuards moves the live ones. Returns the ids moved.
  int64_t SplitLegacyGuards(const std::string& org);

  // The snapshot of an org's projection (docs/retention-leaderboard.md):
  // every key with its type, contents and expiry, zstd-compressed. Parse
  // gives back an image equal to the one serialized (DATA_LOSS when the
  // bytes are not a snapshot).
  absl::StatusOr<std::string> Serialize() const;
  static absl::StatusOr<ProjectionImage> Parse(const std::string& compressed, absl::Time now);
  // The image's high-water mark of a stream ('k' / 'l'; "" = none): the
  // entries it covers.
  std::string Mark(const std::string& org, char stream) const;
  // Every person of the org's directory copy (the rebuild planner's seed).
  std::map<std::string, kudos::v1::Person> AllPeople(const std::string& org) const;

 private:
  struct Value {
    enum class Kind { kString, kHash, kSet, kZset };
    Kind kind = Kind::kString;
    std::string str;
    absl::flat_hash_map<std::string, std::string> hash;
    absl::flat_hash_set<std::string> set;
    absl::flat_hash_map<std::string, double> zset;
    int64_t expire_at = 0;  // unix seconds; 0 = none
    // A board ApplyCompact increments holds its members by id (the
    // planner's atoms, MemberId) while the replay runs: integer lookups
    // instead of hashing names. `zset` is empty meanwhile; NamedBoards()
    // gives the names back before anything reads or writes `zset`.
    bool by_ids = false;
    absl::flat_hash_map<uint32_t, double> zset_ids;
  };

  // Write and Stage: every key under name_of(key), with the command
  // expiry(name, value) returns (if any) after the key's first command
  // (`expire_first`, in the same pipeline) or after its last.
  absl::Status WriteAs(
      common::redis::Pool& pool, int batch, const std::function<absl::Status()>& between_batches,
      const std::function<std::string(const std::string&)>& name_of,
      const std::function<common::redis::Command(const std::string&, const Value&)>& expiry,
      bool expire_first);
  // The commands that write `value` under `name` (large ones in chunks).
  static std::vector<common::redis::Command> Commands(const std::string& name,
                                                      const Value& value);
  // `value` in the format of Redis's DUMP (what RESTORE takes): one command
  // stages a key with its expiry, and Redis loads it without parsing a
  // command argument per member (projection_image.cc, "staging").
  static std::string DumpPayload(const Value& value);

  Value& Slot(const std::string& key, Value::Kind kind);
  const Value* Find(const std::string& key, Value::Kind kind) const;
  void HSetNx(const std::string& key, const std::string& field, const std::string& value);
  // A logical guard (apply_batch.h) on the stream's zset of applied ids:
  // true (and GuardMember(logical_id) recorded with GuardScore(entry_ms))
  // when it was not applied since oldest_ms; guards before that leave.
  bool Guard(const std::string& key, Value& seen, const std::string& logical_id, int64_t entry_ms,
             int64_t oldest_ms);

  int64_t now_unix_seconds_;
  bool stage_by_restore_ = true;
  bool staged_by_restore_ = false;
  // Node-based: Apply keeps pointers to values while inserting others.
  absl::node_hash_map<std::string, Value> keys_;
  // Interned key id -> its value (nullptr: not known yet or erased).
  std::vector<Value*> interned_;
  // Per guard zset: (GuardSeconds, member) in the order added, oldest first,
  // to trim it cheaply.
  absl::flat_hash_map<std::string, std::deque<std::pair<int64_t, std::string>>> guard_log_;
  // ApplyCompact's names (RebuildPlanner ids) and values by key id
  // (nullptr: not looked up yet or erased).
  std::vector<std::string> compact_keys_, compact_atoms_;
  std::vector<Value*> compact_slots_;
  Value* CompactSlot(uint32_t id, Value::Kind kind);
  Value* CompactFind(uint32_t id, Value::Kind kind);
  void CompactErase(uint32_t id);
  absl::StatusOr<bool> ApplyCompactOps(const CompactPlan& plan);
  // Boards by id (Value::by_ids): the id of a member name (an atom's, or
  // one of the image's own from kLocalId up for names no atom has yet: a
  // snapshot's members), the id an atom stands for (a name first given a
  // local id keeps it), the name of an id, a board switched to ids.
  static constexpr uint32_t kLocalId = 0x80000000u;
  uint32_t MemberId(const std::string& name);
  uint32_t CanonicalId(uint32_t atom) const;
  const std::string& MemberName(uint32_t id) const;
  void ToIds(Value& board);
  size_t boards_by_ids_ = 0;  // boards switched to ids since NamedBoards (an upper bound)
  absl::flat_hash_map<std::string, uint32_t> member_ids_;  // names -> ids, filled on demand
  size_t member_ids_atoms_ = 0;                            // atoms indexed in member_ids_
  std::vector<std::string> local_names_;
  absl::flat_hash_map<uint32_t, uint32_t> atom_aliases_;   // atom -> local id of its name
  // Drops every key id -> value pointer of both id spaces (a key left).
  void ForgetSlots();
  // Calendar of the settings last read, dropped when a string key is set.
  std::optional<std::pair<std::string, OrgCalendar>> calendar_;
};

// RebuildProjections' replay (issue 15 part 5): both streams of `org` after
// the image's marks, up to `until` (kudos, ledger stream ids; "" = the end),
// merged in stream-id order and planned by a RebuildPlanner on a thread of
// its own (stream reads, parsing, plans) while the calling thread applies
// the plans to the image (ApplyCompact). Plans see the directory (settings,
// people) the entries before them left, as the image holds it. `refresh`
// runs after every stream read (it keeps the rebuild's lock).
struct ReplayCounts {
  int64_t events_read = 0;
  int64_t events_applied = 0;
};
absl::Status ReplayStreams(Store& store, ProjectionImage& image, const std::string& org,
                           const std::function<absl::Status()>& refresh,
                           const std::pair<std::string, std::string>& until,
                           ReplayCounts& counts);

}  // namespace leaderboard
