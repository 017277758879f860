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
#include "services/integrations/slack_user_map.h"

namespace integrations {

absl::Status AddDirectorySync(Host& host) {
  const Host* const_host = &host;
  auto directory = std::make_shared<KudosDirectory>(
      grpc::CreateChannel(host.options().upstreams.kudos, grpc::InsecureChannelCredentials()),
      host.options().call_timeout, [const_host](const std::string& org, const std::string& actor) {
        return DelegatedAuthorization(*const_host, org, actor, {"admin"});
      });
  auto store = std::make_shared<ScimStore>(host.pool(), ScimLimits());
  common::redis::Pool* pool = &host.pool();
  SlackUserLinks slack_links;
  slack_links.lookup = [pool](const std::string& org, const std::string& slack_user_id)
      -> absl::StatusOr<std::optional<std::string>> {
    auto linked = LookupSlackUsers(*pool, org, {slack_user_id});
    if (!linked.ok()) return linked.status();
    if (linked->size() != 1) return absl::InternalError("one Slack user looked up, not one answer");
    return linked->front();
  };
  slack_links.put = [pool](const std::string& org, const std::string& slack_user_id,
                           const std::string& person_id) {
    return PutSlackUserMapping(*pool, org, slack_user_id, person_id);
  };
  auto importer = std::make_shared<CsvImporter>(*directory, std::move(slack_links));
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
