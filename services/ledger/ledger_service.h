// The gRPC edge of the ledger: authenticate every call (the org comes from
// the token), check permissions and validate (ledger_rules.h), call the
// store, map absl::Status to grpc::Status. Sync API.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/ledger/ledger_store.h"

namespace ledger {

class LedgerServiceImpl final : public ledger::v1::LedgerService::Service {
 public:
  using Clock = std::function<absl::Time()>;
  LedgerServiceImpl(common::auth::Guard guard, LedgerStore& store,
                    Clock clock = [] { return absl::Now(); });

  grpc::Status PostTransfers(grpc::ServerContext* context,
                             const ledger::v1::PostTransfersRequest* request,
                             ledger::v1::PostTransfersResponse* response) override;
  grpc::Status GetBalance(grpc::ServerContext* context,
                          const ledger::v1::GetBalanceRequest* request,
                          ledger::v1::GetBalanceResponse* response) override;
  grpc::Status ListTransfers(grpc::ServerContext* context,
                             const ledger::v1::ListTransfersRequest* request,
                             ledger::v1::ListTransfersResponse* response) override;
  grpc::Status GetAllowance(grpc::ServerContext* context,
                            const ledger::v1::GetAllowanceRequest* request,
                            ledger::v1::GetAllowanceResponse* response) override;
  grpc::Status SetAllowancePolicy(grpc::ServerContext* context,
                                  const ledger::v1::SetAllowancePolicyRequest* request,
                                  ledger::v1::SetAllowancePolicyResponse* response) override;
  grpc::Status CreateRedemption(grpc::ServerContext* context,
                                const ledger::v1::CreateRedemptionRequest* request,
                                ledger::v1::CreateRedemptionResponse* response) override;
  grpc::Status FulfillRedemption(grpc::ServerContext* context,
                                 const ledger::v1::FulfillRedemptionRequest* request,
                                 ledger::v1::FulfillRedemptionResponse* response) override;
  grpc::Status CancelRedemption(grpc::ServerContext* context,
                                const ledger::v1::CancelRedemptionRequest* request,
                                ledger::v1::CancelRedemptionResponse* response) override;
  grpc::Status AdjustBalance(grpc::ServerContext* context,
                             const ledger::v1::AdjustBalanceRequest* request,
                             ledger::v1::AdjustBalanceResponse* response) override;
  grpc::Status VerifyLedger(grpc::ServerContext* context,
                            const ledger::v1::VerifyLedgerRequest* request,
                            ledger::v1::VerifyLedgerResponse* response) override;

 private:
  absl::StatusOr<common::auth::Principal> Authenticate(grpc::ServerContext& context) const;

  absl::Status DoPostTransfers(const common::auth::Principal& principal,
                               const ledger::v1::PostTransfersRequest& request,
                               ledger::v1::PostTransfersResponse& response);
  absl::Status DoGetBalance(const common::auth::Principal& principal,
                            const ledger::v1::GetBalanceRequest& request,
                            ledger::v1::GetBalanceResponse& response);
  absl::Status DoListTransfers(const common::auth::Principal& principal,
                               const ledger::v1::ListTransfersRequest& request,
                               ledger::v1::ListTransfersResponse& response);
  absl::Status DoGetAllowance(const common::auth::Principal& principal,
                              const ledger::v1::GetAllowanceRequest& request,
                              ledger::v1::GetAllowanceResponse& response);
  absl::Status DoSetAllowancePolicy(const common::auth::Principal& principal,
                                    const ledger::v1::SetAllowancePolicyRequest& request,
                                    ledger::v1::SetAllowancePolicyResponse& response);
  absl::Status DoCreateRedemption(const common::auth::Principal& principal,
                                  const ledger::v1::CreateRedemptionRequest& request,
                                  ledger::v1::CreateRedemptionResponse& response);
  absl::Status DoFulfillRedemption(const common::auth::Principal& principal,
                                   const ledger::v1::FulfillRedemptionRequest& request,
                                   ledger::v1::FulfillRedemptionResponse& response);
  absl::Status DoCancelRedemption(const common::auth::Principal& principal,
                                  const ledger::v1::CancelRedemptionRequest& request,
                                  ledger::v1::CancelRedemptionResponse& response);
  absl::Status DoAdjustBalance(const common::auth::Principal& principal,
                               const ledger::v1::AdjustBalanceRequest& request,
                               ledger::v1::AdjustBalanceResponse& response);
  absl::Status DoVerifyLedger(const common::auth::Principal& principal,
                              ledger::v1::VerifyLedgerResponse& response);

  common::auth::Guard guard_;  // authentication and rate limits
  LedgerStore& store_;
  Clock clock_;
};

}  // namespace ledger
