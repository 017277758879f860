// The ledger's Redis side: every write is one Lua script (scripts/*.lua, with
// scripts/lib.lua prepended) that checks everything first and then applies,
// so a call is all or nothing and the outbox entry is written in the same
// atomic step as the balances. Key layout: see scripts/lib.lua. All keys of
// an org share the prefix "ledger:{org}:" (one Redis Cluster slot); every
// key a script touches is passed in KEYS (ledger_keys.h computes them), so a
// slot migration routes the script by them (issue 14).
//
// Callers validate requests and permissions (ledger_rules.h) first; the store
// composes the domain error messages from what the scripts report.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/async_client.h"
#include "common/redis/redis_client.h"
#include "services/ledger/allowance_cache.h"
#include "services/ledger/allowance_rules.h"
#include "services/ledger/ledger_keys.h"
#include "services/ledger/ledger_rules.h"

namespace ledger {

struct PostResult {
  int index = 0;  // position in the request
  absl::Status status;
  bool created = false;
  Transfer transfer;  // the stored transfer when status is OK
};

// What a person's allowance is computed from (allowance_rules.h).
struct AllowanceInputs {
  AllowancePolicy policy;
  std::vector<AllowanceRule> rules;
  AllowanceProfile profile;  // person_id only when none is stored
  std::vector<AllowanceBoost> boosts;  // oldest grant first
};

struct BalanceInfo {
  int64_t balance = 0;
  int64_t held = 0;
};

struct TransferPage {
  std::vector<Transfer> transfers;
  int64_t next_before = 0;  // 0: no more pages
};

// Every method is asynchronous: `done` runs exactly once, with the result or
// the status, on a Redis loop thread (over an AsyncClient: it must not
// block) or, over a Pool (tests, tools), inside the call. Every Redis call
// carries `deadline`.
template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
using common::redis::Deadline;

// How many replicas must have a ledger write before the call is
// acknowledged. Redis replicates asynchronously: a primary that fails right
// after a write may take it with it. With `replicas` > 0 every write (a
// script, or the policy's MULTI) goes out as MULTI, the write, EXEC, then
// `WAIT replicas timeout` on the same connection (one round trip); fewer
// acknowledgements than asked make the call UNAVAILABLE (the write may be
// there: a retry with the same ids is safe). Note that WAIT holds the
// connection it is sent on, so while a replica lags, the other calls of that
// connection (same loop, same primary) wait up to `timeout` too.
struct WriteConcern {
  int replicas = 0;  // 0: no WAIT
  std::chrono::milliseconds timeout{500};
};
// --redis_wait_replicas (env REDIS_WAIT_REPLICAS, 0..100) and
// --redis_wait_timeout_ms (REDIS_WAIT_TIMEOUT_MS, 1..60000); INVALID_ARGUMENT
// naming the flag when out of range.
absl::StatusOr<WriteConcern> WriteConcernFromFlags();

class LedgerStore {
 public:
  // The service: non-blocking, pipelined calls. `write_transfer_keys`: new
  // transfers go to their own key (tx:<id>) instead of their bucket, as
  // versions before the buckets wrote them: on only while replicas of such a
  // version still serve (a rolling upgrade, docs/retention-ledger.md).
  explicit LedgerStore(common::redis::AsyncClient& redis, WriteConcern write_concern = {},
                       bool write_transfer_keys = false);
  // Tests and tools: the blocking pool; callbacks run inside the call.
  explicit LedgerStore(common::redis::Pool& pool, WriteConcern write_concern = {},
                       bool write_transfer_keys = false);
  bool write_transfer_keys() const { return write_transfer_keys_; }

  // "ledger:{org}:"
  static std::string Prefix(absl::string_view org);

  // The stored policy, or DefaultPolicy() when none was set.
  void GetPolicy(absl::string_view org, Deadline deadline, Callback<AllowancePolicy> done);
  // Writes the policy, the (normalized) retention when given, and, when
  // `audit_actor` is not empty, an audit entry by them, in one transaction.
  void SetPolicy(absl::string_view org, absl::string_view audit_actor,
                 const AllowancePolicy& policy, const std::optional<RetentionPolicy>& retention,
                 Deadline deadline, StatusCallback done);
  // The stored retention policy, or DefaultRetention() when none was set.
  void GetRetention(absl::string_view org, Deadline deadline, Callback<RetentionPolicy> done);

