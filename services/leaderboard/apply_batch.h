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
  // Logical id -> the entry time (ms) it was applied at, as stored.
  absl::flat_hash_map<std::string, int64_t> seen_guards;
};

struct BatchCall {
  std::vector<std::string> keys;
  std::vector<std::string> args;
  // Per plan: its entry is part of the call (not applied before).
  std::vector<bool> included;
  size_t entries = 0;
};

// `plans`: one org's, each stream's entries in id order. INTERNAL for a
// malformed plan or entries out of order.
absl::StatusOr<BatchCall> BuildBatchCall(const std::string& org,
                                         const std::vector<const ApplyPlan*>& plans,
                                         const std::string& rebuild_token,
                                         const AppliedBefore& before);

// The ms part of a stream id (when it was appended); nullopt when malformed.
std::optional<int64_t> StreamIdMs(const std::string& id);

// The script's reply: true when applied; false with `before` filled when
// it refused because part of the batch was applied before.
absl::StatusOr<bool> ParseBatchReply(const common::redis::Reply& reply, AppliedBefore* before);

// "1700000000000-3" < "1700000000001-0"; false when either is malformed.
bool StreamIdLess(const std::string& a, const std::string& b);

}  // namespace leaderboard
