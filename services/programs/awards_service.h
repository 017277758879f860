// programs.v1.AwardService over gRPC (sync handlers: authenticate, call
// AwardsBook / AwardPayments, map the status).
#pragma once

#include <functional>

#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "programs/v1/awards.grpc.pb.h"
#include "services/programs/awards_payments.h"
#include "services/programs/awards_store.h"

namespace programs {

class AwardServiceImpl final : public v1::AwardService::Service {
 public:
  AwardServiceImpl(common::auth::Guard guard, AwardsBook& book, AwardPayments& payments,
                   std::function<absl::Time()> clock = absl::Now)
      : guard_(std::move(guard)), book_(book), payments_(payments), clock_(std::move(clock)) {}

  grpc::Status CreateAward(grpc::ServerContext* context, const v1::CreateAwardRequest* request,
                           v1::CreateAwardResponse* response) override;
  grpc::Status GetAward(grpc::ServerContext* context, const v1::GetAwardRequest* request,
                        v1::GetAwardResponse* response) override;
  grpc::Status ListAwards(grpc::ServerContext* context, const v1::ListAwardsRequest* request,
                          v1::ListAwardsResponse* response) override;
  grpc::Status Nominate(grpc::ServerContext* context, const v1::NominateRequest* request,
                        v1::NominateResponse* response) override;
  grpc::Status ListNominations(grpc::ServerContext* context,
                               const v1::ListNominationsRequest* request,
                               v1::ListNominationsResponse* response) override;
  grpc::Status ApproveNomination(grpc::ServerContext* context,
                                 const v1::ApproveNominationRequest* request,
                                 v1::ApproveNominationResponse* response) override;
  grpc::Status DeclineNomination(grpc::ServerContext* context,
                                 const v1::DeclineNominationRequest* request,
                                 v1::DeclineNominationResponse* response) override;
  grpc::Status SelectWinners(grpc::ServerContext* context, const v1::SelectWinnersRequest* request,
                             v1::SelectWinnersResponse* response) override;

 private:
  template <typename Request>
  grpc::Status DecideBody(grpc::ServerContext* context, const Request& request, bool approve,
                          v1::Nomination* out);

  common::auth::Guard guard_;
  AwardsBook& book_;
  AwardPayments& payments_;
  std::function<absl::Time()> clock_;
};

}  // namespace programs
