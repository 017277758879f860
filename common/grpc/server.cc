#include "common/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config/env.h"
#include "common/log/log.h"

namespace common::grpc_util {
namespace {

// Signal handlers may only touch lock-free atomics; a watcher thread polls.
std::atomic<bool> g_stop_requested{false};

void OnSignal(int) { g_stop_requested.store(true); }

}  // namespace

std::chrono::milliseconds ServerOptions::DefaultShutdownGrace() {
  return std::chrono::milliseconds(config::IntEnvOr("SHUTDOWN_GRACE_MS", 1000));
}

bool ShutdownRequested() { return g_stop_requested.load(); }

void RequestShutdown() { g_stop_requested.store(true); }

absl::Status RunServer(const ServerOptions& options) {
  // Debian's Abseil is built with mutex deadlock detection on: it records
  // every lock order in a global graph, a few percent of all CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  for (grpc::Service* service : options.services) builder.RegisterService(service);
  // Handlers block on Redis, so the sync server runs a thread per call in
  // flight. By default it keeps only 2 idle threads and retires the rest when
  // the load dips, then creates them again: thread creation was a large share
  // of the services' CPU under load (bench/README.md). Idle threads are kept.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              options.max_idle_threads);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return absl::UnavailableError(
        absl::StrCat(options.service_name, ": cannot listen on ", options.address));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  log::Info(absl::StrCat(options.service_name, " listening on ", options.address));

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::thread stopper([&] {
    while (!g_stop_requested.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log::Info(absl::StrCat(options.service_name, " shutting down"));
    server->GetHealthCheckService()->SetServingStatus(false);
    if (options.on_shutdown) options.on_shutdown();
    // Shutdown stops new calls, lets calls in flight finish until the
    // deadline, and only then cancels the rest; it also waits for every
    // client connection to close, so an idle client would hold it until the
    // deadline. Hence a short deadline: unary calls here take milliseconds.
    auto started = std::chrono::steady_clock::now();
    server->Shutdown(std::chrono::system_clock::now() + options.shutdown_grace);
    log::Info(absl::StrCat(options.service_name, " stopped after ",
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count(),
                           " ms"));
  });
  server->Wait();
  stopper.join();
  return absl::OkStatus();
}

}  // namespace common::grpc_util
