// Allowance rules and boosts (issue 18 part 2), plain C++: validation with
// messages naming the field, boost ids, and the effective allowance of a
// person in a period. A person's allowance = the org's policy points + every
// rule that matches their profile + every boost of theirs covering the
// period: they add up (no rule overrides another), so an admin reads the
// total as a sum in GetAllowance's contributions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/calendar/calendar.h"
#include "services/ledger/ledger_rules.h"

namespace ledger {

using ::ledger::v1::AllowanceBoost;
using ::ledger::v1::AllowanceProfile;
using ::ledger::v1::AllowanceRule;

inline constexpr int kMaxAllowanceRules = 50;             // per org
inline constexpr int kMaxAllowanceProfiles = 100'000;     // per org
inline constexpr int kMaxBoostsPerPerson = 20;            // stored, ended ones pruned
inline constexpr int kMaxDirectReports = 100'000;
inline constexpr int64_t kMaxPointsPerDirectReport = 1'000'000'000;  // 1e9
inline constexpr int kMaxRuleDescriptionBytes = 256;
// A recurring boost spans at most about five years.
inline constexpr absl::Duration kMaxBoostSpan = absl::Hours(24 * 366 * 5);

// A rule as stored: id, a scope with its one selector, points within bounds.
absl::StatusOr<AllowanceRule> NormalizeRule(const AllowanceRule& rule);
absl::StatusOr<AllowanceProfile> NormalizeProfile(const AllowanceProfile& profile);

// Deterministic per (person, request_id): a retried grant finds its boost.
std::string BoostId(absl::string_view person, absl::string_view request_id);
// What makes two grants with one request_id "the same" (the request's own
// fields, not the times the ledger fills in).
std::string BoostFingerprint(const ledger::v1::GrantAllowanceBoostRequest& request);
// The boost a grant makes at `now` under `policy`: a one-off takes the
// policy's period containing start_time (default now); a recurring one
// [start_time (default now), end_time). INVALID_ARGUMENT naming the field.
absl::StatusOr<AllowanceBoost> BoostFromGrant(const ledger::v1::GrantAllowanceBoostRequest& request,
                                              absl::string_view granted_by,
                                              const AllowancePolicy& policy, absl::Time now);
// Whether a boost adds to `period`: not cancelled, and the one-off's period
// or overlapping the recurring span.
bool BoostCovers(const AllowanceBoost& boost, const common::calendar::Period& period);
// A boost no period from `now` on can use (its end has passed).
bool BoostEnded(const AllowanceBoost& boost, absl::Time now);

struct EffectiveAllowance {
  int64_t base_points = 0;
  int64_t points = 0;  // base + contributions, at most kMaxBalance
  std::vector<ledger::v1::AllowanceContribution> contributions;
};
// Rules in rule_id order, then boosts in the given order.
EffectiveAllowance ComputeAllowance(const AllowancePolicy& policy,
                                    const common::calendar::Period& period,
                                    const std::vector<AllowanceRule>& rules,
                                    const AllowanceProfile& profile,
                                    const std::vector<AllowanceBoost>& boosts);

}  // namespace ledger
