#include "services/ledger/ledger_service.h"

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ledger {
namespace {

using common::auth::Principal;
using common::grpc_util::Done;
using common::grpc_util::Into;


}  // namespace

common::grpc_util::UnaryOptions LedgerCallOptions(std::string service_name,
                                                  std::chrono::milliseconds timeout,
                                                  int in_flight) {
  common::grpc_util::UnaryOptions options;
  options.service_name = std::move(service_name);
  options.default_timeout = timeout;
  options.max_calls_in_flight = in_flight;
  return options;
}

absl::Status CheckPrincipalOrg(const Principal& principal) { return ValidateOrg(principal.org); }

LedgerServiceImpl::LedgerServiceImpl(common::auth::Guard guard, LedgerStore& store,
                                     LedgerServiceOptions options, Clock clock)
    : store_(store),
      clock_(std::move(clock)),
      calls_(guard, LedgerCallOptions("ledger", options.call_timeout, options.max_calls_in_flight),
             CheckPrincipalOrg),
      verify_calls_(guard,
                    LedgerCallOptions("ledger", options.verify_timeout,
                                      options.max_verify_in_flight),
                    CheckPrincipalOrg) {}

// ---- PostTransfers ------------------------------------------------------------

grpc::ServerUnaryReactor* LedgerServiceImpl::PostTransfers(
    grpc::CallbackServerContext* context, const ledger::v1::PostTransfersRequest* request,
    ledger::v1::PostTransfersResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return PostTransfersBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::PostTransfersBody(Call& call,
                                                  const ledger::v1::PostTransfersRequest& request,
                                                  ledger::v1::PostTransfersResponse& response) {
  if (absl::Status s = CanPost(call.principal()); !s.ok()) return s;
  if (absl::Status s = ValidatePostRequestShape(request.transfers_size()); !s.ok()) return s;

  // Results in request order; invalid unlinked transfers fail on their own.
  auto results = std::make_shared<std::vector<ledger::v1::TransferResult>>(request.transfers_size());
  std::vector<std::pair<int, Transfer>> valid;
  for (int i = 0; i < request.transfers_size(); ++i) {
    const Transfer& transfer = request.transfers(i);
    (*results)[i].set_transfer_id(transfer.transfer_id());
    const std::string field = absl::StrCat("transfers[", i, "]");
    absl::Status s = ValidatePostedTransfer(transfer, field);
    if (s.ok()) s = CanPostKind(call.principal(), transfer, field);
    if (!s.ok()) {
      if (request.linked()) return s;
      (*results)[i].set_status_code(static_cast<int>(s.code()));
      (*results)[i].set_error_message(std::string(s.message()));
      continue;
    }
    valid.emplace_back(i, transfer);
  }
  const bool linked = request.linked();
  auto posted = std::make_shared<std::vector<PostResult>>();
  if (!valid.empty()) {
    call.Then([this, &call, valid = std::move(valid), linked, posted](Done done) mutable {
      store_.Post(call.principal().org, std::move(valid), linked, clock_(), call.deadline(),
                  Into(posted.get(), std::move(done)));
    });
  }
  call.Then([results, posted, linked, &response]() -> absl::Status {
    for (PostResult& result : *posted) {
      if (linked && !result.status.ok()) return result.status;
      ledger::v1::TransferResult& out = (*results)[result.index];
      out.set_status_code(static_cast<int>(result.status.code()));
      out.set_error_message(std::string(result.status.message()));
      out.set_created(result.created);
      if (result.status.ok()) *out.mutable_transfer() = std::move(result.transfer);
    }
    for (ledger::v1::TransferResult& result : *results) {
      *response.add_results() = std::move(result);
    }
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

// ---- reads ----------------------------------------------------------------------

grpc::ServerUnaryReactor* LedgerServiceImpl::GetBalance(
    grpc::CallbackServerContext* context, const ledger::v1::GetBalanceRequest* request,
    ledger::v1::GetBalanceResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    const Principal& principal = call.principal();
    if (principal.is_screen_only()) {
      return absl::PermissionDeniedError("screens cannot read accounts");
    }
    if (absl::Status s = ValidateAccount(request->account(), "account"); !s.ok()) return s;
    if (absl::Status s = CanReadAccount(principal, request->account()); !s.ok()) return s;
    auto balance = std::make_shared<BalanceInfo>();
    call.Then([this, &call, request, balance](Done done) {
          store_.GetBalance(call.principal().org, request->account(), clock_(), call.deadline(),
                            Into(balance.get(), std::move(done)));
        })
        .Then([request, response, balance]() {
          *response->mutable_account() = request->account();
          response->set_balance(balance->balance);
          response->set_held(balance->held);
          response->set_available(balance->balance - balance->held);
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::ListTransfers(
    grpc::CallbackServerContext* context, const ledger::v1::ListTransfersRequest* request,
    ledger::v1::ListTransfersResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return ListTransfersBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::ListTransfersBody(Call& call,
                                                  const ledger::v1::ListTransfersRequest& request,
                                                  ledger::v1::ListTransfersResponse& response) {
  const Principal& principal = call.principal();
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read accounts");
  }
  if (absl::Status s = ValidateAccount(request.account(), "account"); !s.ok()) return s;
  if (absl::Status s = CanReadAccount(principal, request.account()); !s.ok()) return s;
  absl::StatusOr<int> page_size = NormalizePageSize(request.page_size());
  if (!page_size.ok()) return page_size.status();
  std::string key = AccountKey(request.account());
  int64_t before = 0;
  if (!request.page_token().empty()) {
    absl::StatusOr<int64_t> decoded = DecodePageToken(request.page_token(), key);
    if (!decoded.ok()) return decoded.status();
    before = *decoded;
  }
  auto page = std::make_shared<TransferPage>();
  call.Then([this, &call, key, before, size = *page_size, page](Done done) {
        store_.ListTransfers(call.principal().org, key, before, size, call.deadline(),
                             Into(page.get(), std::move(done)));
      })
      .Then([&response, key, page]() {
        for (Transfer& transfer : page->transfers) *response.add_transfers() = std::move(transfer);
        if (page->next_before > 0) {
          response.set_next_page_token(EncodePageToken(page->next_before, key));
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LedgerServiceImpl::GetAllowance(
    grpc::CallbackServerContext* context, const ledger::v1::GetAllowanceRequest* request,
    ledger::v1::GetAllowanceResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return GetAllowanceBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::GetAllowanceBody(Call& call,
                                                 const ledger::v1::GetAllowanceRequest& request,
                                                 ledger::v1::GetAllowanceResponse& response) {
  const Principal& principal = call.principal();
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read allowances");
  }
  std::string person = request.person_id().empty() && !principal.is_service()
                           ? principal.subject
                           : request.person_id();
  if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
  if (absl::Status s = CanReadPerson(principal, person); !s.ok()) return s;
  struct State {
    AllowanceInputs inputs;
    common::calendar::Period period;
    EffectiveAllowance effective;
    int64_t spent = 0;
  };
  auto state = std::make_shared<State>();
  const absl::Time now = clock_();
  call.Then([this, &call, state, person](Done done) {
        store_.ReadAllowanceInputs(call.principal().org, person, call.deadline(),
                                   Into(&state->inputs, std::move(done)));
      })
      .Then([state, now]() -> absl::Status {
        absl::StatusOr<common::calendar::Period> period =
            AllowancePeriodAt(state->inputs.policy, now);
        if (!period.ok()) return period.status();
        state->period = *std::move(period);
        state->effective = ComputeAllowance(state->inputs.policy, state->period,
                                            state->inputs.rules, state->inputs.profile,
                                            state->inputs.boosts);
        return absl::OkStatus();
      })
      .Then([this, &call, state, person](Done done) {
        store_.Spent(call.principal().org, person, state->period.key, call.deadline(),
                     Into(&state->spent, std::move(done)));
      })
      .Then([&response, state, person]() {
        response.set_person_id(person);
        *response.mutable_policy() = state->inputs.policy;
        response.mutable_policy()->set_points_per_period(state->effective.points);
        response.set_base_points(state->effective.base_points);
        for (auto& contribution : state->effective.contributions) {
          *response.add_contributions() = std::move(contribution);
        }
        response.set_period(state->period.key);
        SetTimestamp(response.mutable_period_start(), state->period.start);
        SetTimestamp(response.mutable_period_end(), state->period.end);
        response.set_spent_points(state->spent);
        int64_t remaining = state->effective.points - state->spent;
        response.set_remaining_points(remaining < 0 ? 0 : remaining);
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LedgerServiceImpl::SetAllowancePolicy(
    grpc::CallbackServerContext* context, const ledger::v1::SetAllowancePolicyRequest* request,
    ledger::v1::SetAllowancePolicyResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return SetAllowancePolicyBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::SetAllowancePolicyBody(
    Call& call, const ledger::v1::SetAllowancePolicyRequest& request,
    ledger::v1::SetAllowancePolicyResponse& response) {
  const Principal& principal = call.principal();
  if (absl::Status s = CanSetPolicy(principal); !s.ok()) return s;
  if (!request.has_policy()) return absl::InvalidArgumentError("policy: is required");
  absl::StatusOr<AllowancePolicy> policy = NormalizePolicy(request.policy());
  if (!policy.ok()) return policy.status();
  // The retention travels with the policy (kudos pushes both); a request
  // without it leaves the stored one as it is.
  auto retention = std::make_shared<std::optional<RetentionPolicy>>();
  if (request.has_retention()) {
    absl::StatusOr<RetentionPolicy> normalized = NormalizeRetention(request.retention());
    if (!normalized.ok()) return normalized.status();
    *retention = *std::move(normalized);
  }
  // An admin's change is audited here; the kudos service's mirrors an
  // UpdateOrgSettings that kudos audits itself.
  std::string audit_actor = IsPersonAdmin(principal) ? principal.subject : "";
  call.Then([this, &call, audit_actor, policy = *policy, retention](Done done) {
        store_.SetPolicy(call.principal().org, audit_actor, policy, *retention, call.deadline(),
                         std::move(done));
      })
      .Then([this, &call, retention](Done done) {
        if (retention->has_value()) return std::move(done)(absl::OkStatus());
        store_.GetRetention(
            call.principal().org, call.deadline(),
            [retention, done = std::move(done)](absl::StatusOr<RetentionPolicy> stored) mutable {
              if (!stored.ok()) return std::move(done)(stored.status());
              *retention = *std::move(stored);
              std::move(done)(absl::OkStatus());
            });
      })
      .Then([&response, policy = *policy, retention]() {
        *response.mutable_policy() = policy;
        *response.mutable_retention() = **retention;
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

// ---- redemptions ----------------------------------------------------------------

grpc::ServerUnaryReactor* LedgerServiceImpl::CreateRedemption(
    grpc::CallbackServerContext* context, const ledger::v1::CreateRedemptionRequest* request,
    ledger::v1::CreateRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    const Principal& principal = call.principal();
    if (principal.is_screen_only()) return absl::PermissionDeniedError("screens cannot redeem");
    if (absl::Status s = ValidateRedemptionRequest(*request); !s.ok()) return s;
    std::string person = request->person_id().empty() ? principal.subject : request->person_id();
    if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
    if (absl::Status s = CanRedeemFor(principal, person); !s.ok()) return s;
    // Redeeming for someone else is an admin action: audited.
    std::string audit_actor = person == principal.subject ? "" : principal.subject;
    call.Then([this, &call, request, response, person, audit_actor](Done done) {
      store_.CreateRedemption(call.principal().org, audit_actor, person, *request, clock_(),
                              call.deadline(),
                              Into(response->mutable_redemption(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::FulfillRedemption(
    grpc::CallbackServerContext* context, const ledger::v1::FulfillRedemptionRequest* request,
    ledger::v1::FulfillRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return FulfillRedemptionBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::FulfillRedemptionBody(
    Call& call, const ledger::v1::FulfillRedemptionRequest& request,
    ledger::v1::FulfillRedemptionResponse& response) {
  if (absl::Status s = RequireAdmin(call.principal(), "FulfillRedemption"); !s.ok()) return s;
  if (absl::Status s = ValidateIdempotencyKey(request.redemption_id(), "redemption_id", 128);
      !s.ok()) {
    return s;
  }
  // Rewards-catalog redemptions (RewardsService, issue 18) also reserve
  // stock: only RewardsService may end them, or the stock would never return.
  if (absl::StartsWith(request.redemption_id(), "rwd_")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redemption_id: '", request.redemption_id(),
        "' is a rewards-catalog redemption: fulfil, decline or cancel it with RewardsService"));
  }
  const absl::Time now = clock_();
  auto current = std::make_shared<ledger::v1::Redemption>();
  call.Then([this, &call, &request, now, current](Done done) {
        store_.GetRedemption(call.principal().org, request.redemption_id(), now, call.deadline(),
                             Into(current.get(), std::move(done)));
      })
      .Then([this, &call, &response, now, current](Done done) {
        store_.FulfillRedemption(call.principal().org, call.principal().subject, *current, now,
                                 call.deadline(),
                                 Into(response.mutable_redemption(), std::move(done)));
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LedgerServiceImpl::CancelRedemption(
    grpc::CallbackServerContext* context, const ledger::v1::CancelRedemptionRequest* request,
    ledger::v1::CancelRedemptionResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return CancelRedemptionBody(call, *request, *response);
  });
}

absl::Status LedgerServiceImpl::CancelRedemptionBody(
    Call& call, const ledger::v1::CancelRedemptionRequest& request,
    ledger::v1::CancelRedemptionResponse& response) {
  const Principal& principal = call.principal();
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot cancel redemptions");
  }
  if (absl::Status s = ValidateIdempotencyKey(request.redemption_id(), "redemption_id", 128);
      !s.ok()) {
    return s;
  }
  // Rewards-catalog redemptions (RewardsService, issue 18) also reserve
  // stock: only RewardsService may end them, or the stock would never return.
  if (absl::StartsWith(request.redemption_id(), "rwd_")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redemption_id: '", request.redemption_id(),
        "' is a rewards-catalog redemption: fulfil, decline or cancel it with RewardsService"));
  }
  const absl::Time now = clock_();
  auto current = std::make_shared<ledger::v1::Redemption>();
  call.Then([this, &call, &request, now, current](Done done) {
        const bool admin = IsPersonAdmin(call.principal());
        store_.GetRedemption(
            call.principal().org, request.redemption_id(), now, call.deadline(),
            [admin, current, done = std::move(done)](
                absl::StatusOr<ledger::v1::Redemption> found) mutable {
              // Do not tell a non-admin whether someone else's redemption exists.
              if (!found.ok() && !admin && absl::IsNotFound(found.status())) {
                return std::move(done)(absl::PermissionDeniedError(
                    "CancelRedemption: only an admin or the redemption's owner may cancel it"));
              }
              Into(current.get(), std::move(done))(std::move(found));
            });
      })
      .Then([&call, current]() {
        return CanCancelRedemption(call.principal(), current->person_id());
      })
      .Then([this, &call, &response, now, current](Done done) {
        // Cancelling someone else's redemption is an admin action: audited.
        const Principal& principal = call.principal();
        std::string audit_actor =
            current->person_id() == principal.subject ? "" : principal.subject;
        store_.CancelRedemption(principal.org, audit_actor, *current, now, call.deadline(),
                                Into(response.mutable_redemption(), std::move(done)));
      });
  return absl::OkStatus();
}

// ---- admin ------------------------------------------------------------------------

grpc::ServerUnaryReactor* LedgerServiceImpl::AdjustBalance(
    grpc::CallbackServerContext* context, const ledger::v1::AdjustBalanceRequest* request,
    ledger::v1::AdjustBalanceResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "AdjustBalance"); !s.ok()) return s;
    if (absl::Status s = ValidateAdjustRequest(*request); !s.ok()) return s;
    call.Then([this, &call, request, response](Done done) {
      store_.Adjust(call.principal().org, call.principal().subject, *request, clock_(),
                    call.deadline(), Into(response->mutable_transfer(), std::move(done)));
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::VerifyLedger(
    grpc::CallbackServerContext* context, const ledger::v1::VerifyLedgerRequest* /*request*/,
    ledger::v1::VerifyLedgerResponse* response) {
  return verify_calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    if (absl::Status s = RequireAdmin(call.principal(), "VerifyLedger"); !s.ok()) return s;
    call.Then([this, &call, response](Done done) {
      store_.Verify(call.principal().org, call.deadline(), Into(response, std::move(done)));
    });
    return absl::OkStatus();
  });
}

}  // namespace ledger
