#include "services/integrations/slack_service.h"

#include "common/grpc/status.h"
#include "services/integrations/slack_user_map.h"

namespace integrations {

using common::grpc_util::ToGrpcStatus;

absl::StatusOr<std::string> SlackServiceImpl::AdminOrg(grpc::ServerContext& context) const {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(context);
  if (!who.ok()) return who.status();
  if (!who->is_admin()) {
    return absl::PermissionDeniedError("the Slack app's settings and user links are for admins");
  }
  return who->org;
}

grpc::Status SlackServiceImpl::SetSlackSettings(grpc::ServerContext* context,
                                                const v1::SetSlackSettingsRequest* request,
                                                v1::SetSlackSettingsResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status valid = ValidateSlackSettings(request->settings()); !valid.ok()) {
    return ToGrpcStatus(valid);
  }
  absl::StatusOr<v1::SlackSettings> stored = store_.SetSettings(*org, request->settings());
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  *response->mutable_settings() = *stored;
  return grpc::Status::OK;
}

grpc::Status SlackServiceImpl::GetSlackSettings(grpc::ServerContext* context,
                                                const v1::GetSlackSettingsRequest*,
                                                v1::GetSlackSettingsResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  absl::StatusOr<SlackConfig> config = store_.Load(*org);
  if (!config.ok()) return ToGrpcStatus(config.status());
  *response->mutable_settings() = config->settings;  // never the secret
  return grpc::Status::OK;
}

grpc::Status SlackServiceImpl::PutUserMapping(grpc::ServerContext* context,
                                              const v1::PutUserMappingRequest* request,
                                              v1::PutUserMappingResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  const v1::SlackUserMapping& mapping = request->mapping();
  absl::Status put =
      PutSlackUserMapping(pool_, *org, mapping.slack_user_id(), mapping.person_id());
  if (!put.ok()) return ToGrpcStatus(put);
  *response->mutable_mapping() = mapping;
  return grpc::Status::OK;
}

grpc::Status SlackServiceImpl::DeleteUserMapping(grpc::ServerContext* context,
                                                 const v1::DeleteUserMappingRequest* request,
                                                 v1::DeleteUserMappingResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  absl::StatusOr<bool> deleted = DeleteSlackUserMapping(pool_, *org, request->slack_user_id());
  if (!deleted.ok()) return ToGrpcStatus(deleted.status());
  response->set_deleted(*deleted);
  return grpc::Status::OK;
}

grpc::Status SlackServiceImpl::ListUserMappings(grpc::ServerContext* context,
                                                const v1::ListUserMappingsRequest* request,
                                                v1::ListUserMappingsResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  absl::StatusOr<SlackMappingPage> page =
      store_.ListMappings(*org, request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (v1::SlackUserMapping& mapping : page->mappings) {
    *response->add_mappings() = std::move(mapping);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

}  // namespace integrations
