// The ledger's Redis side: every write is one Lua script (scripts/*.lua, with
// scripts/lib.lua prepended) that checks everything first and then applies,
// so a call is all or nothing and the outbox entry is written in the same
// atomic step as the balances. Key layout: see scripts/lib.lua. All keys of
// an org share the prefix "ledger:{org}:" (one Redis Cluster slot); the
// scripts get that prefix as KEYS[1] and derive the keys from it.
//
// Callers validate requests and permissions (ledger_rules.h) first; the store
// composes the domain error messages from what the scripts report.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "services/ledger/ledger_rules.h"

namespace ledger {

struct PostResult {
  int index = 0;  // position in the request
  absl::Status status;
  bool created = false;
  Transfer transfer;  // the stored transfer when status is OK
};

struct BalanceInfo {
  int64_t balance = 0;
  int64_t held = 0;
};

struct TransferPage {
  std::vector<Transfer> transfers;
  int64_t next_before = 0;  // 0: no more pages
};

class LedgerStore {
 public:
  explicit LedgerStore(common::redis::Pool& pool);

  // "ledger:{org}:"
  static std::string Prefix(absl::string_view org);

  // The stored policy, or DefaultPolicy() when none was set.
  absl::StatusOr<AllowancePolicy> GetPolicy(absl::string_view org);
  // Writes the policy, the (normalized) retention when given, and, when
  // `audit_actor` is not empty, an audit entry by them, in one transaction.
  absl::Status SetPolicy(absl::string_view org, absl::string_view audit_actor,
                         const AllowancePolicy& policy,
                         const std::optional<RetentionPolicy>& retention = std::nullopt);
  // The stored retention policy, or DefaultRetention() when none was set.
  absl::StatusOr<RetentionPolicy> GetRetention(absl::string_view org);

  // Posts validated KUDOS/BOOST transfers (index = position in the request).
  // Linked: on failure a single result, the first failing transfer, and
  // nothing was written. Unlinked: one result per transfer.
  absl::StatusOr<std::vector<PostResult>> Post(absl::string_view org,
                                               const std::vector<std::pair<int, Transfer>>& transfers,
                                               bool linked, absl::Time now);

  // Earned accounts report the points held by pending redemptions.
  absl::StatusOr<BalanceInfo> GetBalance(absl::string_view org, const Account& account,
                                         absl::Time now);
  absl::StatusOr<int64_t> Spent(absl::string_view org, absl::string_view person,
                                absl::string_view period_key);
  // Newest first, sequences below `before` (0: from the newest): the live
  // tail, then the archived transfers (ledger_archive.h), in one atomic read.
  absl::StatusOr<TransferPage> ListTransfers(absl::string_view org,
                                             absl::string_view account_key, int64_t before,
                                             int limit);

  // `audit_actor`: who to record in the audit stream when the call changes
  // the redemption (an admin acting for someone), empty for none. At most
  // kMaxPendingRedemptionsPerPerson pending per person (FAILED_PRECONDITION).
  absl::StatusOr<ledger::v1::Redemption> CreateRedemption(
      absl::string_view org, absl::string_view audit_actor, absl::string_view person,
      const ledger::v1::CreateRedemptionRequest& request, absl::Time now);
  // NOT_FOUND when there is no such redemption; state reads EXPIRED once due.
  absl::StatusOr<ledger::v1::Redemption> GetRedemption(absl::string_view org,
                                                       absl::string_view redemption_id,
                                                       absl::Time now);
  absl::StatusOr<ledger::v1::Redemption> FulfillRedemption(
      absl::string_view org, absl::string_view audit_actor, const ledger::v1::Redemption& pending,
      absl::Time now);
  absl::StatusOr<ledger::v1::Redemption> CancelRedemption(
      absl::string_view org, absl::string_view audit_actor, const ledger::v1::Redemption& pending,
      absl::Time now);

  // ADJUSTMENT issuer -> earned (amount > 0) or earned -> issuer (< 0), with
  // the audit entry written by the same script.
  absl::StatusOr<Transfer> Adjust(absl::string_view org, absl::string_view actor,
                                  const ledger::v1::AdjustBalanceRequest& request, absl::Time now);

  // Recomputes every balance from the archived checkpoint plus the live
  // journal. The archive itself is checked first (each chunk against the
  // digest recorded when it was written, the chain, the sequences, the
  // checkpoint's totals and count): a mismatch there is DATA_LOSS naming the
  // chunk or the account.
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> Verify(absl::string_view org);
  // Tests only: runs in each Verify attempt right after its snapshot, so a
  // test can commit an archive run exactly there.
  void SetAfterVerifySnapshotForTest(std::function<void()> hook) {
    after_verify_snapshot_for_test_ = std::move(hook);
  }

 private:
  absl::Status RegisterOrg(absl::string_view org);
  // The archived transfers at `sequences` (newest first), from their chunks.
  absl::StatusOr<std::vector<Transfer>> ReadArchived(const std::string& prefix,
                                                     const common::redis::Reply& sequences,
                                                     const common::redis::Reply& chunk_ids);
  // One attempt; nullopt when the archive moved the journal meanwhile.
  absl::StatusOr<std::optional<ledger::v1::VerifyLedgerResponse>> VerifyOnce(
      absl::string_view org);
  // redemption.lua: op, now, id, the audit entry's fields (none: not
  // audited), then the op's own arguments.
  absl::StatusOr<common::redis::Reply> EvalRedemption(absl::string_view org, absl::string_view op,
                                                      absl::Time now,
                                                      absl::string_view redemption_id,
                                                      const std::vector<std::string>& audit,
                                                      std::vector<std::string> op_args);

  common::redis::Pool& pool_;
  common::redis::Script post_;
  common::redis::Script adjust_;
  common::redis::Script redemption_;
  common::redis::Script balance_;
  common::redis::Script list_;
  std::function<void()> after_verify_snapshot_for_test_;
};

}  // namespace ledger
