// The gRPC edge of the rewards catalog (issue 18), hosted by ledger_server
// on the callback API: every call goes through common::grpc_util::UnaryCalls
// (authenticate, the org id's shape, validate, the store's asynchronous
// steps, map the status, finish once). Rules: rewards_rules.h; Redis:
// rewards_store.h.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>

#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "common/grpc/unary.h"
#include "ledger/v1/rewards.grpc.pb.h"
#include "services/ledger/rewards_store.h"

namespace ledger {

struct RewardsServiceOptions {
  // Redis deadline of a call when the client's is later (or none).
  std::chrono::milliseconds call_timeout{2000};
  int max_calls_in_flight = 4096;
  // The liability report reads every earned account: its own, longer bound
  // and a small number at once.
  std::chrono::milliseconds report_timeout{30000};
  int max_reports_in_flight = 4;
};

class RewardsServiceImpl final : public ledger::v1::RewardsService::CallbackService {
 public:
  using Clock = std::function<absl::Time()>;
  RewardsServiceImpl(common::auth::Guard guard, RewardsStore& store,
                     RewardsServiceOptions options = {}, Clock clock = [] { return absl::Now(); });

#define KUDOS_REWARDS_RPC(Name)                                                         \
  grpc::ServerUnaryReactor* Name(grpc::CallbackServerContext* context,                  \
                                 const ledger::v1::Name##Request* request,              \
                                 ledger::v1::Name##Response* response) override
  KUDOS_REWARDS_RPC(CreateRewardItem);
  KUDOS_REWARDS_RPC(UpdateRewardItem);
  KUDOS_REWARDS_RPC(ArchiveRewardItem);
  KUDOS_REWARDS_RPC(GetRewardItem);
  KUDOS_REWARDS_RPC(ListRewardItems);
  KUDOS_REWARDS_RPC(GetRewardSettings);
  KUDOS_REWARDS_RPC(UpdateRewardSettings);
  KUDOS_REWARDS_RPC(RedeemRewardItem);
  KUDOS_REWARDS_RPC(RequestCustomReward);
  KUDOS_REWARDS_RPC(ApproveCustomReward);
  KUDOS_REWARDS_RPC(FulfillRewardRedemption);
  KUDOS_REWARDS_RPC(DeclineRewardRedemption);
  KUDOS_REWARDS_RPC(CancelRewardRedemption);
  KUDOS_REWARDS_RPC(GetRewardRedemption);
  KUDOS_REWARDS_RPC(ListRewardRedemptions);
  KUDOS_REWARDS_RPC(GetRewardLiability);
#undef KUDOS_REWARDS_RPC

 private:
  using Call = common::grpc_util::Call;
  absl::Status ListItemsBody(Call& call, const ledger::v1::ListRewardItemsRequest& request,
                             ledger::v1::ListRewardItemsResponse& response);
  absl::Status CancelBody(Call& call, const ledger::v1::CancelRewardRedemptionRequest& request,
                          ledger::v1::CancelRewardRedemptionResponse& response);
  absl::Status GetRedemptionBody(Call& call,
                                 const ledger::v1::GetRewardRedemptionRequest& request,
                                 ledger::v1::GetRewardRedemptionResponse& response);
  absl::Status ListRedemptionsBody(Call& call,
                                   const ledger::v1::ListRewardRedemptionsRequest& request,
                                   ledger::v1::ListRewardRedemptionsResponse& response);
  absl::Status LiabilityBody(Call& call, ledger::v1::GetRewardLiabilityResponse& response);

  RewardsStore& store_;
  Clock clock_;
  common::grpc_util::UnaryCalls calls_;    // every RPC but the report
  common::grpc_util::UnaryCalls reports_;  // GetRewardLiability
};

}  // namespace ledger
