#include "tests/harness/tokens.h"

#include <stdexcept>

#include "absl/time/clock.h"

namespace harness {

std::string MintToken(const std::string& org, const std::string& subject,
                      std::vector<std::string> roles) {
  common::auth::TokenRequest request;
  request.org = org;
  request.subject = subject;
  request.roles = std::move(roles);
  auto token = common::auth::MintHs256(request, common::auth::kDevJwtSecret, absl::Now());
  if (!token.ok()) throw std::runtime_error(std::string(token.status().message()));
  return *token;
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token,
                                             std::chrono::milliseconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", "Bearer " + token);
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

}  // namespace harness
