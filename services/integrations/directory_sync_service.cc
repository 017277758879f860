#include "services/integrations/directory_sync_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/status.h"

namespace integrations {
namespace {

using common::grpc_util::ToGrpcStatus;

constexpr int kMaxDescriptionCharacters = 100;

int Utf8Characters(absl::string_view text) {
  int count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

}  // namespace

DirectorySyncServiceImpl::DirectorySyncServiceImpl(const common::auth::Guard& guard,
                                                   ScimStore& store, CsvImporter& importer)
    : guard_(guard), store_(store), importer_(importer) {}

absl::StatusOr<common::auth::Principal> DirectorySyncServiceImpl::Admin(
    grpc::ServerContext& context) const {
  absl::StatusOr<common::auth::Principal> principal = guard_.Authenticate(context);
  if (!principal.ok()) return principal.status();
  if (principal->is_service()) {
    return absl::PermissionDeniedError("service tokens cannot manage directory sync");
  }
  if (!principal->is_admin()) return absl::PermissionDeniedError("only admins manage directory sync");
  return principal;
}

grpc::Status DirectorySyncServiceImpl::CreateScimToken(grpc::ServerContext* context,
                                                       const v1::CreateScimTokenRequest* request,
                                                       v1::CreateScimTokenResponse* response) {
  auto admin = Admin(*context);
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  if (Utf8Characters(request->description()) > kMaxDescriptionCharacters) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("description: at most ", kMaxDescriptionCharacters, " characters")));
  }
  absl::StatusOr<NewScimToken> token = store_.CreateToken(admin->org, request->description(), absl::Now());
  if (!token.ok()) return ToGrpcStatus(token.status());
  response->set_token_id(token->token_id);
  response->set_token(token->token);
  response->set_base_path(absl::StrCat("/scim/", admin->org, "/v2"));
  return grpc::Status::OK;
}

grpc::Status DirectorySyncServiceImpl::RevokeScimToken(grpc::ServerContext* context,
                                                       const v1::RevokeScimTokenRequest* request,
                                                       v1::RevokeScimTokenResponse*) {
  auto admin = Admin(*context);
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  if (request->token_id().empty() || request->token_id().size() > 64) {
    return ToGrpcStatus(absl::InvalidArgumentError("token_id: required (from CreateScimToken)"));
  }
  return ToGrpcStatus(store_.RevokeToken(admin->org, request->token_id()));
}

grpc::Status DirectorySyncServiceImpl::ListScimTokens(grpc::ServerContext* context,
                                                      const v1::ListScimTokensRequest*,
                                                      v1::ListScimTokensResponse* response) {
  auto admin = Admin(*context);
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  auto tokens = store_.ListTokens(admin->org);
  if (!tokens.ok()) return ToGrpcStatus(tokens.status());
  for (v1::ScimTokenInfo& info : *tokens) *response->add_tokens() = std::move(info);
  return grpc::Status::OK;
}

grpc::Status DirectorySyncServiceImpl::ImportDirectoryCsv(
    grpc::ServerContext* context, const v1::ImportDirectoryCsvRequest* request,
    v1::ImportDirectoryCsvResponse* response) {
  auto admin = Admin(*context);
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  // The directory writes are the admin's own (the audit stream names them).
  auto imported = importer_.Import(admin->org, admin->subject, request->csv(), request->dry_run());
  if (!imported.ok()) return ToGrpcStatus(imported.status());
  *response = *std::move(imported);
  return grpc::Status::OK;
}

}  // namespace integrations
