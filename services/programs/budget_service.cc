#include "services/programs/budget_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/programs/budget_rules.h"

namespace programs {
namespace {

using common::grpc_util::ToGrpcStatus;

}  // namespace

OrgZoneLookup KudosOrgZone(
    std::shared_ptr<grpc::Channel> channel,
    std::function<absl::StatusOr<std::string>(absl::string_view)> authorization,
    std::chrono::milliseconds timeout) {
  auto stub = std::shared_ptr<kudos::v1::DirectoryService::Stub>(
      kudos::v1::DirectoryService::NewStub(channel));
  return [stub, authorization = std::move(authorization),
          timeout](const std::string& org) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> bearer = authorization(org);
    if (!bearer.ok()) return bearer.status();
    grpc::ClientContext context;
    common::grpc_util::SetDeadline(context, timeout);
    context.AddMetadata("authorization", *bearer);
    kudos::v1::GetOrgSettingsResponse response;
    grpc::Status status =
        stub->GetOrgSettings(&context, kudos::v1::GetOrgSettingsRequest(), &response);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "budget.time_zone: empty, and the org's zone could not be read from kudos (",
          status.error_message(), "); pass time_zone explicitly"));
    }
    return response.settings().time_zone();
  };
}

grpc::Status BudgetServiceImpl::CreateBudget(grpc::ServerContext* context,
                                             const v1::CreateBudgetRequest* request,
                                             v1::CreateBudgetResponse* response) {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (absl::Status s = RequireAdmin(*who, "CreateBudget"); !s.ok()) return ToGrpcStatus(s);
  v1::Budget budget = request->budget();
  if (budget.time_zone().empty()) {
    absl::StatusOr<std::string> zone = org_zone_(who->org);
    if (!zone.ok()) return ToGrpcStatus(zone.status());
    budget.set_time_zone(zone->empty() ? "UTC" : *zone);
  }
  absl::StatusOr<v1::CreateBudgetResponse> created = book_.CreateBudget(*who, budget, clock_());
  if (!created.ok()) return ToGrpcStatus(created.status());
  *response = *std::move(created);
  return grpc::Status::OK;
}

grpc::Status BudgetServiceImpl::UpdateBudget(grpc::ServerContext* context,
                                             const v1::UpdateBudgetRequest* request,
                                             v1::UpdateBudgetResponse* response) {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::Budget> budget = book_.UpdateBudget(*who, *request, clock_());
  if (!budget.ok()) return ToGrpcStatus(budget.status());
  *response->mutable_budget() = *std::move(budget);
  return grpc::Status::OK;
}

grpc::Status BudgetServiceImpl::GetBudget(grpc::ServerContext* context,
                                          const v1::GetBudgetRequest* request,
                                          v1::GetBudgetResponse* response) {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::Budget> budget = book_.GetBudget(*who, request->budget_id(), clock_());
  if (!budget.ok()) return ToGrpcStatus(budget.status());
  *response->mutable_budget() = *std::move(budget);
  return grpc::Status::OK;
}

grpc::Status BudgetServiceImpl::ListBudgets(grpc::ServerContext* context,
                                            const v1::ListBudgetsRequest*,
                                            v1::ListBudgetsResponse* response) {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<std::vector<v1::Budget>> budgets = book_.ListBudgets(*who, clock_());
  if (!budgets.ok()) return ToGrpcStatus(budgets.status());
  for (v1::Budget& budget : *budgets) *response->add_budgets() = std::move(budget);
  return grpc::Status::OK;
}

grpc::Status BudgetServiceImpl::ListBudgetHistory(grpc::ServerContext* context,
                                                  const v1::ListBudgetHistoryRequest* request,
                                                  v1::ListBudgetHistoryResponse* response) {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(*context);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<std::vector<v1::BudgetHistoryEntry>> entries =
      book_.History(*who, request->budget_id(), request->page_size(), clock_());
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  for (v1::BudgetHistoryEntry& entry : *entries) *response->add_entries() = std::move(entry);
  return grpc::Status::OK;
}

}  // namespace programs
