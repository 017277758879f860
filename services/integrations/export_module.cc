// Issue 17, area "export": registers this area with the host (modules.h):
// ExportService over gRPC and GET /v1/export/{kind} through the HTTP
// ingress (services/integrations/README.md, "Export and audit").
#include <grpcpp/grpcpp.h>

#include <memory>

#include "services/integrations/export_service.h"
#include "services/integrations/modules.h"

namespace integrations {

absl::Status AddExport(Host& host) {
  auto kudos =
      grpc::CreateChannel(host.options().upstreams.kudos, grpc::InsecureChannelCredentials());
  auto ledger =
      grpc::CreateChannel(host.options().upstreams.ledger, grpc::InsecureChannelCredentials());
  auto exporter = std::make_shared<Exporter>(host, kudos, ledger);
  host.Keep(exporter);
  host.AddService(std::make_unique<ExportServiceImpl>(host.guard(), *exporter));
  const common::auth::Guard& guard = host.guard();
  host.AddHttpRoute("/v1/export/",
                    [exporter, &guard](const v1::HandleRequest& request, absl::Time now) {
                      return HandleExportHttp(*exporter, guard, request, now);
                    });
  return absl::OkStatus();
}

}  // namespace integrations
