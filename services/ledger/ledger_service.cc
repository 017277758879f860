#include "services/ledger/ledger_service.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"

namespace ledger {
namespace {

using common::auth::Principal;
using common::grpc_util::ToGrpcStatus;

// Runs `body` for an authenticated principal and maps its status.
template <typename Body>
grpc::Status Handle(const absl::StatusOr<Principal>& principal, Body body) {
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  return ToGrpcStatus(body(*principal));
}

}  // namespace

LedgerServiceImpl::LedgerServiceImpl(common::auth::Guard guard, LedgerStore& store, Clock clock)
    : guard_(std::move(guard)), store_(store), clock_(std::move(clock)) {}

absl::StatusOr<Principal> LedgerServiceImpl::Authenticate(grpc::ServerContext& context) const {
  absl::StatusOr<Principal> principal = guard_.Authenticate(context);
  if (!principal.ok()) return principal.status();
  if (absl::Status s = ValidateOrg(principal->org); !s.ok()) return s;
  return principal;
}

// ---- PostTransfers ------------------------------------------------------------

grpc::Status LedgerServiceImpl::PostTransfers(grpc::ServerContext* context,
                                              const ledger::v1::PostTransfersRequest* request,
                                              ledger::v1::PostTransfersResponse* response) {
  return Handle(Authenticate(*context), [&](const Principal& p) {
    return DoPostTransfers(p, *request, *response);
  });
}

absl::Status LedgerServiceImpl::DoPostTransfers(const Principal& principal,
                                                const ledger::v1::PostTransfersRequest& request,
                                                ledger::v1::PostTransfersResponse& response) {
  if (absl::Status s = CanPost(principal); !s.ok()) return s;
  if (absl::Status s = ValidatePostRequestShape(request.transfers_size()); !s.ok()) return s;

  // Results in request order; invalid unlinked transfers fail on their own.
  std::vector<ledger::v1::TransferResult> results(request.transfers_size());
  std::vector<std::pair<int, Transfer>> valid;
  for (int i = 0; i < request.transfers_size(); ++i) {
    const Transfer& transfer = request.transfers(i);
    results[i].set_transfer_id(transfer.transfer_id());
    absl::Status s = ValidatePostedTransfer(transfer, absl::StrCat("transfers[", i, "]"));
    if (!s.ok()) {
      if (request.linked()) return s;
      results[i].set_status_code(static_cast<int>(s.code()));
      results[i].set_error_message(std::string(s.message()));
      continue;
    }
    valid.emplace_back(i, transfer);
  }
  if (!valid.empty()) {
    absl::StatusOr<std::vector<PostResult>> posted =
        store_.Post(principal.org, valid, request.linked(), clock_());
    if (!posted.ok()) return posted.status();
    for (PostResult& result : *posted) {
      if (request.linked() && !result.status.ok()) return result.status;
      ledger::v1::TransferResult& out = results[result.index];
      out.set_status_code(static_cast<int>(result.status.code()));
      out.set_error_message(std::string(result.status.message()));
      out.set_created(result.created);
      if (result.status.ok()) *out.mutable_transfer() = std::move(result.transfer);
    }
  }
  for (ledger::v1::TransferResult& result : results) {
    *response.add_results() = std::move(result);
  }
  return absl::OkStatus();
}

// ---- reads ----------------------------------------------------------------------

grpc::Status LedgerServiceImpl::GetBalance(grpc::ServerContext* context,
                                           const ledger::v1::GetBalanceRequest* request,
                                           ledger::v1::GetBalanceResponse* response) {
  return Handle(Authenticate(*context),
                [&](const Principal& p) { return DoGetBalance(p, *request, *response); });
}

absl::Status LedgerServiceImpl::DoGetBalance(const Principal& principal,
                                             const ledger::v1::GetBalanceRequest& request,
                                             ledger::v1::GetBalanceResponse& response) {
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read accounts");
  }
  if (absl::Status s = ValidateAccount(request.account(), "account"); !s.ok()) return s;
  if (absl::Status s = CanReadAccount(principal, request.account()); !s.ok()) return s;
  absl::StatusOr<BalanceInfo> balance =
      store_.GetBalance(principal.org, request.account(), clock_());
  if (!balance.ok()) return balance.status();
  *response.mutable_account() = request.account();
  response.set_balance(balance->balance);
  response.set_held(balance->held);
  response.set_available(balance->balance - balance->held);
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::ListTransfers(grpc::ServerContext* context,
                                              const ledger::v1::ListTransfersRequest* request,
                                              ledger::v1::ListTransfersResponse* response) {
  return Handle(Authenticate(*context),
                [&](const Principal& p) { return DoListTransfers(p, *request, *response); });
}

absl::Status LedgerServiceImpl::DoListTransfers(const Principal& principal,
                                                const ledger::v1::ListTransfersRequest& request,
                                                ledger::v1::ListTransfersResponse& response) {
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
  absl::StatusOr<TransferPage> page = store_.ListTransfers(principal.org, key, before, *page_size);
  if (!page.ok()) return page.status();
  for (Transfer& transfer : page->transfers) *response.add_transfers() = std::move(transfer);
  if (page->next_before > 0) {
    response.set_next_page_token(EncodePageToken(page->next_before, key));
  }
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::GetAllowance(grpc::ServerContext* context,
                                             const ledger::v1::GetAllowanceRequest* request,
                                             ledger::v1::GetAllowanceResponse* response) {
  return Handle(Authenticate(*context),
                [&](const Principal& p) { return DoGetAllowance(p, *request, *response); });
}

absl::Status LedgerServiceImpl::DoGetAllowance(const Principal& principal,
                                               const ledger::v1::GetAllowanceRequest& request,
                                               ledger::v1::GetAllowanceResponse& response) {
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot read allowances");
  }
  std::string person = request.person_id().empty() && !principal.is_service()
                           ? principal.subject
                           : request.person_id();
  if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
  if (absl::Status s = CanReadPerson(principal, person); !s.ok()) return s;
  absl::StatusOr<AllowancePolicy> policy = store_.GetPolicy(principal.org);
  if (!policy.ok()) return policy.status();
  absl::StatusOr<common::calendar::Period> period = AllowancePeriodAt(*policy, clock_());
  if (!period.ok()) return period.status();
  absl::StatusOr<int64_t> spent = store_.Spent(principal.org, person, period->key);
  if (!spent.ok()) return spent.status();
  response.set_person_id(person);
  *response.mutable_policy() = *policy;
  response.set_period(period->key);
  SetTimestamp(response.mutable_period_start(), period->start);
  SetTimestamp(response.mutable_period_end(), period->end);
  response.set_spent_points(*spent);
  int64_t remaining = policy->points_per_period() - *spent;
  response.set_remaining_points(remaining < 0 ? 0 : remaining);
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::SetAllowancePolicy(
    grpc::ServerContext* context, const ledger::v1::SetAllowancePolicyRequest* request,
    ledger::v1::SetAllowancePolicyResponse* response) {
  return Handle(Authenticate(*context), [&](const Principal& p) {
    return DoSetAllowancePolicy(p, *request, *response);
  });
}

absl::Status LedgerServiceImpl::DoSetAllowancePolicy(
    const Principal& principal, const ledger::v1::SetAllowancePolicyRequest& request,
    ledger::v1::SetAllowancePolicyResponse& response) {
  if (absl::Status s = CanSetPolicy(principal); !s.ok()) return s;
  if (!request.has_policy()) return absl::InvalidArgumentError("policy: is required");
  absl::StatusOr<AllowancePolicy> policy = NormalizePolicy(request.policy());
  if (!policy.ok()) return policy.status();
  // The retention travels with the policy (kudos pushes both); a request
  // without it leaves the stored one as it is.
  std::optional<RetentionPolicy> retention;
  if (request.has_retention()) {
    absl::StatusOr<RetentionPolicy> normalized = NormalizeRetention(request.retention());
    if (!normalized.ok()) return normalized.status();
    retention = *std::move(normalized);
  }
  // An admin's change is audited here; the kudos service's mirrors an
  // UpdateOrgSettings that kudos audits itself.
  std::string audit_actor = IsPersonAdmin(principal) ? principal.subject : "";
  if (absl::Status s = store_.SetPolicy(principal.org, audit_actor, *policy, retention); !s.ok()) {
    return s;
  }
  *response.mutable_policy() = *policy;
  if (!retention.has_value()) {
    absl::StatusOr<RetentionPolicy> stored = store_.GetRetention(principal.org);
    if (!stored.ok()) return stored.status();
    retention = *std::move(stored);
  }
  *response.mutable_retention() = *retention;
  return absl::OkStatus();
}

// ---- redemptions ----------------------------------------------------------------

grpc::Status LedgerServiceImpl::CreateRedemption(
    grpc::ServerContext* context, const ledger::v1::CreateRedemptionRequest* request,
    ledger::v1::CreateRedemptionResponse* response) {
  return Handle(Authenticate(*context), [&](const Principal& p) {
    return DoCreateRedemption(p, *request, *response);
  });
}

absl::Status LedgerServiceImpl::DoCreateRedemption(
    const Principal& principal, const ledger::v1::CreateRedemptionRequest& request,
    ledger::v1::CreateRedemptionResponse& response) {
  if (principal.is_screen_only()) return absl::PermissionDeniedError("screens cannot redeem");
  if (absl::Status s = ValidateRedemptionRequest(request); !s.ok()) return s;
  std::string person = request.person_id().empty() ? principal.subject : request.person_id();
  if (absl::Status s = ValidatePersonId(person, "person_id"); !s.ok()) return s;
  if (absl::Status s = CanRedeemFor(principal, person); !s.ok()) return s;
  // Redeeming for someone else is an admin action: audited.
  std::string audit_actor = person == principal.subject ? "" : principal.subject;
  absl::StatusOr<ledger::v1::Redemption> redemption =
      store_.CreateRedemption(principal.org, audit_actor, person, request, clock_());
  if (!redemption.ok()) return redemption.status();
  *response.mutable_redemption() = *std::move(redemption);
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::FulfillRedemption(
    grpc::ServerContext* context, const ledger::v1::FulfillRedemptionRequest* request,
    ledger::v1::FulfillRedemptionResponse* response) {
  return Handle(Authenticate(*context), [&](const Principal& p) {
    return DoFulfillRedemption(p, *request, *response);
  });
}

absl::Status LedgerServiceImpl::DoFulfillRedemption(
    const Principal& principal, const ledger::v1::FulfillRedemptionRequest& request,
    ledger::v1::FulfillRedemptionResponse& response) {
  if (absl::Status s = RequireAdmin(principal, "FulfillRedemption"); !s.ok()) return s;
  if (absl::Status s = ValidateIdempotencyKey(request.redemption_id(), "redemption_id", 128);
      !s.ok()) {
    return s;
  }
  absl::Time now = clock_();
  absl::StatusOr<ledger::v1::Redemption> current =
      store_.GetRedemption(principal.org, request.redemption_id(), now);
  if (!current.ok()) return current.status();
  absl::StatusOr<ledger::v1::Redemption> fulfilled =
      store_.FulfillRedemption(principal.org, principal.subject, *current, now);
  if (!fulfilled.ok()) return fulfilled.status();
  *response.mutable_redemption() = *std::move(fulfilled);
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::CancelRedemption(
    grpc::ServerContext* context, const ledger::v1::CancelRedemptionRequest* request,
    ledger::v1::CancelRedemptionResponse* response) {
  return Handle(Authenticate(*context), [&](const Principal& p) {
    return DoCancelRedemption(p, *request, *response);
  });
}

absl::Status LedgerServiceImpl::DoCancelRedemption(
    const Principal& principal, const ledger::v1::CancelRedemptionRequest& request,
    ledger::v1::CancelRedemptionResponse& response) {
  if (principal.is_screen_only()) {
    return absl::PermissionDeniedError("screens cannot cancel redemptions");
  }
  if (absl::Status s = ValidateIdempotencyKey(request.redemption_id(), "redemption_id", 128);
      !s.ok()) {
    return s;
  }
  absl::Time now = clock_();
  absl::StatusOr<ledger::v1::Redemption> current =
      store_.GetRedemption(principal.org, request.redemption_id(), now);
  if (!current.ok()) {
    // Do not tell a non-admin whether someone else's redemption exists.
    if (!IsPersonAdmin(principal) && absl::IsNotFound(current.status())) {
      return absl::PermissionDeniedError(
          "CancelRedemption: only an admin or the redemption's owner may cancel it");
    }
    return current.status();
  }
  if (absl::Status s = CanCancelRedemption(principal, current->person_id()); !s.ok()) return s;
  // Cancelling someone else's redemption is an admin action: audited.
  std::string audit_actor =
      current->person_id() == principal.subject ? "" : principal.subject;
  absl::StatusOr<ledger::v1::Redemption> cancelled =
      store_.CancelRedemption(principal.org, audit_actor, *current, now);
  if (!cancelled.ok()) return cancelled.status();
  *response.mutable_redemption() = *std::move(cancelled);
  return absl::OkStatus();
}

// ---- admin ------------------------------------------------------------------------

grpc::Status LedgerServiceImpl::AdjustBalance(grpc::ServerContext* context,
                                              const ledger::v1::AdjustBalanceRequest* request,
                                              ledger::v1::AdjustBalanceResponse* response) {
  return Handle(Authenticate(*context),
                [&](const Principal& p) { return DoAdjustBalance(p, *request, *response); });
}

absl::Status LedgerServiceImpl::DoAdjustBalance(const Principal& principal,
                                                const ledger::v1::AdjustBalanceRequest& request,
                                                ledger::v1::AdjustBalanceResponse& response) {
  if (absl::Status s = RequireAdmin(principal, "AdjustBalance"); !s.ok()) return s;
  if (absl::Status s = ValidateAdjustRequest(request); !s.ok()) return s;
  absl::StatusOr<Transfer> transfer =
      store_.Adjust(principal.org, principal.subject, request, clock_());
  if (!transfer.ok()) return transfer.status();
  *response.mutable_transfer() = *std::move(transfer);
  return absl::OkStatus();
}

grpc::Status LedgerServiceImpl::VerifyLedger(grpc::ServerContext* context,
                                             const ledger::v1::VerifyLedgerRequest* /*request*/,
                                             ledger::v1::VerifyLedgerResponse* response) {
  return Handle(Authenticate(*context),
                [&](const Principal& p) { return DoVerifyLedger(p, *response); });
}

absl::Status LedgerServiceImpl::DoVerifyLedger(const Principal& principal,
                                               ledger::v1::VerifyLedgerResponse& response) {
  if (absl::Status s = RequireAdmin(principal, "VerifyLedger"); !s.ok()) return s;
  absl::StatusOr<ledger::v1::VerifyLedgerResponse> result = store_.Verify(principal.org);
  if (!result.ok()) return result.status();
  response = *std::move(result);
  return absl::OkStatus();
}

}  // namespace ledger
