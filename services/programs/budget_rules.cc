#include "services/programs/budget_rules.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "common/calendar/calendar.h"

namespace programs {
namespace {

absl::Status CheckName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("budget.name: 1..", kMaxNameBytes, " bytes, got ", name.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckOwners(const google::protobuf::RepeatedPtrField<std::string>& owners) {
  if (owners.empty() || owners.size() > kMaxBudgetOwners) {
    return absl::InvalidArgumentError(absl::StrCat("budget.owner_ids: 1..", kMaxBudgetOwners,
                                                   " people, got ", owners.size()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < owners.size(); ++i) {
    std::string field = absl::StrCat("budget.owner_ids[", i, "]");
    if (absl::Status s = common::auth::CheckId(field, owners[i]); !s.ok()) return s;
    if (!seen.insert(owners[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": '", owners[i], "' twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAmount(int64_t amount) {
  if (amount < 1 || amount > kMaxBudgetAmount) {
    return absl::InvalidArgumentError(absl::StrCat("budget.amount_per_period: 1..",
                                                   kMaxBudgetAmount, ", got ", amount));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBudget(const v1::Budget& budget) {
  if (absl::Status s = common::auth::CheckId("budget.budget_id", budget.budget_id()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckName(budget.name()); !s.ok()) return s;
  if (budget.kind() != v1::BUDGET_KIND_MANAGER && budget.kind() != v1::BUDGET_KIND_PROGRAM) {
    return absl::InvalidArgumentError("budget.kind: MANAGER or PROGRAM");
  }
  if (absl::Status s = CheckOwners(budget.owner_ids()); !s.ok()) return s;
  if (absl::Status s = CheckAmount(budget.amount_per_period()); !s.ok()) return s;
  if (!v1::BudgetRefresh_IsValid(budget.refresh()) ||
      budget.refresh() == v1::BUDGET_REFRESH_UNSPECIFIED) {
    return absl::InvalidArgumentError("budget.refresh: NONE, MONTHLY, QUARTERLY or YEARLY");
  }
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(budget.time_zone());
  if (!zone.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("budget.time_zone: '", budget.time_zone(), "' is not an IANA zone"));
  }
  return absl::OkStatus();
}

absl::Status ValidateBudgetUpdate(const v1::Budget& update) {
  if (absl::Status s = common::auth::CheckId("budget.budget_id", update.budget_id()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckName(update.name()); !s.ok()) return s;
  if (absl::Status s = CheckOwners(update.owner_ids()); !s.ok()) return s;
  return CheckAmount(update.amount_per_period());
}

absl::Status ValidateRequestId(absl::string_view request_id) {
  if (request_id.empty() || request_id.size() > 128) {
    return absl::InvalidArgumentError("request_id: 1..128 printable ASCII characters");
  }
  for (char c : request_id) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError("request_id: 1..128 printable ASCII characters");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BudgetPeriodAt(const v1::Budget& budget, absl::Time now) {
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(budget.time_zone());
  if (!zone.ok()) return zone.status();
  common::calendar::PeriodUnit unit;
  switch (budget.refresh()) {
    case v1::BUDGET_REFRESH_MONTHLY:
      unit = common::calendar::PeriodUnit::kMonth;
      break;
    case v1::BUDGET_REFRESH_QUARTERLY:
      unit = common::calendar::PeriodUnit::kQuarter;
      break;
    case v1::BUDGET_REFRESH_YEARLY:
      unit = common::calendar::PeriodUnit::kYear;
      break;
    default:
      unit = common::calendar::PeriodUnit::kAllTime;
  }
  return common::calendar::PeriodAt(unit, now, *zone, 1).key;
}

absl::StatusOr<bool> RollOver(v1::Budget& budget, absl::Time now) {
  absl::StatusOr<std::string> period = BudgetPeriodAt(budget, now);
  if (!period.ok()) return period.status();
  bool changed = budget.period() != *period;
  if (changed) {
    // Payments in flight were reserved in the period they started in; they
    // stay counted in the new one until paid, so the budget never promises
    // more than it holds while a payment can still land.
    budget.set_period(*period);
    budget.set_spent(budget.reserved());
  }
  budget.set_remaining(budget.amount_per_period() - budget.spent());
  return changed;
}

absl::Status CheckFits(const v1::Budget& budget, int64_t points) {
  int64_t left = budget.amount_per_period() - budget.spent();
  if (points <= left) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "budget '", budget.budget_id(), "': ", points, " points needed, ", std::max<int64_t>(left, 0),
      " left in period ", budget.period()));
}

bool IsBudgetOwner(const v1::Budget& budget, absl::string_view person) {
  return std::find(budget.owner_ids().begin(), budget.owner_ids().end(), person) !=
         budget.owner_ids().end();
}

absl::Status CanReadBudget(const common::auth::Principal& who, const v1::Budget& budget) {
  if (who.is_admin() && !who.is_service()) return absl::OkStatus();
  if (IsBudgetOwner(budget, who.subject)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "budget '", budget.budget_id(), "': only admins and its owners may read it"));
}

absl::Status RequireAdmin(const common::auth::Principal& who, absl::string_view what) {
  if (who.is_admin() && !who.is_service()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, ": admins only"));
}

bool SameBudgetDefinition(const v1::Budget& a, const v1::Budget& b) {
  return a.budget_id() == b.budget_id() && a.name() == b.name() && a.kind() == b.kind() &&
         std::equal(a.owner_ids().begin(), a.owner_ids().end(), b.owner_ids().begin(),
                    b.owner_ids().end()) &&
         a.amount_per_period() == b.amount_per_period() && a.refresh() == b.refresh() &&
         a.time_zone() == b.time_zone();
}

}  // namespace programs
