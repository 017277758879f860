// RunServer (common/grpc/server.h) in this process, with a service whose
// stream handler holds its thread until released: the server's resource
// quota bounds the handler threads (issue #12 finding 6), and a request that
// does not parse is INVALID_ARGUMENT (finding 15).
#include "common/grpc/server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kudos/v1/kudos.grpc.pb.h"
#include "tests/harness/loopback.h"
#include "tests/harness/raw_call.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;

constexpr int kMaxThreads = 6;

// WatchFeed sends one message and holds its handler thread until released
// or cancelled; ListKudos answers at once.
class HoldingService : public kv1::KudosService::Service {
 public:
  grpc::Status WatchFeed(grpc::ServerContext* context, const kv1::WatchFeedRequest*,
                         grpc::ServerWriter<kv1::WatchFeedResponse>* writer) override {
    writer->Write(kv1::WatchFeedResponse());
    // Bounded: released by the test, a cancelled client, or 60 s.
    for (int i = 0; i < 6000 && !released_.load() && !context->IsCancelled(); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    return grpc::Status::OK;
  }
  grpc::Status ListKudos(grpc::ServerContext*, const kv1::ListKudosRequest*,
                         kv1::ListKudosResponse*) override {
    return grpc::Status::OK;
  }
  void Release() { released_.store(true); }

 private:
  std::atomic<bool> released_{false};
};

class GrpcServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Through the environment, as an operator would bound a deployment.
    setenv("GRPC_MAX_THREADS", std::to_string(kMaxThreads).c_str(), 1);
    service_ = new HoldingService();
    port_ = harness::FreePort();
    server_ = new std::thread([] {
      common::grpc_util::ServerOptions options;
      options.address = "127.0.0.1:" + std::to_string(port_);
      options.service_name = "grpc_server_test";
      options.services = {service_};
      options.shutdown_grace = 500ms;
      absl::Status status = common::grpc_util::RunServer(options);
      EXPECT_TRUE(status.ok()) << status;
    });
    ASSERT_TRUE(harness::WaitForPort(port_, 15s));
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    service_->Release();
    common::grpc_util::RequestShutdown();
    server_->join();
    delete server_;
    delete channel_;
    delete service_;
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + 30s);
    return context;
  }

  static grpc::Status ListKudos() {
    auto stub = kv1::KudosService::NewStub(*channel_);
    kv1::ListKudosResponse response;
    return stub->ListKudos(Context().get(), kv1::ListKudosRequest(), &response);
  }

  static HoldingService* service_;
  static int port_;
  static std::thread* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};
HoldingService* GrpcServerTest::service_ = nullptr;
int GrpcServerTest::port_ = 0;
std::thread* GrpcServerTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* GrpcServerTest::channel_ = nullptr;

struct OpenStream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<kv1::WatchFeedResponse>> reader;
};

TEST_F(GrpcServerTest, HandlerThreads_AreBoundedByTheResourceQuota) {
  auto stub = kv1::KudosService::NewStub(*channel_);
  std::vector<OpenStream> held;
  std::optional<grpc::Status> refusal;
  // Each accepted stream holds a thread; past the quota a call is refused.
  for (int i = 0; i < 4 * kMaxThreads && !refusal; ++i) {
    OpenStream stream{Context(), nullptr};
    stream.reader = stub->WatchFeed(stream.context.get(), kv1::WatchFeedRequest());
    kv1::WatchFeedResponse first;
    if (stream.reader->Read(&first)) {
      held.push_back(std::move(stream));
    } else {
      refusal = stream.reader->Finish();
    }
  }
  ASSERT_TRUE(refusal.has_value()) << held.size() << " streams held threads, none refused";
  EXPECT_EQ(refusal->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refusal->error_message();
  EXPECT_LT(static_cast<int>(held.size()), kMaxThreads);
  // Once the streams end, their threads serve calls again.
  for (OpenStream& stream : held) stream.context->TryCancel();
  for (OpenStream& stream : held) stream.reader->Finish();
  bool served = false;
  for (int i = 0; i < 300 && !served; ++i) {
    served = ListKudos().ok();
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served);
}

TEST_F(GrpcServerTest, UnparseableRequest_IsInvalidArgumentNotInternal) {
  auto context = Context();
  // ListKudosRequest.page_token (field 3) holding bytes that are not UTF-8.
  std::string bytes = std::string("\x1a\x03", 2) + std::string("\xff\xfe\xfd", 3);
  grpc::Status result =
      harness::RawUnaryCall(*channel_, context.get(), "/kudos.v1.KudosService/ListKudos", bytes);
  EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << result.error_message();
  EXPECT_NE(result.error_message().find("kudos.v1.ListKudosRequest.page_token"),
            std::string::npos)
      << result.error_message();
}

}  // namespace
