// programs.v1.BudgetService over gRPC (sync handlers: authenticate, call
// AwardsBook, map the status).
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "programs/v1/awards.grpc.pb.h"
#include "services/programs/awards_store.h"

namespace programs {

// The org's IANA zone (kudos OrgSettings.time_zone), for budgets created
// without one.
using OrgZoneLookup = std::function<absl::StatusOr<std::string>(const std::string& org)>;

// Reads the zone from kudos.v1.DirectoryService.GetOrgSettings over
// `channel`, with the service token and a deadline.
OrgZoneLookup KudosOrgZone(std::shared_ptr<grpc::Channel> channel,
                           std::function<absl::StatusOr<std::string>(absl::string_view)>
                               authorization,
                           std::chrono::milliseconds timeout);

class BudgetServiceImpl final : public v1::BudgetService::Service {
 public:
  BudgetServiceImpl(common::auth::Guard guard, AwardsBook& book, OrgZoneLookup org_zone,
                    std::function<absl::Time()> clock = absl::Now)
      : guard_(std::move(guard)),
        book_(book),
        org_zone_(std::move(org_zone)),
        clock_(std::move(clock)) {}

  grpc::Status CreateBudget(grpc::ServerContext* context, const v1::CreateBudgetRequest* request,
                            v1::CreateBudgetResponse* response) override;
  grpc::Status UpdateBudget(grpc::ServerContext* context, const v1::UpdateBudgetRequest* request,
                            v1::UpdateBudgetResponse* response) override;
  grpc::Status GetBudget(grpc::ServerContext* context, const v1::GetBudgetRequest* request,
                         v1::GetBudgetResponse* response) override;
  grpc::Status ListBudgets(grpc::ServerContext* context, const v1::ListBudgetsRequest* request,
                           v1::ListBudgetsResponse* response) override;
  grpc::Status ListBudgetHistory(grpc::ServerContext* context,
                                 const v1::ListBudgetHistoryRequest* request,
                                 v1::ListBudgetHistoryResponse* response) override;

 private:
  common::auth::Guard guard_;
  AwardsBook& book_;
  OrgZoneLookup org_zone_;
  std::function<absl::Time()> clock_;
};

}  // namespace programs