  // Posts validated transfers (index = position in the request). Linked: on
  // failure a single result, the first failing transfer, and nothing was
  // written. Unlinked: one result per transfer. RETRACTION transfers are
  // checked against the transfers they reverse first (PrepareReversal).
  // One round trip when the replica's AllowanceCache knows the givers'
  // allowance inputs: post.lua checks the org's allowance version they were
  // read under before anything else (moved: it writes nothing, and the post
  // reads them and runs again, at most kMaxAllowanceAttempts runs, then
  // ABORTED "retry") and registers the org (its slot's registry key).
  void Post(absl::string_view org, std::vector<std::pair<int, Transfer>> transfers, bool linked,
            absl::Time now, Deadline deadline, Callback<std::vector<PostResult>> done);
  // Every profile the kudos service mirrors bumps the org's version, so a
  // directory import moves it once per person: 3 runs lost to the 4 profiles
  // of a test's setup (ExportTest under ASan) and 8 of 4,000 kudos sent right
  // after the bench's 400-person import (2026-11-30). A run costs one round
  // trip, plus one to read the inputs again.
  static constexpr int kMaxAllowanceAttempts = 8;
  AllowanceCache& allowance_cache() { return allowance_cache_; }

  // ---- allowance rules, profiles and boosts (issue 18 part 2) ----
  // The policy, the org's rules and the person's profile and boosts, in one
  // pipeline (one round trip, the org's slot).
  void ReadAllowanceInputs(absl::string_view org, absl::string_view person, Deadline deadline,
                           Callback<AllowanceInputs> done);
  // The org's allowance version, the policy, the rules and each giver's
  // profile and boosts (one pipeline, the org's slot, the version first).
  // Post reads them only when its replica's AllowanceCache cannot answer, or
  // post.lua found the version moved.
  void ReadGiversAllowance(absl::string_view org, const std::vector<std::string>& givers,
                           Deadline deadline, Callback<PostAllowance> done);
  // In rule_id order.
  void ListAllowanceRules(absl::string_view org, Deadline deadline,
                          Callback<std::vector<AllowanceRule>> done);
  // At most kMaxAllowanceRules per org (FAILED_PRECONDITION); true when it
  // changed something. Admin changes are audited (`actor`) in the same script.
  void SetAllowanceRule(absl::string_view org, absl::string_view actor, const AllowanceRule& rule,
                        Deadline deadline, Callback<bool> done);
  void DeleteAllowanceRule(absl::string_view org, absl::string_view actor,
                           absl::string_view rule_id, Deadline deadline, Callback<bool> done);
  // `actor` empty: not audited (the kudos service mirroring its directory).
  void SetAllowanceProfile(absl::string_view org, absl::string_view actor,
                           const AllowanceProfile& profile, Deadline deadline,
                           StatusCallback done);
  // The stored boost and whether this call created it; the same id with
  // another fingerprint is ALREADY_EXISTS; at most kMaxBoostsPerPerson.
  void GrantBoost(absl::string_view org, absl::string_view actor, const AllowanceBoost& boost,
                  absl::string_view fingerprint, absl::Time now, Deadline deadline,
                  Callback<std::pair<AllowanceBoost, bool>> done);
  // NOT_FOUND when the person has no such boost; a cancelled one is returned.
  void CancelBoost(absl::string_view org, absl::string_view actor, absl::string_view person,
                   absl::string_view boost_id, Deadline deadline, Callback<AllowanceBoost> done);

  // Earned accounts report the points held by pending redemptions.
  void GetBalance(absl::string_view org, const Account& account, absl::Time now,
                  Deadline deadline, Callback<BalanceInfo> done);
  void Spent(absl::string_view org, absl::string_view person, absl::string_view period_key,
             Deadline deadline, Callback<int64_t> done);
  // Newest first, sequences below `before` (0: from the newest): the live
  // tail, then the archived transfers (ledger_archive.h), in one atomic read.
  void ListTransfers(absl::string_view org, absl::string_view account_key, int64_t before,
                     int limit, Deadline deadline, Callback<TransferPage> done);

  // `audit_actor`: who to record in the audit stream when the call changes
  // the redemption (an admin acting for someone), empty for none. At most
  // kMaxPendingRedemptionsPerPerson pending per person (FAILED_PRECONDITION).
  void CreateRedemption(absl::string_view org, absl::string_view audit_actor,
                        absl::string_view person,
                        const ledger::v1::CreateRedemptionRequest& request, absl::Time now,
                        Deadline deadline, Callback<ledger::v1::Redemption> done);
  // NOT_FOUND when there is no such redemption; state reads EXPIRED once due.
  void GetRedemption(absl::string_view org, absl::string_view redemption_id, absl::Time now,
                     Deadline deadline, Callback<ledger::v1::Redemption> done);
  void FulfillRedemption(absl::string_view org, absl::string_view audit_actor,
                         const ledger::v1::Redemption& pending, absl::Time now,
                         Deadline deadline, Callback<ledger::v1::Redemption> done);
  void CancelRedemption(absl::string_view org, absl::string_view audit_actor,
                        const ledger::v1::Redemption& pending, absl::Time now,
                        Deadline deadline, Callback<ledger::v1::Redemption> done);

