// Issue 17, area "slack": registers this area with the host (modules.h): the
// admins' SlackService and the slash command route /slack/ (forwarded by the
// gateway through HttpIngressService).
#include <grpcpp/grpcpp.h>

#include <memory>

#include "services/integrations/modules.h"
#include "services/integrations/slack_commands.h"
#include "services/integrations/slack_service.h"

namespace integrations {

absl::Status AddSlack(Host& host) {
  host.AddService(std::make_unique<SlackServiceImpl>(host.guard(), host.pool()));
  auto commands = std::make_shared<SlackCommandHandler>(
      host, grpc::CreateChannel(host.options().upstreams.kudos,
                                grpc::InsecureChannelCredentials()));
  host.Keep(commands);
  host.AddHttpRoute("/slack/", [handler = commands.get()](const v1::HandleRequest& request,
                                                          absl::Time now) {
    return handler->Handle(request, now);
  });
  return absl::OkStatus();
}

}  // namespace integrations
