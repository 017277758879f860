// Starts a gRPC server with the standard health service and server
// reflection, and shuts it down gracefully on SIGINT/SIGTERM: health turns
// NOT_SERVING, on_shutdown runs (end your streams there), calls in flight
// get `shutdown_grace` to finish, then whatever is left (open streams, idle
// client connections, which gRPC would otherwise wait for) is cancelled.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
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
  // Called once a stop was requested, before the server stops accepting
  // calls; streams should end here.
  std::function<void()> on_shutdown;
  // How long calls in flight may take to finish after a signal (env
  // SHUTDOWN_GRACE_MS). Keep well under the orchestrator's kill timeout
  // (the test harness kills after 3 s, Kubernetes after 30 s).
  std::chrono::milliseconds shutdown_grace = DefaultShutdownGrace();
  // Idle handler threads the sync server keeps for the next burst instead
  // of retiring them (gRPC's default is 2).
  int max_idle_threads = 64;

  static std::chrono::milliseconds DefaultShutdownGrace();
};

// Blocks until a signal arrives (or RequestShutdown), then drains calls for
// up to options.shutdown_grace.
absl::Status RunServer(const ServerOptions& options);

// True once SIGINT/SIGTERM arrived: long-running handlers (sync server
// streams) poll it and end, e.g. with UNAVAILABLE, so shutdown stays prompt.
bool ShutdownRequested();
// The same as a signal (tests, admin endpoints).
void RequestShutdown();

}  // namespace common::grpc_util
