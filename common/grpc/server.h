// Starts a gRPC server with the standard health service and server
// reflection, and shuts it down gracefully on SIGINT/SIGTERM.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace common::grpc_util {

struct ServerOptions {
  std::string address;
  std::string service_name;  // for logs
  std::vector<grpc::Service*> services;
  // Largest request accepted; bigger ones fail with RESOURCE_EXHAUSTED.
  int max_receive_message_bytes = 256 * 1024;
  // Called once the server stopped accepting calls, before it is destroyed.
  std::function<void()> on_shutdown;
};

// Blocks until a signal arrives, then drains calls for up to 5 seconds.
absl::Status RunServer(const ServerOptions& options);

}  // namespace common::grpc_util
