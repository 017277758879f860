#include "tests/harness/stall.h"

#include <grpcpp/generic/generic_stub.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/redis/redis_client.h"
#include "tests/harness/eventually.h"

namespace harness {
namespace {

// Whether every thread of `pid` is stopped ('T' in /proc/<pid>/task/<tid>/stat).
bool AllThreadsStopped(pid_t pid) {
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code error;
  int threads = 0;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // "tid (comm) S ...": the state follows the last ')' (comm may hold one).
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') {
      return false;
    }
    ++threads;
  }
  return !error && threads > 0;
}

}  // namespace

std::string HealthStatus(const std::string& address, std::chrono::milliseconds timeout) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::Slice empty_message("");  // HealthCheckRequest{} (a null buffer is not a message)
  grpc::ByteBuffer request(&empty_message, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return "error " + std::to_string(status.error_code()) + " " + status.error_message();
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "undecodable";
  std::string body;
  for (const grpc::Slice& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return body == std::string("\x08\x01", 2) ? "SERVING" : "not serving";
}

pid_t RedisPid(const RedisServer& redis) {
  common::redis::Endpoint endpoint;
  endpoint.port = redis.port();
  common::redis::Connection connection(endpoint, std::chrono::seconds(10));
  absl::StatusOr<common::redis::Reply> info = connection.Run({"INFO", "server"});
  if (!info.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    int64_t pid = 0;
    if (absl::ConsumePrefix(&line, "process_id:") && absl::SimpleAtoi(line, &pid)) {
      return static_cast<pid_t>(pid);
    }
  }
  return -1;
}

pid_t ServicePid(const std::string& address) {
  const std::string wanted = "--listen=" + address;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int64_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream file(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    for (absl::string_view arg : absl::StrSplit(cmdline, '\0')) {
      if (arg == wanted) return static_cast<pid_t>(pid);
    }
  }
  return -1;
}

bool FailedOnTime(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         status.error_code() == grpc::StatusCode::UNAVAILABLE;
}

Paused::Paused(pid_t pid) : pid_(pid) {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  stopped_ = Eventually([&] { return AllThreadsStopped(pid_); }, std::chrono::seconds(30));
}

void Paused::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
  pid_ = -1;
}

}  // namespace harness
