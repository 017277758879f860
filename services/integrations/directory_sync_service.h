// integrations.v1.DirectorySyncService: SCIM tokens and the CSV import, for
// the org's admins (a person token with the admin role; services and
// delegated tokens of other services are refused).
#pragma once

#include "common/auth/guard.h"
#include "integrations/v1/directory_sync.grpc.pb.h"
#include "services/integrations/directory_sync_csv.h"
#include "services/integrations/directory_sync_scim_store.h"

namespace integrations {

class DirectorySyncServiceImpl final : public v1::DirectorySyncService::Service {
 public:
  DirectorySyncServiceImpl(const common::auth::Guard& guard, ScimStore& store, CsvImporter& importer);

  grpc::Status CreateScimToken(grpc::ServerContext* context, const v1::CreateScimTokenRequest* request,
                               v1::CreateScimTokenResponse* response) override;
  grpc::Status RevokeScimToken(grpc::ServerContext* context, const v1::RevokeScimTokenRequest* request,
                               v1::RevokeScimTokenResponse* response) override;
  grpc::Status ListScimTokens(grpc::ServerContext* context, const v1::ListScimTokensRequest* request,
                              v1::ListScimTokensResponse* response) override;
  grpc::Status ImportDirectoryCsv(grpc::ServerContext* context,
                                  const v1::ImportDirectoryCsvRequest* request,
                                  v1::ImportDirectoryCsvResponse* response) override;

 private:
  absl::StatusOr<common::auth::Principal> Admin(grpc::ServerContext& context) const;

  const common::auth::Guard& guard_;
  ScimStore& store_;
  CsvImporter& importer_;
};

}  // namespace integrations
