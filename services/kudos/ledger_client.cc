#include "services/kudos/ledger_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/check/check.h"
#include "common/grpc/status.h"

namespace kudos {
namespace {

// The other half of the ledger's own double-entry check: an accepted linked
// post applied exactly the transfers the kudos asked for, no more, no fewer,
// for the same amounts. Anything else would commit a kudos whose points differ
// from what the ledger holds.
void CheckLinkedPostAnswer(const ledger::v1::PostTransfersRequest& request,
                           const ledger::v1::PostTransfersResponse& response) {
  if (!request.linked()) return;
  KUDOS_CHECK(response.results_size() == request.transfers_size(),
              "an accepted linked post answers for every transfer");
  for (int i = 0; i < request.transfers_size(); ++i) {
    const ledger::v1::TransferResult& result = response.results(i);
    const ledger::v1::Transfer& asked = request.transfers(i);
    KUDOS_CHECK(result.status_code() == 0 && result.transfer_id() == asked.transfer_id(),
                "an accepted linked post applied every transfer, in request order");
    KUDOS_CHECK(result.transfer().amount() == asked.amount() &&
                    result.transfer().credit_account().person_id() ==
                        asked.credit_account().person_id() &&
                    result.transfer().debit_account().person_id() ==
                        asked.debit_account().person_id(),
                "the ledger moved the amount between the accounts the kudos named");
  }
}

class GrpcLedgerClient : public LedgerClient {
 public:
  explicit GrpcLedgerClient(const GrpcLedgerClientOptions& options)
      : options_(options),
        stub_(ledger::v1::LedgerService::NewStub(
            grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials()))) {}

  absl::Status PostTransfers(const std::string& org,
                             const ledger::v1::PostTransfersRequest& request) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::PostTransfersResponse response;
    grpc::Status status = stub_->PostTransfers(&context, request, &response);
    if (status.ok()) CheckLinkedPostAnswer(request, response);
    return common::grpc_util::FromGrpcStatus(status);
  }

  void PostTransfersAsync(const std::string& org, const ledger::v1::PostTransfersRequest& request,
                          SteadyDeadline deadline, LedgerDone done) override {
    struct Call {
      grpc::ClientContext context;
      ledger::v1::PostTransfersRequest request;
      ledger::v1::PostTransfersResponse response;
      LedgerDone done;
    };
    auto call = std::make_shared<Call>();
    if (absl::Status status = Prepare(call->context, org, deadline); !status.ok()) {
      return std::move(done)(status);
    }
    call->request = request;
    call->done = std::move(done);
    Call* raw = call.get();
    stub_->async()->PostTransfers(&raw->context, &raw->request, &raw->response,
                                  [call](grpc::Status status) {
                                    if (status.ok()) CheckLinkedPostAnswer(call->request, call->response);
                                    std::move(call->done)(common::grpc_util::FromGrpcStatus(status));
                                  });
  }

  void SetAllowancePolicyAsync(const std::string& org, const common::v1::AllowancePolicy& policy,
                               const common::v1::RetentionPolicy& retention,
                               SteadyDeadline deadline, LedgerDone done) override {
    struct Call {
      grpc::ClientContext context;
      ledger::v1::SetAllowancePolicyRequest request;
      ledger::v1::SetAllowancePolicyResponse response;
      LedgerDone done;
    };
    auto call = std::make_shared<Call>();
    if (absl::Status status = Prepare(call->context, org, deadline); !status.ok()) {
      return std::move(done)(status);
    }
    *call->request.mutable_policy() = policy;
    *call->request.mutable_retention() = retention;
    call->done = std::move(done);
    Call* raw = call.get();
    stub_->async()->SetAllowancePolicy(&raw->context, &raw->request, &raw->response,
                                       [call](grpc::Status status) {
                                         std::move(call->done)(common::grpc_util::FromGrpcStatus(status));
                                       });
  }

