// The gRPC edge of the ledger on the callback API: every call goes through
// common::grpc_util::UnaryCalls (authenticate, the org's shape, validate,
// then the store's asynchronous steps, map status, finish once); no handler
// blocks a thread on Redis. Permissions and validation: ledger_rules.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "common/grpc/unary.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/ledger/ledger_store.h"

namespace ledger {

// How both services of the ledger binary (LedgerService, RewardsService)
// serve their calls: `service_name` in messages, the default deadline and
// the in-flight bound.
common::grpc_util::UnaryOptions LedgerCallOptions(std::string service_name,
                                                  std::chrono::milliseconds timeout,
                                                  int in_flight);
// The org comes from the token; its shape is checked before any key is built.
absl::Status CheckPrincipalOrg(const common::auth::Principal& principal);

struct LedgerServiceOptions {
  // Redis deadline of a call when the client's is later (or none).
  std::chrono::milliseconds call_timeout{2000};
  // Calls served at once; past it RESOURCE_EXHAUSTED.
  int max_calls_in_flight = 4096;
  // VerifyLedger reads the whole history: its own, longer bound and a
  // small number at once.
  std::chrono::milliseconds verify_timeout{60000};
  int max_verify_in_flight = 4;
};

class LedgerServiceImpl final : public ledger::v1::LedgerService::CallbackService {
 public:
  using Clock = std::function<absl::Time()>;
  LedgerServiceImpl(common::auth::Guard guard, LedgerStore& store,
                    LedgerServiceOptions options = {}, Clock clock = [] { return absl::Now(); });

  grpc::ServerUnaryReactor* PostTransfers(grpc::CallbackServerContext* context,
                                          const ledger::v1::PostTransfersRequest* request,
                                          ledger::v1::PostTransfersResponse* response) override;
  grpc::ServerUnaryReactor* GetBalance(grpc::CallbackServerContext* context,
                                       const ledger::v1::GetBalanceRequest* request,
                                       ledger::v1::GetBalanceResponse* response) override;
  grpc::ServerUnaryReactor* ListTransfers(grpc::CallbackServerContext* context,
                                          const ledger::v1::ListTransfersRequest* request,
                                          ledger::v1::ListTransfersResponse* response) override;
  grpc::ServerUnaryReactor* GetAllowance(grpc::CallbackServerContext* context,
                                         const ledger::v1::GetAllowanceRequest* request,
                                         ledger::v1::GetAllowanceResponse* response) override;
  grpc::ServerUnaryReactor* SetAllowancePolicy(
      grpc::CallbackServerContext* context, const ledger::v1::SetAllowancePolicyRequest* request,
      ledger::v1::SetAllowancePolicyResponse* response) override;
  grpc::ServerUnaryReactor* CreateRedemption(
      grpc::CallbackServerContext* context, const ledger::v1::CreateRedemptionRequest* request,
      ledger::v1::CreateRedemptionResponse* response) override;
  grpc::ServerUnaryReactor* FulfillRedemption(
      grpc::CallbackServerContext* context, const ledger::v1::FulfillRedemptionRequest* request,
      ledger::v1::FulfillRedemptionResponse* response) override;
  grpc::ServerUnaryReactor* CancelRedemption(
      grpc::CallbackServerContext* context, const ledger::v1::CancelRedemptionRequest* request,
      ledger::v1::CancelRedemptionResponse* response) override;
  grpc::ServerUnaryReactor* AdjustBalance(grpc::CallbackServerContext* context,
                                          const ledger::v1::AdjustBalanceRequest* request,
                                          ledger::v1::AdjustBalanceResponse* response) override;
  grpc::ServerUnaryReactor* VerifyLedger(grpc::CallbackServerContext* context,
                                         const ledger::v1::VerifyLedgerRequest* request,
                                         ledger::v1::VerifyLedgerResponse* response) override;

  // Allowance rules, profiles and boosts (issue 18 part 2): ledger_allowance_service.cc.
  grpc::ServerUnaryReactor* SetAllowanceRule(
      grpc::CallbackServerContext* context, const ledger::v1::SetAllowanceRuleRequest* request,
      ledger::v1::SetAllowanceRuleResponse* response) override;
  grpc::ServerUnaryReactor* DeleteAllowanceRule(
      grpc::CallbackServerContext* context, const ledger::v1::DeleteAllowanceRuleRequest* request,
      ledger::v1::DeleteAllowanceRuleResponse* response) override;
  grpc::ServerUnaryReactor* ListAllowanceRules(
      grpc::CallbackServerContext* context, const ledger::v1::ListAllowanceRulesRequest* request,
      ledger::v1::ListAllowanceRulesResponse* response) override;
  grpc::ServerUnaryReactor* SetAllowanceProfile(
      grpc::CallbackServerContext* context, const ledger::v1::SetAllowanceProfileRequest* request,
      ledger::v1::SetAllowanceProfileResponse* response) override;
  grpc::ServerUnaryReactor* GetAllowanceProfile(
      grpc::CallbackServerContext* context, const ledger::v1::GetAllowanceProfileRequest* request,
      ledger::v1::GetAllowanceProfileResponse* response) override;
  grpc::ServerUnaryReactor* GrantAllowanceBoost(
      grpc::CallbackServerContext* context, const ledger::v1::GrantAllowanceBoostRequest* request,
      ledger::v1::GrantAllowanceBoostResponse* response) override;
  grpc::ServerUnaryReactor* ListAllowanceBoosts(
      grpc::CallbackServerContext* context, const ledger::v1::ListAllowanceBoostsRequest* request,
      ledger::v1::ListAllowanceBoostsResponse* response) override;
  grpc::ServerUnaryReactor* CancelAllowanceBoost(
      grpc::CallbackServerContext* context,
      const ledger::v1::CancelAllowanceBoostRequest* request,
      ledger::v1::CancelAllowanceBoostResponse* response) override;

  const common::grpc_util::UnaryCalls& calls() const { return calls_; }

 private:
  using Call = common::grpc_util::Call;
  absl::Status PostTransfersBody(Call& call, const ledger::v1::PostTransfersRequest& request,
                                 ledger::v1::PostTransfersResponse& response);
  absl::Status ListTransfersBody(Call& call, const ledger::v1::ListTransfersRequest& request,
                                 ledger::v1::ListTransfersResponse& response);
  absl::Status GetAllowanceBody(Call& call, const ledger::v1::GetAllowanceRequest& request,
                                ledger::v1::GetAllowanceResponse& response);
  absl::Status SetAllowancePolicyBody(Call& call,
                                      const ledger::v1::SetAllowancePolicyRequest& request,
                                      ledger::v1::SetAllowancePolicyResponse& response);
  absl::Status FulfillRedemptionBody(Call& call,
                                     const ledger::v1::FulfillRedemptionRequest& request,
                                     ledger::v1::FulfillRedemptionResponse& response);
  absl::Status CancelRedemptionBody(Call& call, const ledger::v1::CancelRedemptionRequest& request,
                                    ledger::v1::CancelRedemptionResponse& response);

  LedgerStore& store_;
  Clock clock_;
  common::grpc_util::UnaryCalls calls_;         // every RPC but VerifyLedger
  common::grpc_util::UnaryCalls verify_calls_;  // VerifyLedger
};

}  // namespace ledger
