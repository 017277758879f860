// The leaderboard's gRPC health service (grpc.health.v1.Health, Check) with
// one name more than the server's: kConsumerHealthService is SERVING while
// the consumer makes progress (issue 12, finding 8) and NOT_SERVING when
// entries wait and none was applied for the stall time. "" stays the
// server's own health: reads are served either way, so a probe of "" keeps
// the replica in rotation while an alert watches the consumer's name.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace leaderboard {

inline constexpr char kConsumerHealthService[] = "kudos.leaderboard.v1.Consumer";

// What the health service answers; set by the server (through gRPC's
// HealthCheckServiceInterface) and by the consumer monitor. Thread-safe.
class HealthBoard {
 public:
  void SetServer(bool serving);
  void SetConsumer(bool serving);
  // nullopt: a service name this server does not know (NOT_FOUND).
  std::optional<bool> Serving(const std::string& service) const;

 private:
  mutable std::mutex mu_;
  bool server_ = false;
  bool consumer_ = true;
};

// From now on, every gRPC server this process builds answers health checks
// from `board` instead of gRPC's default health service. Call before the
// server is built. (common::grpc_util::RunServer builds it without a hook
// for extra health names, hence a ServerBuilderPlugin.)
void InstallHealthService(std::shared_ptr<HealthBoard> board);

// Polls `since_progress` every `period` and marks the consumer NOT_SERVING
// once it exceeds `stall`.
class ConsumerHealthMonitor {
 public:
  ConsumerHealthMonitor(std::shared_ptr<HealthBoard> board,
                        std::function<std::chrono::milliseconds()> since_progress,
                        std::chrono::milliseconds stall,
                        std::chrono::milliseconds period = std::chrono::milliseconds(250));
  ~ConsumerHealthMonitor();
  void Stop();

 private:
  void Run();

  std::shared_ptr<HealthBoard> board_;
  std::function<std::chrono::milliseconds()> since_progress_;
  std::chrono::milliseconds stall_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace leaderboard
