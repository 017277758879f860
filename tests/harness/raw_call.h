// A unary call with raw request bytes (grpc::GenericStub), for requests no
// generated stub can send: bytes that do not parse as the method's message.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace harness {

// The call's status, or DEADLINE_EXCEEDED "no answer" when none came within
// `wait` (give `context` a deadline shorter than that).
inline grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                                 grpc::ClientContext* context, const std::string& method,
                                 const std::string& bytes,
                                 std::chrono::milliseconds wait = std::chrono::seconds(60)) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable done_cv;
  std::optional<grpc::Status> result;
  stub.UnaryCall(context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) {
                   std::lock_guard<std::mutex> lock(mu);
                   result = std::move(status);
                   done_cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait_for(lock, wait, [&] { return result.has_value(); });
  return result.value_or(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer"));
}

}  // namespace harness
