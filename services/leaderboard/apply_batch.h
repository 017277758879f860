// One org's run of ApplyPlans as one call of scripts/apply_event.lua, with
// the fewest commands: board increments summed per (board, member), each
// set member and HSETNX field sent once, the threshold badges evaluated on
// the score each entry left, and exactly once by the org's high-water marks
// (MarksKey): the script applies a stream's entries only in order right
// after its mark and moves the mark in the same atomic step.
//
// Logical guards ("G", a kudos or transfer id) catch a producer appending
// the same event twice within the retry window: per stream, a ZSET of ids
// scored by the ms of the entry that applied them (GuardKey), trimmed to the
// window behind the batch's newest guarded entry. The script reports the
// entries and guards it found applied before, without writing anything; the
// caller drops them and calls again (AppliedBefore).
//
// Issue 17: a plan carrying the live consumer's "E" op (leaderboard_events.h
// AddEmitOp) makes its badge writes (N, T, V) and active-day adds (S on a
// days key) append their events to lb:{org}:events in the same call, only
// when they change something (HSETNX / SADD returned 1): ops B, U, Y and the
// thresholds' event field (scripts/apply_event.lua). A refused call writes
// nothing, events included, so a redelivery never appends one twice.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/leaderboard_rules.h"

namespace leaderboard {

// What a refused call found applied before: entries at or below the marks,
// entries in an older version's applied set, logical ids already seen.
struct AppliedBefore {
  std::optional<std::string> mark_k;
  std::optional<std::string> mark_l;
  absl::flat_hash_set<std::string> stale_entries;  // "k:<id>" / "l:<id>"
  // GuardMember(logical id) -> its guard's score as stored (GuardScore, or
  // the entry's ms for a guard written before).
  absl::flat_hash_map<std::string, int64_t> seen_guards;
};

struct BatchCall {
  std::vector<std::string> keys;
  std::vector<std::string> args;
  // Per plan: its entry is part of the call (not applied before).
  std::vector<bool> included;
  size_t entries = 0;
  // Boards incremented, with their expiry (unix seconds, 0 = none) and
  // whether every increment to them was positive (none can have emptied it).
  struct Board {
    int64_t expire_at = 0;
    bool only_added = true;
  };
  absl::flat_hash_map<std::string, Board> boards;
};

// Boards a replica saw with their expiry set (issue 15: a board's expiry
// is set once, not in every batch that brings it a new member). Valid only
// under the org's board generation it was learnt at (DerivedGenerationKey:
// INCRed by every rebuild swap and by a script that empties a board), so a
// board another replica or a rebuild removed is not trusted.
struct KnownExpiries {
  std::string generation;  // as the last successful call answered it
  // Board key -> its expiry (unix seconds).
  absl::flat_hash_map<std::string, int64_t> boards;
  // True when `board` is known with expiry `expire_at` and that is later
  // than `now_s` + a margin (a lapsed board could have been made again).
  bool Knows(const std::string& board, int64_t expire_at, int64_t now_s) const;
};

// `plans`: one org's, each stream's entries in id order. INTERNAL for a
// malformed plan or entries out of order. `known` (may be null): boards
// whose expiry the script need not set again while the generation holds.
absl::StatusOr<BatchCall> BuildBatchCall(const std::string& org,
                                         const std::vector<const ApplyPlan*>& plans,
                                         const std::string& rebuild_token,
                                         const AppliedBefore& before,
                                         const KnownExpiries* known = nullptr,
                                         int64_t now_s = 0);

// After a call applied: the generation it answered and the boards it left
// with their expiry (boards that lost members may have been removed: not).
void LearnExpiries(const BatchCall& call, const std::string& generation,
                   KnownExpiries* known);

// Keeps at most `max_boards` in `known`: boards whose expiry passed by
// `now_s` go first, then all (forgetting only costs an EXPIREAT again).
// The boards left.
size_t BoundExpiries(KnownExpiries* known, size_t max_boards, int64_t now_s);

// The width of the plan operation at a[i] (the op and its arguments, as
// leaderboard_rules.h writes them); INTERNAL when unknown or cut short.
absl::StatusOr<size_t> ApplyOpWidth(const std::vector<std::string>& a, size_t i);

// The ms part of a stream id (when it was appended); nullopt when malformed.
std::optional<int64_t> StreamIdMs(const std::string& id);

// The script's reply: true when applied; false with `before` filled when
// it refused because part of the batch was applied before. `generation`
// (may be null): the org's board generation after an applied call.
absl::StatusOr<bool> ParseBatchReply(const common::redis::Reply& reply, AppliedBefore* before,
                                     std::string* generation = nullptr);

// "1700000000000-3" < "1700000000001-0"; false when either is malformed.
bool StreamIdLess(const std::string& a, const std::string& b);

}  // namespace leaderboard
