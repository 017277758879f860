// integrations.v1.HttpIngressService: the raw HTTP routes the gateway
// forwards (Slack, SCIM), dispatched by path prefix to the module that
// registered it (Host::AddHttpRoute). No bearer token is required here: each
// protocol authenticates itself inside its handler.
#pragma once

#include "integrations/v1/http_ingress.grpc.pb.h"
#include "services/integrations/host.h"

namespace integrations {

// Largest request body forwarded (SCIM and Slack bodies are a few KB).
inline constexpr size_t kMaxIngressBodyBytes = 1024 * 1024;

class HttpIngressServiceImpl final : public v1::HttpIngressService::Service {
 public:
  explicit HttpIngressServiceImpl(const Host& host) : host_(host) {}

  grpc::Status Handle(grpc::ServerContext* context, const v1::HandleRequest* request,
                      v1::HandleResponse* response) override;

 private:
  const Host& host_;
};

// The response for a path no module serves.
v1::HandleResponse NotFoundResponse(absl::string_view path);

}  // namespace integrations
