// The chart's native gRPC probes (`grpc: {port, service: ""}`) call
// grpc.health.v1.Health/Check on each gRPC binary: every one must serve it.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "tests/harness/process.h"

namespace {

using namespace std::chrono_literals;

// Health/Check of `service`, hand-encoded (request field 1 = the name; the
// response's field 1 = status, 1 SERVING): no generated health stub in Debian.
std::string HealthStatus(const std::string& address, const std::string& service) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string bytes = service.empty()
                          ? std::string()
                          : std::string(1, '\x0a') + static_cast<char>(service.size()) + service;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) return "error " + std::to_string(status.error_code());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "undecodable";
  std::string body;
  for (const grpc::Slice& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return body == std::string("\x08\x01", 2) ? "SERVING" : "not serving";
}

TEST(HealthProbeTest, EveryGrpcBinary_AnswersTheChartsGrpcProbeAsServing) {
  harness::RedisServer redis;
  for (const char* binary : {LEDGER_BINARY, KUDOS_BINARY, LEADERBOARD_BINARY}) {
    harness::Service service(binary, redis.address());
    EXPECT_EQ(HealthStatus(service.address(), ""), "SERVING") << binary;
  }
}

}  // namespace
