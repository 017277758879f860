// bench_echo_server: floor (a). Answers bench.v1.Echo/Ping with an empty
// message and does nothing else. --model=callback (default: the callback
// API, the fastest gRPC C++ server model) or --model=sync (the synchronous
// thread-pool model the services use through common/grpc/server.cc).
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "bench/v1/bench.grpc.pb.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

class CallbackEcho final : public bench::v1::Echo::CallbackService {
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const google::protobuf::Empty*,
                                 google::protobuf::Empty*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class SyncEcho final : public bench::v1::Echo::Service {
  grpc::Status Ping(grpc::ServerContext*, const google::protobuf::Empty*,
                    google::protobuf::Empty*) override {
    return grpc::Status::OK;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::string model = "callback";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--listen=", 0) == 0) listen = arg.substr(9);
    else if (arg.rfind("--model=", 0) == 0) model = arg.substr(8);
    else if (arg.rfind("--redis=", 0) == 0) continue;  // accepted and ignored
    else {
      std::fprintf(stderr, "usage: %s --listen=127.0.0.1:PORT [--model=callback|sync]\n", argv[0]);
      return 2;
    }
  }
  CallbackEcho callback_echo;
  SyncEcho sync_echo;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  if (model == "sync") {
    builder.RegisterService(&sync_echo);
  } else {
    builder.RegisterService(&callback_echo);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::fprintf(stderr, "bench_echo_server (%s) listening on port %d\n", model.c_str(), port);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::thread stopper([&] {
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  });
  server->Wait();
  stopper.join();
  return 0;
}
