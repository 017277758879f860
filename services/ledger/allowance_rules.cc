#include "services/ledger/allowance_rules.h"

#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"

namespace ledger {
namespace {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

void AppendField(std::string& out, absl::string_view value) {
  absl::StrAppend(&out, value.size(), ":", value, ";");
}

std::string RoleName(ledger::v1::AllowanceRole role) {
  switch (role) {
    case ledger::v1::ALLOWANCE_ROLE_MEMBER:
      return "member";
    case ledger::v1::ALLOWANCE_ROLE_MANAGER:
      return "manager";
    case ledger::v1::ALLOWANCE_ROLE_ADMIN:
      return "admin";
    default:
      return absl::StrCat("role ", static_cast<int>(role));
  }
}

bool KnownRole(ledger::v1::AllowanceRole role) {
  return role == ledger::v1::ALLOWANCE_ROLE_MEMBER || role == ledger::v1::ALLOWANCE_ROLE_MANAGER ||
         role == ledger::v1::ALLOWANCE_ROLE_ADMIN;
}

absl::Status PointsIn(int64_t points, int64_t low, int64_t high, absl::string_view field) {
  if (points >= low && points <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be in ", low, "..", high, ", got ", points));
}

absl::Status CheckScopeFields(const AllowanceRule& rule) {
  const bool role = rule.scope() == ledger::v1::ALLOWANCE_RULE_SCOPE_ROLE;
  const bool team = rule.scope() == ledger::v1::ALLOWANCE_RULE_SCOPE_TEAM;
  const bool manager = rule.scope() == ledger::v1::ALLOWANCE_RULE_SCOPE_MANAGER;
  if (!role && !team && !manager) {
    return absl::InvalidArgumentError(
        "rule.scope: is required (ROLE, TEAM or MANAGER)");
  }
  if (role != (rule.role() != ledger::v1::ALLOWANCE_ROLE_UNSPECIFIED)) {
    return absl::InvalidArgumentError(role ? "rule.role: is required for scope ROLE"
                                           : "rule.role: only for scope ROLE");
  }
  if (role && !KnownRole(rule.role())) {
    return absl::InvalidArgumentError(
        absl::StrCat("rule.role: unknown value ", static_cast<int>(rule.role())));
  }
  if (team != !rule.team_id().empty()) {
    return absl::InvalidArgumentError(team ? "rule.team_id: is required for scope TEAM"
                                           : "rule.team_id: only for scope TEAM");
  }
  if (team) {
    if (absl::Status s = common::auth::CheckId("rule.team_id", rule.team_id()); !s.ok()) return s;
  }
  if (!manager && rule.points_per_direct_report() != 0) {
    return absl::InvalidArgumentError("rule.points_per_direct_report: only for scope MANAGER");
  }
  return absl::OkStatus();
}

std::string DayText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<AllowanceRule> NormalizeRule(const AllowanceRule& rule) {
  if (rule.rule_id().empty()) return absl::InvalidArgumentError("rule.rule_id: is required");
  if (absl::Status s = common::auth::CheckId("rule.rule_id", rule.rule_id()); !s.ok()) return s;
  if (absl::Status s = CheckScopeFields(rule); !s.ok()) return s;
  if (absl::Status s = PointsIn(rule.extra_points(), 0, kMaxAmount, "rule.extra_points");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = PointsIn(rule.points_per_direct_report(), 0, kMaxPointsPerDirectReport,
                                "rule.points_per_direct_report");
      !s.ok()) {
    return s;
  }
  if (rule.extra_points() == 0 && rule.points_per_direct_report() == 0) {
    return absl::InvalidArgumentError(
        "rule.extra_points: a rule must add points (extra_points or points_per_direct_report)");
  }
  if (rule.description().size() > kMaxRuleDescriptionBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("rule.description: at most ", kMaxRuleDescriptionBytes, " bytes"));
  }
  return rule;
}

absl::StatusOr<AllowanceProfile> NormalizeProfile(const AllowanceProfile& profile) {
  if (absl::Status s = ValidatePersonId(profile.person_id(), "profile.person_id"); !s.ok()) {
    return s;
  }
  AllowanceProfile out;
  out.set_person_id(profile.person_id());
  std::vector<int> roles;
  for (int i = 0; i < profile.roles_size(); ++i) {
    auto role = static_cast<ledger::v1::AllowanceRole>(profile.roles(i));
    if (!KnownRole(role)) {
      return absl::InvalidArgumentError(absl::StrCat("profile.roles[", i, "]: unknown value ",
                                                     static_cast<int>(role)));
    }
    roles.push_back(role);
  }
  // Sorted and each once, so a retry with the roles in another order is the same.
  std::sort(roles.begin(), roles.end());
  roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
  for (int role : roles) out.add_roles(static_cast<ledger::v1::AllowanceRole>(role));
  if (!profile.team_id().empty()) {
    if (absl::Status s = common::auth::CheckId("profile.team_id", profile.team_id()); !s.ok()) {
      return s;
    }
    out.set_team_id(profile.team_id());
  }
  if (profile.direct_reports() < 0 || profile.direct_reports() > kMaxDirectReports) {
    return absl::InvalidArgumentError(absl::StrCat("profile.direct_reports: must be in 0..",
                                                   kMaxDirectReports, ", got ",
                                                   profile.direct_reports()));
  }
  out.set_direct_reports(profile.direct_reports());
  return out;
}

std::string BoostId(absl::string_view person, absl::string_view request_id) {
  std::string canonical;
  AppendField(canonical, person);
  AppendField(canonical, request_id);
  return absl::StrCat("bst_", Sha256Hex(canonical).substr(0, 24));
}

std::string BoostFingerprint(const ledger::v1::GrantAllowanceBoostRequest& request) {
  std::string canonical = "v1;";
  AppendField(canonical, request.person_id());
  AppendField(canonical, absl::StrCat(request.points()));
  AppendField(canonical, request.recurring() ? "1" : "0");
  AppendField(canonical, request.start_time().SerializeAsString());
  AppendField(canonical, request.end_time().SerializeAsString());
  AppendField(canonical, request.reason());
  return Sha256Hex(canonical).substr(0, 32);
}

absl::StatusOr<AllowanceBoost> BoostFromGrant(const ledger::v1::GrantAllowanceBoostRequest& request,
                                              absl::string_view granted_by,
                                              const AllowancePolicy& policy, absl::Time now) {
  if (absl::Status s =
          ValidateIdempotencyKey(request.request_id(), "request_id", kMaxRequestIdLength);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidatePersonId(request.person_id(), "person_id"); !s.ok()) return s;
  if (absl::Status s = PointsIn(request.points(), 1, kMaxAmount, "points"); !s.ok()) return s;
  if (absl::StripAsciiWhitespace(request.reason()).empty()) {
    return absl::InvalidArgumentError("reason: is required");
  }
  if (request.reason().size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(absl::StrCat("reason: at most ", kMaxReasonBytes, " bytes"));
  }
  const absl::Time start =
      request.has_start_time() ? FromTimestamp(request.start_time()) : now;
  AllowanceBoost boost;
  boost.set_boost_id(BoostId(request.person_id(), request.request_id()));
  boost.set_person_id(request.person_id());
  boost.set_points(request.points());
  boost.set_recurring(request.recurring());
  boost.set_reason(request.reason());
  boost.set_granted_by(std::string(granted_by));
  SetTimestamp(boost.mutable_grant_time(), now);
  if (!request.recurring()) {
    if (request.has_end_time()) {
      return absl::InvalidArgumentError(
          "end_time: only for a recurring boost (a one-off boost adds to one period)");
    }
    absl::StatusOr<common::calendar::Period> period = AllowancePeriodAt(policy, start);
    if (!period.ok()) return period.status();
    if (period->end <= now) {
      return absl::InvalidArgumentError(absl::StrCat(
          "start_time: period ", period->key, " has ended; a boost adds to a current or future "
          "period"));
    }
    boost.set_period(period->key);
    SetTimestamp(boost.mutable_start_time(), period->start);
    SetTimestamp(boost.mutable_end_time(), period->end);
    return boost;
  }
  if (!request.has_end_time()) {
    return absl::InvalidArgumentError("end_time: is required for a recurring boost");
  }
  const absl::Time end = FromTimestamp(request.end_time());
  if (end <= start) return absl::InvalidArgumentError("end_time: must be after start_time");
  if (end <= now) return absl::InvalidArgumentError("end_time: must be in the future");
  if (end - start > kMaxBoostSpan) {
    return absl::InvalidArgumentError("end_time: a recurring boost spans at most 5 years");
  }
  SetTimestamp(boost.mutable_start_time(), start);
  SetTimestamp(boost.mutable_end_time(), end);
  return boost;
}

bool BoostCovers(const AllowanceBoost& boost, const common::calendar::Period& period) {
  if (boost.cancelled()) return false;
  if (!boost.recurring()) return boost.period() == period.key;
  return FromTimestamp(boost.start_time()) < period.end &&
         FromTimestamp(boost.end_time()) > period.start;
}

bool BoostEnded(const AllowanceBoost& boost, absl::Time now) {
  return FromTimestamp(boost.end_time()) <= now;
}

EffectiveAllowance ComputeAllowance(const AllowancePolicy& policy,
                                    const common::calendar::Period& period,
                                    const std::vector<AllowanceRule>& rules,
                                    const AllowanceProfile& profile,
                                    const std::vector<AllowanceBoost>& boosts) {
  EffectiveAllowance out;
  out.base_points = policy.points_per_period();
  auto add = [&out](const std::string& source, const std::string& id, int64_t points,
                    std::string description) {
    ledger::v1::AllowanceContribution& c = out.contributions.emplace_back();
    c.set_source(source);
    c.set_id(id);
    c.set_points(points);
    c.set_description(std::move(description));
  };
  std::vector<const AllowanceRule*> sorted;
  for (const AllowanceRule& rule : rules) sorted.push_back(&rule);
  std::sort(sorted.begin(), sorted.end(), [](const AllowanceRule* a, const AllowanceRule* b) {
    return a->rule_id() < b->rule_id();
  });
  for (const AllowanceRule* rule : sorted) {
    switch (rule->scope()) {
      case ledger::v1::ALLOWANCE_RULE_SCOPE_ROLE:
        if (std::find(profile.roles().begin(), profile.roles().end(), rule->role()) !=
            profile.roles().end()) {
          add("rule", rule->rule_id(), rule->extra_points(),
              absl::StrCat("role ", RoleName(rule->role())));
        }
        break;
      case ledger::v1::ALLOWANCE_RULE_SCOPE_TEAM:
        if (!profile.team_id().empty() && profile.team_id() == rule->team_id()) {
          add("rule", rule->rule_id(), rule->extra_points(),
              absl::StrCat("team ", rule->team_id()));
        }
        break;
      case ledger::v1::ALLOWANCE_RULE_SCOPE_MANAGER:
        if (profile.direct_reports() > 0) {
          add("rule", rule->rule_id(),
              rule->extra_points() + rule->points_per_direct_report() * profile.direct_reports(),
              absl::StrCat(profile.direct_reports(), " direct reports x ",
                           rule->points_per_direct_report(), " + ", rule->extra_points()));
        }
        break;
      default:
        break;
    }
  }
  for (const AllowanceBoost& boost : boosts) {
    if (!BoostCovers(boost, period)) continue;
    add("boost", boost.boost_id(), boost.points(),
        boost.recurring()
            ? absl::StrCat("recurring boost until ", DayText(FromTimestamp(boost.end_time())))
            : absl::StrCat("one-off boost for ", boost.period()));
  }
  int64_t total = out.base_points;
  for (const auto& c : out.contributions) total += c.points();
  out.points = std::min(total, kMaxBalance);
  return out;
}

}  // namespace ledger
