// integrations.v1.SlackService: the org's Slack settings and its links from
// Slack users to people. Admins only; the org comes from the token.
#pragma once

#include "common/auth/guard.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/slack.grpc.pb.h"
#include "services/integrations/slack_store.h"

namespace integrations {

class SlackServiceImpl final : public v1::SlackService::Service {
 public:
  SlackServiceImpl(common::auth::Guard guard, common::redis::Pool& pool)
      : guard_(std::move(guard)), pool_(pool), store_(pool) {}

  grpc::Status SetSlackSettings(grpc::ServerContext* context,
                                const v1::SetSlackSettingsRequest* request,
                                v1::SetSlackSettingsResponse* response) override;
  grpc::Status GetSlackSettings(grpc::ServerContext* context,
                                const v1::GetSlackSettingsRequest* request,
                                v1::GetSlackSettingsResponse* response) override;
  grpc::Status PutUserMapping(grpc::ServerContext* context,
                              const v1::PutUserMappingRequest* request,
                              v1::PutUserMappingResponse* response) override;
  grpc::Status DeleteUserMapping(grpc::ServerContext* context,
                                 const v1::DeleteUserMappingRequest* request,
                                 v1::DeleteUserMappingResponse* response) override;
  grpc::Status ListUserMappings(grpc::ServerContext* context,
                                const v1::ListUserMappingsRequest* request,
                                v1::ListUserMappingsResponse* response) override;

 private:
  // The admin's org, or PERMISSION_DENIED / UNAUTHENTICATED.
  absl::StatusOr<std::string> AdminOrg(grpc::ServerContext& context) const;

  common::auth::Guard guard_;
  common::redis::Pool& pool_;
  SlackStore store_;
};

}  // namespace integrations
