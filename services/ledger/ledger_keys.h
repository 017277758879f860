// Every Redis key of the ledger and the rewards catalog, one function per key
// name (issue 14). The scripts take every key they read or write from KEYS
// (Redis Cluster routes, ASKs and TRYAGAINs a script by its declared keys
// only, so a slot migration is safe only then); the C++ callers compute the
// keys here. The names are byte-for-byte those the data was written under
// (scripts/lib.lua and ledger_archive.h describe what each holds).
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/ids/packed_id.h"

namespace ledger::keys {

// "ledger:{org}:" — every key below starts with it (one cluster slot).
inline std::string Prefix(absl::string_view org) { return absl::StrCat("ledger:{", org, "}:"); }

// ---- the journal and balances ----
inline std::string Balances(absl::string_view org) { return Prefix(org) + "bal"; }
inline std::string Sequence(absl::string_view org) { return Prefix(org) + "seq"; }
inline std::string Journal(absl::string_view org) { return Prefix(org) + "journal"; }
inline std::string Outbox(absl::string_view org) { return Prefix(org) + "outbox"; }
// A live transfer written before the buckets (issue 15): its own key, a
// STRING (or, older still, a HASH). Still read and archived; never written.
inline std::string Transfer(absl::string_view org, absl::string_view transfer_id) {
  return absl::StrCat(Prefix(org), "tx:", transfer_id);
}
// Live transfers are kept in kTransferBuckets hashes per org (field: the
// transfer's IndexMember, value: what Transfer() held), not a key each: a key
// costs Redis about 100 B of its own (issue 15, docs/retention-ledger.md).
inline constexpr int kTransferBuckets = 64;
// The bucket of a transfer id (common::ids::BucketOfId; lib.lua's tx_bucket
// computes the same). Stored transfers depend on it: never change it.
inline int TransferBucket(absl::string_view transfer_id) {
  return common::ids::BucketOfId(transfer_id, kTransferBuckets);
}
inline std::string TransferBucketKey(absl::string_view org, absl::string_view transfer_id) {
  return absl::StrCat(Prefix(org), "txb:", TransferBucket(transfer_id));
}
// `account_key` as AccountKey() writes it ("earned:alice", "issuer", ...).
inline std::string AccountIndex(absl::string_view org, absl::string_view account_key) {
  return absl::StrCat(Prefix(org), "acct:", account_key);
}
inline std::string Spent(absl::string_view org, absl::string_view person,
                         absl::string_view period_key) {
  return absl::StrCat(Prefix(org), "spent:", person, ":", period_key);
}
inline std::string Policy(absl::string_view org) { return Prefix(org) + "policy"; }
// The reversal of a transfer (issue 18): its id, so a transfer is reversed once.
inline std::string Reversed(absl::string_view org, absl::string_view original_id) {
  return absl::StrCat(Prefix(org), "rev:", original_id);
}
// Allowance rules (issue 18 part 2): HASH rule_id -> common AllowanceRule.
inline std::string AllowanceRules(absl::string_view org) { return Prefix(org) + "alw:rules"; }
// HASH person -> AllowanceProfile (what the rules match on).
inline std::string AllowanceProfiles(absl::string_view org) {
  return Prefix(org) + "alw:profiles";
}
// HASH boost_id -> AllowanceBoost, one per person.
inline std::string AllowanceBoosts(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "alw:boosts:", person);
}
// The org's allowance version: moved by every change of the policy, a rule,
// a profile or a boost, checked by post.lua (allowance_cache.h).
inline std::string AllowanceVersion(absl::string_view org) { return Prefix(org) + "alw:ver"; }
inline std::string Retention(absl::string_view org) { return Prefix(org) + "retention"; }
// Moved by every write under a write concern (ledger_store.h, WriteConcern).
inline std::string WaitMark(absl::string_view org) { return Prefix(org) + "wait_mark"; }

// ---- redemptions and holds ----
inline std::string Redemption(absl::string_view org, absl::string_view redemption_id) {
  return absl::StrCat(Prefix(org), "rdm:", redemption_id);
}
inline std::string Holds(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "holds:", person);
}
inline std::string Held(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "held:", person);
}

// ---- the archive (ledger_archive.h) ----
inline std::string Checkpoint(absl::string_view org) { return Prefix(org) + "ckpt"; }
inline std::string CheckpointBalances(absl::string_view org) { return Prefix(org) + "ckpt:bal"; }
inline std::string ArchiveDirectory(absl::string_view org) { return Prefix(org) + "arch:dir"; }
inline std::string ArchiveMeta(absl::string_view org) { return Prefix(org) + "arch:meta"; }
inline std::string ArchiveChunk(absl::string_view org, absl::string_view chunk_id) {
  return absl::StrCat(Prefix(org), "arch:c:", chunk_id);
}
inline std::string ArchiveIndex(absl::string_view org, absl::string_view account_key) {
  return absl::StrCat(Prefix(org), "arch:a:", account_key);
}
inline std::string ArchiveLock(absl::string_view org) { return Prefix(org) + "arch:lock"; }

// ---- the rewards catalog (scripts/rewards_*.lua) ----
inline std::string RewardItem(absl::string_view org, absl::string_view item_id) {
  return absl::StrCat(Prefix(org), "rw:item:", item_id);
}
inline std::string RewardItems(absl::string_view org) { return Prefix(org) + "rw:items"; }
inline std::string RewardSettings(absl::string_view org) { return Prefix(org) + "rw:settings"; }
inline std::string RewardSequence(absl::string_view org) { return Prefix(org) + "rw:seq"; }
inline std::string RewardsListed(absl::string_view org) { return Prefix(org) + "rw:all"; }
inline std::string RewardsListedOf(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "rw:p:", person);
}
inline std::string RewardsOpen(absl::string_view org) { return Prefix(org) + "rw:open"; }
inline std::string RewardsAwaiting(absl::string_view org, absl::string_view person) {
  return absl::StrCat(Prefix(org), "rw:awaiting:", person);
}
inline std::string RewardsAwaitingPoints(absl::string_view org) {
  return Prefix(org) + "rw:awaiting_points";
}

// A script's KEYS: in the order first added, each once.
class KeyList {
 public:
  KeyList& Add(std::string key) {
    if (seen_.insert(key).second) keys_.push_back(std::move(key));
    return *this;
  }
  bool Has(const std::string& key) const { return seen_.count(key) != 0; }
  size_t size() const { return keys_.size(); }
  const std::vector<std::string>& keys() const { return keys_; }
  std::vector<std::string> Take() && { return std::move(keys_); }

 private:
  std::set<std::string> seen_;
  std::vector<std::string> keys_;
};

// The keys a script reads a live transfer under: its bucket and, for one
// written before the buckets, its own key (lib.lua read_tx reads both).
inline KeyList& AddTransfer(KeyList& keys, absl::string_view org, absl::string_view transfer_id) {
  return keys.Add(TransferBucketKey(org, transfer_id)).Add(Transfer(org, transfer_id));
}

}  // namespace ledger::keys
