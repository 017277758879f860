// Program budgets (issue 18, part 2): validation and period arithmetic,
// plain C++ (no Redis, no gRPC).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "programs/v1/awards.pb.h"

namespace programs {

inline constexpr int kMaxBudgetOwners = 20;
inline constexpr int64_t kMaxBudgetAmount = 1000000000;
inline constexpr size_t kMaxNameBytes = 100;

// A new budget as an admin sends it (time_zone already resolved).
absl::Status ValidateBudget(const v1::Budget& budget);
// An update: name, owner_ids and amount_per_period as ValidateBudget checks them.
absl::Status ValidateBudgetUpdate(const v1::Budget& update);
// 1..128 printable ASCII.
absl::Status ValidateRequestId(absl::string_view request_id);

// The key of the period `now` falls in ("2026-11", "2026-Q4", "2026", "all").
absl::StatusOr<std::string> BudgetPeriodAt(const v1::Budget& budget, absl::Time now);
// Moves `budget` to the period of `now` (spent restarts at the reserved
// points still in flight) and sets remaining; true when the period changed.
absl::StatusOr<bool> RollOver(v1::Budget& budget, absl::Time now);
// OK when `points` fit in what is left this period, else RESOURCE_EXHAUSTED
// naming the budget, what is left and the period.
absl::Status CheckFits(const v1::Budget& budget, int64_t points);

bool IsBudgetOwner(const v1::Budget& budget, absl::string_view person);
// Admins and owners read a budget and its history.
absl::Status CanReadBudget(const common::auth::Principal& who, const v1::Budget& budget);
absl::Status RequireAdmin(const common::auth::Principal& who, absl::string_view what);

// The same payload (for idempotent creation): the fields a caller sets.
bool SameBudgetDefinition(const v1::Budget& a, const v1::Budget& b);

}  // namespace programs