  // ADJUSTMENT issuer -> earned (amount > 0) or earned -> issuer (< 0), with
  // the audit entry written by the same script.
  void Adjust(absl::string_view org, absl::string_view actor,
              const ledger::v1::AdjustBalanceRequest& request, absl::Time now,
              Deadline deadline, Callback<Transfer> done);

  // Recomputes every balance from the archived checkpoint plus the live
  // journal. The archive itself is checked first (each chunk against the
  // digest recorded when it was written, the chain, the sequences, the
  // checkpoint's totals and count): a mismatch there is DATA_LOSS naming the
  // chunk or the account. One chunk is read and checked per step.
  void Verify(absl::string_view org, Deadline deadline,
              Callback<ledger::v1::VerifyLedgerResponse> done);
  // Blocking (tests and tools, never on a loop thread), bounded by 60 s.
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> Verify(absl::string_view org);
  // Tests only: runs in each Verify attempt right after its snapshot, so a
  // test can commit an archive run exactly there.
  void SetAfterVerifySnapshotForTest(std::function<void()> hook) {
    after_verify_snapshot_for_test_ = std::move(hook);
  }

  // Runs a write script of an org under the store's write concern: EVALSHA,
  // or with `replicas` > 0 one pipeline of MULTI, [SCRIPT LOAD,] EVALSHA,
  // INCR keys::WaitMark(org), EXEC, WAIT; the script's reply once enough
  // replicas acknowledged (else UNAVAILABLE). Every key is the org's.
  // The mark makes every call move the connection's replication offset, so
  // WAIT also covers a retry that finds its write already applied (by
  // another connection, perhaps not yet replicated). Also used by
  // RewardsStore (issue 18).
  void EvalWrite(const common::redis::Script& script, absl::string_view org,
                 std::vector<std::string> keys, std::vector<std::string> args,
                 Deadline deadline, common::redis::ReplyCallback done);
  // A script whose keys depend on what it reads (scripts/lib.lua, wants()):
  // when it answers {'NEED_KEYS', tag, value, ...} (having written nothing)
  // the keys are added (KeysNeeded) and it runs again, at most
  // kMaxKeyAttempts runs in all (then ABORTED: the data kept changing).
  // `write`: through EvalWrite (the write concern), else a plain EVALSHA.
  void EvalKeyed(const common::redis::Script& script, absl::string_view org,
                 std::vector<std::string> keys, std::vector<std::string> args, bool write,
                 Deadline deadline, common::redis::ReplyCallback done);
  static constexpr int kMaxKeyAttempts = 3;
  // The keys a NEED_KEYS tag names: 'holds' a person's held/holds, 'rdm' a
  // redemption record, 'person' a person's rewards listings, 'item' a reward
  // item, 'tx' a transfer. INTERNAL for an unknown tag.
  static absl::Status AddKeysNeeded(absl::string_view org, absl::string_view tag,
                                    absl::string_view value, keys::KeyList& keys);
  // The keys lib.lua's check/apply touch for one transfer: tx, both account
  // indexes, and the debit's spent counter (kind "A", of `period_key`) or
  // held/holds (kind "E").
  static void AddTransferKeys(absl::string_view org, const Transfer& transfer,
                              absl::string_view dkind, absl::string_view dperson,
                              absl::string_view period_key, keys::KeyList& keys);
  // bal, seq, journal and outbox: every script that may apply a transfer.
  static void AddJournalKeys(absl::string_view org, keys::KeyList& keys);

  // What Post sends to post.lua, for tools and the bench's Redis floor (the
  // same call without the store): the script as loaded (guard included),
  // its KEYS and its ARGV for validated `transfers` in the allowance period
  // `period_key` with the policy's `points_per_period` for every giver.
  // KEYS[5] is the org registry key the script SADDs the org to
  // (`registry_key`, default common::redis::OrgRegistryKey(org)). The script
  // reads the org's allowance version (alw:ver) as Post's does but does not
  // compare it ('*').
  static const common::redis::Script& PostScript();
  // A ledger script's text: the globals scripts/lib.lua reads (MAX_BALANCE,
  // MAX_PENDING from ledger_rules.h; WRITE_TX_KEYS), `constants` (more
  // "local NAME = value" lines of the caller's own), lib.lua, then `script`.
  // Every ledger script is built here, so no caller leaves a global out.
  static std::string WithLib(absl::string_view script, bool write_transfer_keys,
                             absl::string_view constants = "");
  static std::vector<std::string> PostKeys(absl::string_view org,
                                           const std::vector<std::pair<int, Transfer>>& transfers,
                                           absl::string_view period_key,
                                           absl::string_view registry_key = {});
  static std::vector<std::string> PostArgs(absl::string_view org,
                                           const std::vector<std::pair<int, Transfer>>& transfers,
                                           bool linked, absl::Time now,
                                           absl::string_view period_key,
                                           int64_t points_per_period);
  const WriteConcern& write_concern() const { return write_concern_; }