  absl::Status SetAllowancePolicy(const std::string& org,
                                  const common::v1::AllowancePolicy& policy,
                                  const common::v1::RetentionPolicy& retention) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::SetAllowancePolicyRequest request;
    *request.mutable_policy() = policy;
    *request.mutable_retention() = retention;
    ledger::v1::SetAllowancePolicyResponse response;
    return common::grpc_util::FromGrpcStatus(
        stub_->SetAllowancePolicy(&context, request, &response));
  }

  absl::StatusOr<ledger::v1::AllowanceProfile> GetAllowanceProfile(
      const std::string& org, const std::string& person_id) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::GetAllowanceProfileRequest request;
    request.set_person_id(person_id);
    ledger::v1::GetAllowanceProfileResponse response;
    grpc::Status status = stub_->GetAllowanceProfile(&context, request, &response);
    if (!status.ok()) return common::grpc_util::FromGrpcStatus(status);
    return response.profile();
  }

  absl::Status SetAllowanceProfile(const std::string& org,
                                   const ledger::v1::AllowanceProfile& profile) override {
    grpc::ClientContext context;
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    ledger::v1::SetAllowanceProfileRequest request;
    *request.mutable_profile() = profile;
    ledger::v1::SetAllowanceProfileResponse response;
    return common::grpc_util::FromGrpcStatus(
        stub_->SetAllowanceProfile(&context, request, &response));
  }

 private:
  absl::Status Prepare(grpc::ClientContext& context, const std::string& org) {
    absl::StatusOr<std::string> token = ServiceToken(org);
    if (!token.ok()) return token.status();
    context.AddMetadata("authorization", "Bearer " + *token);
    common::grpc_util::SetDeadline(context, std::chrono::milliseconds(options_.timeout_ms));
    return absl::OkStatus();
  }

  // The same, with the deadline min(`deadline`, now + the client's timeout):
  // the RPC's caller bounds the ledger call.
  absl::Status Prepare(grpc::ClientContext& context, const std::string& org,
                       SteadyDeadline deadline) {
    if (absl::Status status = Prepare(context, org); !status.ok()) return status;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left < std::chrono::milliseconds(options_.timeout_ms)) {
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::duration_cast<std::chrono::system_clock::duration>(left));
    }
    return absl::OkStatus();
  }

  // One service token per org is reused until a minute before it expires,
  // so a call does not pay for signing (and the ledger verifies each once).
  absl::StatusOr<std::string> ServiceToken(const std::string& org) {
    absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&tokens_mu_);
      auto it = tokens_.find(org);
      if (it != tokens_.end() &&
          now - it->second.second < common::auth::kServiceTokenTtl - absl::Minutes(1)) {
        return it->second.first;
      }
    }
    absl::StatusOr<std::string> token =
        common::auth::MintServiceToken("kudos", org, options_.service_secret, now);
    if (!token.ok()) return token.status();
    absl::MutexLock lock(&tokens_mu_);
    if (tokens_.size() > 10000) tokens_.clear();  // bounded; minted again on demand
    tokens_[org] = {*token, now};
    return token;
  }

  absl::Mutex tokens_mu_;
  absl::flat_hash_map<std::string, std::pair<std::string, absl::Time>> tokens_
      ABSL_GUARDED_BY(tokens_mu_);
  GrpcLedgerClientOptions options_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> stub_;
};

}  // namespace

std::unique_ptr<LedgerClient> MakeGrpcLedgerClient(const GrpcLedgerClientOptions& options) {
  return std::make_unique<GrpcLedgerClient>(options);
}

void LedgerClient::PostTransfersAsync(const std::string& org,
                                      const ledger::v1::PostTransfersRequest& request,
                                      SteadyDeadline, LedgerDone done) {
  std::move(done)(PostTransfers(org, request));
}

void LedgerClient::SetAllowancePolicyAsync(const std::string& org,
                                           const common::v1::AllowancePolicy& policy,
                                           const common::v1::RetentionPolicy& retention,
                                           SteadyDeadline, LedgerDone done) {
  std::move(done)(SetAllowancePolicy(org, policy, retention));
}

absl::StatusOr<ledger::v1::AllowanceProfile> LedgerClient::GetAllowanceProfile(
    const std::string& /*org*/, const std::string& /*person_id*/) {
  return absl::UnimplementedError("this ledger client does not read allowance profiles");
}

absl::Status LedgerClient::SetAllowanceProfile(const std::string& /*org*/,
                                               const ledger::v1::AllowanceProfile& /*profile*/) {
  return absl::UnimplementedError("this ledger client does not set allowance profiles");
}

bool IsDefinitiveRefusal(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      // Only the post script's allowance refusal ("transfers[i]: …") is an
      // answer about the transfers. Overload refusals (the ledger's bound on
      // calls in flight, its Redis client's queue, gRPC's quota) come before
      // the script's idempotency check, so the transfers of an earlier
      // attempt may already be applied: the outcome is unknown.
      return absl::StartsWith(status.message(), "transfers[");
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;  // UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL...: outcome unknown
  }
}

}  // namespace kudos
