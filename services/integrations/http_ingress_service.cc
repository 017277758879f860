#include "services/integrations/http_ingress_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace integrations {

v1::HandleResponse NotFoundResponse(absl::string_view path) {
  v1::HandleResponse response;
  response.set_status(404);
  v1::HttpHeader* type = response.add_headers();
  type->set_name("content-type");
  type->set_value("application/json");
  response.set_body(absl::StrCat("{\"error\":\"no integration serves ", path, "\"}"));
  return response;
}

grpc::Status HttpIngressServiceImpl::Handle(grpc::ServerContext*, const v1::HandleRequest* request,
                                            v1::HandleResponse* response) {
  if (request->body().size() > kMaxIngressBodyBytes) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("body: ", request->body().size(), " bytes, at most ",
                                     kMaxIngressBodyBytes));
  }
  const HttpHandler* handler = host_.FindHttpRoute(request->path());
  *response = handler == nullptr ? NotFoundResponse(request->path())
                                 : (*handler)(*request, absl::Now());
  return grpc::Status::OK;
}

}  // namespace integrations
