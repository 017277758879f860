// Starts a gRPC server with the standard health service and server
// reflection, and shuts it down gracefully on SIGINT/SIGTERM: health turns
// NOT_SERVING, on_shutdown runs (end your streams there), calls in flight
// get `shutdown_grace` to finish, then whatever is left (open streams, idle
// client connections, which gRPC would otherwise wait for) is cancelled.
// Every server is bounded by a grpc::ResourceQuota (handler threads and
// memory): past it, calls get RESOURCE_EXHAUSTED instead of the process
// growing until it dies. A request that does not parse (e.g. a string field
// that is not UTF-8) gets INVALID_ARGUMENT naming the cause, not gRPC's
// INTERNAL with an empty message.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

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
  // of retiring them (gRPC's default is 2); at most max_threads.
  int max_idle_threads = 64;
  // The resource quota: sync-server threads (each call in flight, each open
  // sync stream holds one; env GRPC_MAX_THREADS) and memory for calls and
  // connections (env GRPC_MAX_MEMORY_BYTES).
  int max_threads = DefaultMaxThreads();
  int64_t max_memory_bytes = DefaultMaxMemoryBytes();

  static std::chrono::milliseconds DefaultShutdownGrace();
  static int DefaultMaxThreads();
  static int64_t DefaultMaxMemoryBytes();
};

// The status for a request that did not parse as `method`'s request type
// ("/pkg.Service/Method"); `protobuf_error` is what protobuf logged while
// parsing (may be empty). Exposed for tests.
std::string UnparseableRequestMessage(absl::string_view method, absl::string_view protobuf_error);

// Blocks until a signal arrives (or RequestShutdown), then drains calls for
// up to options.shutdown_grace.
absl::Status RunServer(const ServerOptions& options);

// True once SIGINT/SIGTERM arrived: long-running handlers (sync server
// streams) poll it and end, e.g. with UNAVAILABLE, so shutdown stays prompt.
bool ShutdownRequested();
// The same as a signal (tests, admin endpoints).
void RequestShutdown();

}  // namespace common::grpc_util
