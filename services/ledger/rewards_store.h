// The rewards catalog's Redis side (issue 18): every write is one Lua script
// (scripts/rewards_*.lua with scripts/lib.lua prepended) in the org's slot
// that checks first, then applies, and writes its audit entry in the same
// atomic step. Redemptions are ledger redemption records ("rdm:rwd_..."), so
// their holds are the ledger's holds (key layout: scripts/rewards_redeem.lua,
// scripts/rewards_catalog.lua). Callers validate requests and permissions
// (rewards_rules.h) first; the store composes the domain messages from
// what the scripts report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/async_client.h"
#include "services/ledger/ledger_keys.h"
#include "ledger/v1/rewards.pb.h"

namespace ledger {

// Asynchronous: `done` runs exactly once, on a Redis loop thread (it must
// not block). Every Redis call carries `deadline`.
template <typename T>
using RewardsCallback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

struct CreatedItem {
  ledger::v1::RewardItem item;
  bool created = false;
};

struct ItemPage {
  std::vector<ledger::v1::RewardItem> items;
  std::string next_after;  // empty: no more
};

struct RedemptionPage {
  std::vector<ledger::v1::RewardRedemption> redemptions;
  std::string next_after;  // empty: no more
};

struct LiabilityTotals {
  int64_t outstanding_points = 0;
  int64_t held_points = 0;
  int64_t awaiting_points = 0;
  int64_t people = 0;
};

// Which listing of redemptions.
enum class RedemptionListing { kAll, kPerson, kOpen };

class LedgerStore;

class RewardsStore {
 public:
  // Reads go to `redis`; every write script goes through
  // `writes.EvalWrite`, so it honours the ledger's write concern (WAIT
  // --redis_wait_replicas after it: fewer acknowledgements are UNAVAILABLE,
  // the write may be applied and a retry with the same ids is safe).
  RewardsStore(common::redis::AsyncClient& redis, LedgerStore& writes);

  // `actor`: who the audit entry names (always a person here).
  void CreateItem(absl::string_view org, absl::string_view actor,
                  const ledger::v1::RewardItem& item, absl::Time now,
                  common::redis::Deadline deadline, RewardsCallback<CreatedItem> done);
  void UpdateItem(absl::string_view org, absl::string_view actor,
                  const ledger::v1::RewardItem& item, absl::Time now,
                  common::redis::Deadline deadline, RewardsCallback<ledger::v1::RewardItem> done);
  void ArchiveItem(absl::string_view org, absl::string_view actor, absl::string_view item_id,
                   absl::Time now, common::redis::Deadline deadline,
                   RewardsCallback<ledger::v1::RewardItem> done);
  // NOT_FOUND when there is no such item.
  void GetItem(absl::string_view org, absl::string_view item_id, common::redis::Deadline deadline,
               RewardsCallback<ledger::v1::RewardItem> done);
  // In item id order, after `after` ("" = from the first).
  void ListItems(absl::string_view org, absl::string_view after, int page_size,
                 bool include_inactive, common::redis::Deadline deadline,
                 RewardsCallback<ItemPage> done);

  void GetSettings(absl::string_view org, common::redis::Deadline deadline,
                   RewardsCallback<ledger::v1::RewardSettings> done);
  void SetSettings(absl::string_view org, absl::string_view actor,
                   const ledger::v1::RewardSettings& settings, common::redis::Deadline deadline,
                   RewardsCallback<ledger::v1::RewardSettings> done);

  // `person` redeems for themself; quantity normalized (1..10).
  void Redeem(absl::string_view org, absl::string_view person, absl::string_view request_id,
              absl::string_view item_id, int quantity, absl::Time now,
              common::redis::Deadline deadline, RewardsCallback<ledger::v1::RewardRedemption> done);
  void RequestCustom(absl::string_view org, absl::string_view person,
                     const ledger::v1::RequestCustomRewardRequest& request, absl::Time now,
                     common::redis::Deadline deadline,
                     RewardsCallback<ledger::v1::RewardRedemption> done);
  void Approve(absl::string_view org, absl::string_view actor, absl::string_view redemption_id,
               absl::Time now, common::redis::Deadline deadline,
               RewardsCallback<ledger::v1::RewardRedemption> done);
  // Posts REDEMPTION earned -> rewards ("redemption:<id>") and releases the
  // hold in one script (the org is registered first: it writes the outbox).
  void Fulfill(absl::string_view org, absl::string_view actor,
               const ledger::v1::RewardRedemption& pending, absl::Time now,
               common::redis::Deadline deadline,
               RewardsCallback<ledger::v1::RewardRedemption> done);
  void Decline(absl::string_view org, absl::string_view actor, absl::string_view redemption_id,
               absl::string_view reason, absl::Time now, common::redis::Deadline deadline,
               RewardsCallback<ledger::v1::RewardRedemption> done);
  void Cancel(absl::string_view org, absl::string_view actor, absl::string_view redemption_id,
              absl::string_view reason, absl::Time now, common::redis::Deadline deadline,
              RewardsCallback<ledger::v1::RewardRedemption> done);
  // NOT_FOUND when there is no such rewards redemption.
  void GetRedemption(absl::string_view org, absl::string_view redemption_id,
                     common::redis::Deadline deadline,
                     RewardsCallback<ledger::v1::RewardRedemption> done);
  void ListRedemptions(absl::string_view org, RedemptionListing listing,
                       absl::string_view person, absl::string_view after, int page_size,
                       common::redis::Deadline deadline, RewardsCallback<RedemptionPage> done);

  // Sums every earned account and its holds, kLiabilityScanCount accounts a
  // step (so no script holds Redis long); not one snapshot across steps.
  void Liability(absl::string_view org, absl::Time now, common::redis::Deadline deadline,
                 RewardsCallback<LiabilityTotals> done);

 private:
  void EvalRedeem(absl::string_view org, absl::string_view op, absl::Time now,
                  absl::string_view redemption_id, absl::string_view actor,
                  const std::vector<std::string>& audit, std::vector<std::string> op_args,
                  keys::KeyList keys, common::redis::Deadline deadline,
                  RewardsCallback<ledger::v1::RewardRedemption> done,
                  std::string context_for_errors);
  void EvalCatalog(absl::string_view org, absl::string_view op, absl::Time now,
                   const std::vector<std::string>& audit, std::vector<std::string> op_args,
                   common::redis::Deadline deadline, common::redis::ReplyCallback done);
  void LiabilityStep(std::string org, absl::Time now, std::string cursor, int step,
                     LiabilityTotals totals, common::redis::Deadline deadline,
                     RewardsCallback<LiabilityTotals> done);
  // Adds one step's rows, then the next step from `next` ("0": done).
  void LiabilityRows(std::string org, absl::Time now, std::string next, int step,
                     LiabilityTotals totals, const common::redis::Reply& reply,
                     common::redis::Deadline deadline, RewardsCallback<LiabilityTotals> done);

  common::redis::AsyncClient& redis_;
  LedgerStore& writes_;
  common::redis::Script catalog_;
  common::redis::Script redeem_;
  common::redis::Script read_;
};

}  // namespace ledger
