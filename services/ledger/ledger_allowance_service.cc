// LedgerService's allowance rules, profiles and boosts (issue 18 part 2):
// admins manage them (audited); the kudos service may mirror profiles.
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "services/ledger/ledger_service.h"

namespace ledger {
namespace {

using common::auth::Principal;
using common::grpc_util::Done;
using common::grpc_util::Into;

absl::Status CanSetProfile(const Principal& principal) {
  if (IsPersonAdmin(principal) || IsKudosService(principal)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "SetAllowanceProfile: only an admin or the kudos service may set a profile");
}

// Empty means the caller (a person); services name the person.
std::string PersonOrCaller(const Principal& principal, const std::string& person) {
  return person.empty() && !principal.is_service() ? principal.subject : person;
}

}  // namespace

grpc::ServerUnaryReactor* LedgerServiceImpl::SetAllowanceRule(
    grpc::CallbackServerContext* context, const ledger::v1::SetAllowanceRuleRequest* request,
    ledger::v1::SetAllowanceRuleResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "SetAllowanceRule"); !s.ok()) return s;
    if (!request->has_rule()) return absl::InvalidArgumentError("rule: is required");
    absl::StatusOr<AllowanceRule> rule = NormalizeRule(request->rule());
    if (!rule.ok()) return rule.status();
    *response->mutable_rule() = *rule;
    call.Then([this, &call, rule = *rule, response](Done done) {
      store_.SetAllowanceRule(
          call.principal().org, call.principal().subject, rule, call.deadline(),
          [response, done = std::move(done)](absl::StatusOr<bool> changed) mutable {
            if (changed.ok()) response->set_changed(*changed);
            std::move(done)(changed.status());
          });
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::DeleteAllowanceRule(
    grpc::CallbackServerContext* context, const ledger::v1::DeleteAllowanceRuleRequest* request,
    ledger::v1::DeleteAllowanceRuleResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "DeleteAllowanceRule"); !s.ok()) return s;
    if (request->rule_id().empty()) return absl::InvalidArgumentError("rule_id: is required");
    if (absl::Status s = common::auth::CheckId("rule_id", request->rule_id()); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.DeleteAllowanceRule(
          call.principal().org, call.principal().subject, request->rule_id(), call.deadline(),
          [response, done = std::move(done)](absl::StatusOr<bool> deleted) mutable {
            if (deleted.ok()) response->set_deleted(*deleted);
            std::move(done)(deleted.status());
          });
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::ListAllowanceRules(
    grpc::CallbackServerContext* context, const ledger::v1::ListAllowanceRulesRequest* /*request*/,
    ledger::v1::ListAllowanceRulesResponse* response) {
  return calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "ListAllowanceRules"); !s.ok()) return s;
    call.Then([this, &call, response](Done done) {
      store_.ListAllowanceRules(
          call.principal().org, call.deadline(),
          [response, done = std::move(done)](
              absl::StatusOr<std::vector<AllowanceRule>> rules) mutable {
            if (rules.ok()) {
              for (AllowanceRule& rule : *rules) *response->add_rules() = std::move(rule);
            }
            std::move(done)(rules.status());
          });
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::SetAllowanceProfile(
    grpc::CallbackServerContext* context, const ledger::v1::SetAllowanceProfileRequest* request,
    ledger::v1::SetAllowanceProfileResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = CanSetProfile(call.principal()); !s.ok()) return s;
    if (!request->has_profile()) return absl::InvalidArgumentError("profile: is required");
    absl::StatusOr<AllowanceProfile> profile = NormalizeProfile(request->profile());
    if (!profile.ok()) return profile.status();
    *response->mutable_profile() = *profile;
    // An admin's change is audited; the kudos service mirrors its directory.
    std::string actor = IsPersonAdmin(call.principal()) ? call.principal().subject : "";
    call.Then([this, &call, profile = *profile, actor](Done done) {
      store_.SetAllowanceProfile(call.principal().org, actor, profile, call.deadline(),
                                 std::move(done));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::GetAllowanceProfile(
    grpc::CallbackServerContext* context, const ledger::v1::GetAllowanceProfileRequest* request,
    ledger::v1::GetAllowanceProfileResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    std::string person = PersonOrCaller(call.principal(), request->person_id());
    if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
    if (absl::Status s = CanReadPerson(call.principal(), person); !s.ok()) return s;
    call.Then([this, &call, person, response](Done done) {
      store_.ReadAllowanceInputs(
          call.principal().org, person, call.deadline(),
          [response, done = std::move(done)](absl::StatusOr<AllowanceInputs> inputs) mutable {
            if (inputs.ok()) *response->mutable_profile() = std::move(inputs->profile);
            std::move(done)(inputs.status());
          });
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::GrantAllowanceBoost(
    grpc::CallbackServerContext* context, const ledger::v1::GrantAllowanceBoostRequest* request,
    ledger::v1::GrantAllowanceBoostResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "GrantAllowanceBoost"); !s.ok()) return s;
    const absl::Time now = clock_();
    auto policy = std::make_shared<AllowancePolicy>();
    auto boost = std::make_shared<AllowanceBoost>();
    // Checked against the stored policy (a one-off's period comes from it).
    call.Then([this, &call, policy](Done done) {
          store_.GetPolicy(call.principal().org, call.deadline(), Into(policy.get(), std::move(done)));
        })
        .Then([&call, request, policy, boost, now]() -> absl::Status {
          absl::StatusOr<AllowanceBoost> made =
              BoostFromGrant(*request, call.principal().subject, *policy, now);
          if (!made.ok()) return made.status();
          *boost = *std::move(made);
          return absl::OkStatus();
        })
        .Then([this, &call, request, response, boost, now](Done done) {
          store_.GrantBoost(
              call.principal().org, call.principal().subject, *boost, BoostFingerprint(*request),
              now, call.deadline(),
              [response, done = std::move(done)](
                  absl::StatusOr<std::pair<AllowanceBoost, bool>> granted) mutable {
                if (granted.ok()) {
                  *response->mutable_boost() = std::move(granted->first);
                  response->set_created(granted->second);
                }
                std::move(done)(granted.status());
              });
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::ListAllowanceBoosts(
    grpc::CallbackServerContext* context, const ledger::v1::ListAllowanceBoostsRequest* request,
    ledger::v1::ListAllowanceBoostsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    std::string person = PersonOrCaller(call.principal(), request->person_id());
    if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
    if (absl::Status s = CanReadPerson(call.principal(), person); !s.ok()) return s;
    const absl::Time now = clock_();
    call.Then([this, &call, person, response, now](Done done) {
      store_.ReadAllowanceInputs(
          call.principal().org, person, call.deadline(),
          [response, now, done = std::move(done)](absl::StatusOr<AllowanceInputs> inputs) mutable {
            if (inputs.ok()) {
              for (AllowanceBoost& boost : inputs->boosts) {
                if (!BoostEnded(boost, now)) *response->add_boosts() = std::move(boost);
              }
            }
            std::move(done)(inputs.status());
          });
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::CancelAllowanceBoost(
    grpc::CallbackServerContext* context, const ledger::v1::CancelAllowanceBoostRequest* request,
    ledger::v1::CancelAllowanceBoostResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "CancelAllowanceBoost"); !s.ok()) return s;
    if (absl::Status s = ValidatePersonId(request->person_id(), "person_id"); !s.ok()) return s;
    if (absl::Status s = ValidateIdempotencyKey(request->boost_id(), "boost_id", 64); !s.ok()) {
      return s;
    }
    call.Then([this, &call, request, response](Done done) {
      store_.CancelBoost(call.principal().org, call.principal().subject, request->person_id(),
                         request->boost_id(), call.deadline(),
                         Into(response->mutable_boost(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

}  // namespace ledger