 private:
  // One run of Post (attempt 1: the cache may answer; later: read first).
  void PostAttempt(std::string org, std::vector<std::pair<int, Transfer>> transfers, bool linked,
                   absl::Time now, Deadline deadline, int attempt,
                   Callback<std::vector<PostResult>> done);
  // The org's allowance inputs changed (this replica wrote them).
  void AllowanceChanged(absl::string_view org) { allowance_cache_.DropOrg(org); }
  // The Redis primitives, over whichever client the store was made with.
  void Run(common::redis::Command command, Deadline deadline,
           common::redis::ReplyCallback done);
  void Pipeline(std::vector<common::redis::Command> commands, Deadline deadline,
                common::redis::PipelineCallback done);
  void Eval(const common::redis::Script& script, std::vector<std::string> keys,
            std::vector<std::string> args, Deadline deadline, common::redis::ReplyCallback done);

  // allowance.lua under the write concern; its reply as {code, ...}.
  void EvalAllowance(absl::string_view org, std::vector<std::string> keys,
                     std::vector<std::string> args, Deadline deadline,
                     common::redis::ReplyCallback done);
  void EvalWaited(const common::redis::Script& script, std::string wait_mark,
                  std::vector<std::string> keys, std::vector<std::string> args,
                  Deadline deadline, bool load_script, common::redis::ReplyCallback done);
  void EvalKeyedAttempt(const common::redis::Script& script, std::string org,
                        std::vector<std::string> keys, std::vector<std::string> args, bool write,
                        Deadline deadline, int attempt, common::redis::ReplyCallback done);
  // WAIT replicas ms: the concern's timeout, at most 3/4 of the time left
  // before `deadline` (so the answer says why before the deadline passes),
  // never 0 (which would wait forever).
  common::redis::Command WaitCommand(Deadline deadline) const;
  // OK when WAIT's reply counts enough replicas; UNAVAILABLE saying how many
  // did otherwise.
  absl::Status Acknowledged(const absl::StatusOr<common::redis::Reply>& wait,
                            const common::redis::Command& wait_command) const;

  // The org into its slot's registry (common/redis/org_registry.h), then the
  // write (see the README: an org with an outbox is always registered).
  void RegisterOrgThen(absl::string_view org, Deadline deadline,
                       absl::AnyInvocable<void() &&> write, StatusCallback failed);
  // After a registration that added the org (`registered` = the SADD's 1),
  // the slot hint for discovery, fire-and-forget.
  void HintNewOrg(const std::string& org, const common::redis::Reply& registered,
                  Deadline deadline);
  // The archived transfers at `sequences` (newest first), from their chunks.
  void ReadArchived(const std::string& prefix, const common::redis::Reply& sequences,
                    const common::redis::Reply& chunk_ids, Deadline deadline,
                    Callback<std::vector<Transfer>> done);
  // One attempt; nullopt when the archive moved the journal meanwhile.
  void VerifyOnce(absl::string_view org, Deadline deadline,
                  Callback<std::optional<ledger::v1::VerifyLedgerResponse>> done);
  void VerifyAttempt(std::string org, int attempt, Deadline deadline,
                     Callback<ledger::v1::VerifyLedgerResponse> done);
  // redemption.lua: op, now, id, the audit entry's fields (none: not
  // audited), then the op's own arguments.
  void EvalRedemption(absl::string_view org, absl::string_view op, absl::Time now,
                      absl::string_view redemption_id, const std::vector<std::string>& audit,
                      std::vector<std::string> op_args, keys::KeyList keys, Deadline deadline,
                      common::redis::ReplyCallback done);

  common::redis::AsyncClient* redis_ = nullptr;  // one of the two
  common::redis::Pool* pool_ = nullptr;
  WriteConcern write_concern_;
  bool write_transfer_keys_ = false;
  common::redis::Script post_;
  common::redis::Script adjust_;
  common::redis::Script redemption_;
  common::redis::Script balance_;
  common::redis::Script list_;
  common::redis::Script tx_read_;
  common::redis::Script allowance_;
  AllowanceCache allowance_cache_;
  std::function<void()> after_verify_snapshot_for_test_;
};

}  // namespace ledger
