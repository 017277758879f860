#include "common/grpc/server.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/support/server_interceptor.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/log/log.h"

namespace common::grpc_util {
namespace {

// Signal handlers may only touch lock-free atomics; a watcher thread polls.
std::atomic<bool> g_stop_requested{false};

void OnSignal(int) { g_stop_requested.store(true); }

// What protobuf last logged as an error on this thread. gRPC parses a
// request on the thread that then runs the interceptors, and protobuf names
// the field it refuses only in its log ("String field 'x.Y.z' contains
// invalid UTF-8 data ..."), so this is how the refusal can name it.
thread_local std::string t_protobuf_error;

void CaptureProtobufLog(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  if (level >= google::protobuf::LOGLEVEL_ERROR) t_protobuf_error = message;
  // protobuf's own format, to stderr as before.
  static const char* const kLevels[] = {"INFO", "WARNING", "ERROR", "FATAL"};
  std::fprintf(stderr, "[libprotobuf %s %s:%d] %s\n", kLevels[std::clamp(static_cast<int>(level), 0, 3)],
               filename, line, message.c_str());
}

// Turns gRPC's answer to a request that does not parse (INTERNAL or, on the
// callback API, UNIMPLEMENTED, with an empty message) into INVALID_ARGUMENT
// with a message a client can act on.
// The request did not parse when the received message is null.
class UnparseableRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit UnparseableRequestInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method() == nullptr ? "" : info->method()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      unparsed_ = methods->GetRecvMessage() == nullptr;
      protobuf_error_ = unparsed_ ? std::move(t_protobuf_error) : "";
      t_protobuf_error.clear();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::StatusCode code = methods->GetSendStatus().error_code();
      // The sync server answers INTERNAL, the callback API UNIMPLEMENTED.
      if (unparsed_ &&
          (code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNIMPLEMENTED)) {
        methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                               UnparseableRequestMessage(method_, protobuf_error_)));
      }
      t_protobuf_error.clear();
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  bool unparsed_ = false;
  std::string protobuf_error_;
};

class UnparseableRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new UnparseableRequestInterceptor(info);
  }
};

// "/pkg.Service/Method" -> the full name of its request type, or "".
std::string RequestTypeName(absl::string_view method) {
  std::string full_name = absl::StrReplaceAll(absl::StripPrefix(method, "/"), {{"/", "."}});
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name);
  return descriptor == nullptr ? "" : descriptor->input_type()->full_name();
}

// The field protobuf named in an invalid-UTF-8 error, or "".
std::string InvalidUtf8Field(absl::string_view protobuf_error) {
  constexpr absl::string_view kPrefix = "String field '";
  size_t start = protobuf_error.find(kPrefix);
  if (start == absl::string_view::npos ||
      protobuf_error.find("invalid UTF-8") == absl::string_view::npos) {
    return "";
  }
  start += kPrefix.size();
  size_t end = protobuf_error.find('\'', start);
  if (end == absl::string_view::npos) return "";
  return std::string(protobuf_error.substr(start, end - start));
}

std::shared_ptr<grpc::ResourceQuota> MakeQuota(const ServerOptions& options) {
  auto quota = std::make_shared<grpc::ResourceQuota>(options.service_name + "-quota");
  quota->SetMaxThreads(options.max_threads);
  quota->Resize(static_cast<size_t>(options.max_memory_bytes));
  return quota;
}

}  // namespace

std::string UnparseableRequestMessage(absl::string_view method, absl::string_view protobuf_error) {
  std::string type = RequestTypeName(method);
  std::string what = type.empty() ? "the request" : absl::StrCat("the request (", type, ")");
  if (std::string field = InvalidUtf8Field(protobuf_error); !field.empty()) {
    return absl::StrCat(what, " does not parse: string field '", field,
                        "' is not valid UTF-8 (string fields must be UTF-8 text)");
  }
  return absl::StrCat(what, " does not parse as protobuf (malformed encoding, or a string "
                      "field that is not valid UTF-8)");
}

std::chrono::milliseconds ServerOptions::DefaultShutdownGrace() {
  return std::chrono::milliseconds(config::IntEnvOr("SHUTDOWN_GRACE_MS", 1000));
}

// Enough for every call in flight and open sync stream of a replica; past
// it calls are refused rather than the process exhausting threads.
int ServerOptions::DefaultMaxThreads() {
  return static_cast<int>(config::IntEnvOr("GRPC_MAX_THREADS", 1024, 4));
}

int64_t ServerOptions::DefaultMaxMemoryBytes() {
  return config::IntEnvOr("GRPC_MAX_MEMORY_BYTES", int64_t{1} << 30, int64_t{16} << 20);
}

bool ShutdownRequested() { return g_stop_requested.load(); }

void RequestShutdown() { g_stop_requested.store(true); }

absl::Status RunServer(const ServerOptions& options) {
  // Debian's Abseil is built with mutex deadlock detection on: it records
  // every lock order in a global graph, a few percent of all CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Set once, before any call is parsed (protobuf's setter is not thread-safe).
  google::protobuf::SetLogHandler(&CaptureProtobufLog);
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  KUDOS_CHECK(options.max_threads >= 2 && options.max_memory_bytes > 0,
              "a server's resource quota leaves room for its pollers");
  builder.SetResourceQuota(*MakeQuota(options));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<UnparseableRequestInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (grpc::Service* service : options.services) builder.RegisterService(service);
  // Handlers block on Redis, so the sync server runs a thread per call in
  // flight. By default it keeps only 2 idle threads and retires the rest when
  // the load dips, then creates them again: thread creation was a large share
  // of the services' CPU under load (bench/README.md). Idle threads are kept.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::min(options.max_idle_threads, options.max_threads));
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
