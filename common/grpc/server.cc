#include "common/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <csignal>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace common::grpc_util {
namespace {

// Signal handlers may only touch lock-free atomics; a watcher thread polls.
std::atomic<bool> g_stop_requested{false};

void OnSignal(int) { g_stop_requested.store(true); }

}  // namespace

absl::Status RunServer(const ServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  for (grpc::Service* service : options.services) builder.RegisterService(service);
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
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  stopper.join();
  return absl::OkStatus();
}

}  // namespace common::grpc_util
