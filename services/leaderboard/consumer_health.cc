#include "services/leaderboard/consumer_health.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/method_handler.h>

#include <vector>

#include "common/check/check.h"
#include "common/log/log.h"

namespace leaderboard {

void HealthBoard::SetServer(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  server_ = serving;
}

void HealthBoard::SetConsumer(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (consumer_ != serving) {
    common::log::Warning(serving ? "leaderboard: consumer progressing again (health SERVING)"
                                 : "leaderboard: consumer stalled with entries waiting "
                                   "(health NOT_SERVING)");
  }
  consumer_ = serving;
}

std::optional<bool> HealthBoard::Serving(const std::string& service) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (service.empty()) return server_;
  if (service == kConsumerHealthService) return server_ && consumer_;
  return std::nullopt;
}

namespace {

constexpr size_t kMaxServiceName = 200;

// HealthCheckRequest {string service = 1}, decoded by hand (no health.proto
// in Debian's gRPC packages); nullopt when malformed.
std::optional<std::string> ServiceName(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::string service;
  for (int fields = 0; fields < 64; ++fields) {
    uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage() ? std::optional(service) : std::nullopt;
    if (tag == 0x0a) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || length > kMaxServiceName ||
          !in.ReadString(&service, static_cast<int>(length))) {
        return std::nullopt;
      }
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices) {
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

class HealthService : public grpc::Service {
 public:
  explicit HealthService(std::shared_ptr<HealthBoard> board) : board_(std::move(board)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<HealthService, grpc::ByteBuffer, grpc::ByteBuffer>(
            [](HealthService* service, grpc::ServerContext*, const grpc::ByteBuffer* request,
               grpc::ByteBuffer* response) { return service->Check(*request, *response); },
            this)));
  }

 private:
  grpc::Status Check(const grpc::ByteBuffer& request, grpc::ByteBuffer& response) {
    std::optional<std::string> service = ServiceName(Bytes(request));
    if (!service.has_value()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "HealthCheckRequest: malformed, or service longer than 200 bytes");
    }
    std::optional<bool> serving = board_->Serving(*service);
    if (!serving.has_value()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown service name; known: \"\" and " +
                              std::string(kConsumerHealthService));
    }
    // HealthCheckResponse {status = 1}: 1 SERVING, 2 NOT_SERVING.
    std::string bytes = {'\x08', *serving ? '\x01' : '\x02'};
    grpc::Slice slice(bytes);
    response = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  std::shared_ptr<HealthBoard> board_;
};

// What the server calls on start and shutdown, written to the board.
class BoardHealthInterface : public grpc::HealthCheckServiceInterface {
 public:
  explicit BoardHealthInterface(std::shared_ptr<HealthBoard> board) : board_(std::move(board)) {}
  void SetServingStatus(const std::string& service_name, bool serving) override {
    if (service_name.empty()) board_->SetServer(serving);
    if (service_name == kConsumerHealthService) board_->SetConsumer(serving);
  }
  void SetServingStatus(bool serving) override { board_->SetServer(serving); }
  void Shutdown() override { board_->SetServer(false); }

 private:
  std::shared_ptr<HealthBoard> board_;
};

// Set once by InstallHealthService, read by every plugin instance.
std::shared_ptr<HealthBoard>* g_board = nullptr;
HealthService* g_service = nullptr;

class HealthPlugin : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "kudos_leaderboard_health"; }
  void UpdateServerBuilder(grpc::ServerBuilder* builder) override {
    builder->RegisterService(g_service);
  }
  void UpdateChannelArguments(grpc::ChannelArguments* args) override {
    // The server takes ownership of the interface and uses it instead of
    // creating its default health service.
    args->SetPointer(grpc::kHealthCheckServiceInterfaceArg, new BoardHealthInterface(*g_board));
  }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer*) override {}
  void ChangeArguments(const std::string&, void*) override {}
};

std::unique_ptr<grpc::ServerBuilderPlugin> CreateHealthPlugin() {
  return std::make_unique<HealthPlugin>();
}

}  // namespace

void InstallHealthService(std::shared_ptr<HealthBoard> board) {
  KUDOS_CHECK(g_board == nullptr, "the health service is installed once per process");
  KUDOS_CHECK(board != nullptr, "the health service reads a board");
  // Process lifetime: servers may outlive any owner here.
  g_board = new std::shared_ptr<HealthBoard>(board);
  g_service = new HealthService(std::move(board));
  grpc::ServerBuilder::InternalAddPluginFactory(&CreateHealthPlugin);
}

ConsumerHealthMonitor::ConsumerHealthMonitor(
    std::shared_ptr<HealthBoard> board, std::function<std::chrono::milliseconds()> since_progress,
    std::chrono::milliseconds stall, std::chrono::milliseconds period)
    : board_(std::move(board)),
      since_progress_(std::move(since_progress)),
      stall_(stall),
      period_(period) {
  KUDOS_CHECK(stall_.count() > 0 && period_.count() > 0, "the monitor's periods are positive");
  thread_ = std::thread([this] { Run(); });
}

ConsumerHealthMonitor::~ConsumerHealthMonitor() { Stop(); }

void ConsumerHealthMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConsumerHealthMonitor::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    board_->SetConsumer(since_progress_() <= stall_);
    wake_.wait_for(lock, period_, [this] { return stop_; });
  }
}

}  // namespace leaderboard
