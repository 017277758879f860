// Issue 17, area "directory_sync": SCIM 2.0 at /scim/{org}/v2/... and the
// DirectorySyncService (SCIM tokens, CSV import); registers them with the
// host (modules.h). Directory writes go to kudos's DirectoryService with a
// token delegated to the integrations service for an admin actor.
#include <grpcpp/grpcpp.h>

#include <memory>

#include "services/integrations/delegation.h"
#include "services/integrations/directory_sync_csv.h"
#include "services/integrations/directory_sync_directory.h"
#include "services/integrations/directory_sync_scim.h"
#include "services/integrations/directory_sync_scim_store.h"
#include "services/integrations/directory_sync_service.h"
#include "services/integrations/modules.h"

namespace integrations {

absl::Status AddDirectorySync(Host& host) {
  const Host* const_host = &host;
  auto directory = std::make_shared<KudosDirectory>(
      grpc::CreateChannel(host.options().upstreams.kudos, grpc::InsecureChannelCredentials()),
      host.options().call_timeout, [const_host](const std::string& org, const std::string& actor) {
        return DelegatedAuthorization(*const_host, org, actor, {"admin"});
      });
  auto store = std::make_shared<ScimStore>(host.pool(), ScimLimits());
  auto importer = std::make_shared<CsvImporter>(*directory, nullptr);
  auto scim = std::make_shared<ScimHandler>(*store, *directory, ScimOptions());
  host.Keep(directory);
  host.Keep(store);
  host.Keep(importer);
  host.Keep(scim);
  host.AddService(std::make_unique<DirectorySyncServiceImpl>(host.guard(), *store, *importer));
  host.AddHttpRoute("/scim/", [scim](const v1::HandleRequest& request, absl::Time now) {
    return scim->Handle(request, now);
  });
  return absl::OkStatus();
}

}  // namespace integrations
