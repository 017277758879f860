// Rewards catalog rules (issue 18), plain C++ (no gRPC, no Redis): bounds,
// validation with messages that name the field, redemption ids, the stored
// records as protos, money at the org's rate, page tokens, permissions.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "ledger/v1/rewards.pb.h"

namespace ledger {

// Items an org keeps, archived ones included (archiving does not free a
// slot: their redemptions still name them).
inline constexpr int kMaxRewardItemsPerOrg = 500;
// Custom requests one person may have waiting for an admin at once. Pending
// (held) redemptions share the ledger's cap, kMaxPendingRedemptionsPerPerson.
inline constexpr int kMaxAwaitingCustomRewardsPerPerson = 5;
inline constexpr int kMaxRewardQuantity = 10;
inline constexpr int kDefaultRewardPageSize = 50;
inline constexpr int kMaxRewardPageSize = 200;
// Redemptions the listings keep per org and per person (newest); older
// ones stay readable by id until their record expires.
inline constexpr int kMaxListedRedemptions = 10000;
inline constexpr int kMaxListedRedemptionsPerPerson = 500;
// A finished (fulfilled, declined, cancelled) redemption's record lives this
// long after it finished: retries within it find it.
inline constexpr int64_t kFinishedRedemptionTtlSeconds = 400 * 24 * 3600;
inline constexpr int kMaxRewardNameBytes = 100;
inline constexpr int kMaxRewardDescriptionBytes = 2000;
inline constexpr int kMaxRewardReasonBytes = 256;
inline constexpr int kMaxCurrencyNameBytes = 32;
// At most 1000 money units per point.
inline constexpr int64_t kMaxMoneyNanosPerPoint = 1'000'000'000'000;
// earned accounts one liability step reads (HSCAN COUNT), and the steps.
inline constexpr int kLiabilityScanCount = 500;
inline constexpr int kMaxLiabilitySteps = 100000;
inline constexpr char kRewardRedemptionIdPrefix[] = "rwd_";

// "rwd_" + 24 hex digits, per (person, request_id).
std::string RewardRedemptionId(absl::string_view person, absl::string_view request_id);

// ---- validation (INVALID_ARGUMENT naming the field) -------------------------

absl::Status ValidateItemId(absl::string_view item_id, absl::string_view field);
// name, description, price, stock (unless unlimited).
absl::Status ValidateRewardItem(const ledger::v1::RewardItem& item);
// Fills the defaults (currency name "points", code "USD").
absl::StatusOr<ledger::v1::RewardSettings> NormalizeRewardSettings(
    const ledger::v1::RewardSettings& settings);
ledger::v1::RewardSettings DefaultRewardSettings();
// Quantity 0 means 1.
absl::StatusOr<int> NormalizeQuantity(int32_t quantity);
absl::Status ValidateRedeemRequest(const ledger::v1::RedeemRewardItemRequest& request);
absl::Status ValidateCustomRewardRequest(const ledger::v1::RequestCustomRewardRequest& request);
absl::Status ValidateRedemptionIdField(absl::string_view redemption_id);
// Decline: mandatory; cancel: optional.
absl::Status ValidateReason(absl::string_view reason, bool required);
absl::StatusOr<int> NormalizeRewardPageSize(int32_t page_size);
bool ValidUtf8(absl::string_view text);

// ---- records ----------------------------------------------------------------

using Fields = std::map<std::string, std::string>;
ledger::v1::RewardItem ItemFromFields(absl::string_view item_id, const Fields& fields);
ledger::v1::RewardRedemption RedemptionFromFields(absl::string_view id, const Fields& fields);
ledger::v1::RewardSettings SettingsFromFields(const Fields& fields);
// What a created item is compared by on a retry (the request's fields).
std::string ItemFingerprint(const ledger::v1::RewardItem& item);

// ---- money ------------------------------------------------------------------

// points x nanos_per_point, exact, as units + nanos of `currency_code`.
ledger::v1::Money PointsToMoney(int64_t points, int64_t nanos_per_point,
                                absl::string_view currency_code);

// ---- page tokens --------------------------------------------------------------

// Opaque, bound to what is listed (`scope`): web-safe base64.
std::string EncodeRewardPageToken(absl::string_view position, absl::string_view scope);
absl::StatusOr<std::string> DecodeRewardPageToken(absl::string_view token,
                                                  absl::string_view scope);

// ---- permissions ----------------------------------------------------------------

// A person with the admin role (never a service token).
absl::Status RequireRewardsAdmin(const common::auth::Principal& principal,
                                 absl::string_view what);
// Members (and admins) acting as themselves: not screens, not services.
absl::Status RequirePerson(const common::auth::Principal& principal, absl::string_view what);

}  // namespace ledger
