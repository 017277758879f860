// A closed-loop (or paced) load generator over gRPC's async callback API.
//
// `concurrency` slots each keep one call in flight: when a call completes
// its slot starts the next one from the completion callback (closed loop),
// or, with `rate` > 0, a pacer thread starts call i at t0 + i / rate on a
// free slot (open loop capped by the slots). Bounded in time (`duration_s`,
// then at most `drain_timeout_s` for calls in flight) and in count
// (`max_requests`). Calls completing inside [warmup, duration] are counted:
// throughput, latency percentiles, errors by status code.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bench {

struct LoadOptions {
  std::string name;
  int concurrency = 32;
  double duration_s = 10;
  double warmup_s = 1;
  // 0: no count bound. Counts every call started, warm-up included.
  int64_t max_requests = 0;
  // > 0: paced at this many calls per second (at most `concurrency` in flight).
  double rate = 0;
  double drain_timeout_s = 10;
};

struct LoadResult {
  std::string name;
  int concurrency = 0;
  double rate = 0;
  double seconds = 0;  // the measured window
  int64_t started = 0;
  int64_t ok = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_code;
  std::string first_error;
  // Paced runs: calls that found no free slot at their scheduled time.
  int64_t late = 0;
  bool drained = true;
  double throughput = 0;  // ok calls per second
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

// Completes one call: must be called exactly once, from any thread.
using Done = std::function<void(const grpc::Status&)>;
// Starts call number `seq` for `slot` (0..concurrency-1). Every call must
// carry a deadline so draining is bounded.
using StartFn = std::function<void(int slot, int64_t seq, Done done)>;

LoadResult RunLoad(const LoadOptions& options, StartFn start);

// Latency percentiles of raw samples (microseconds).
struct Percentiles {
  int64_t count = 0;
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};
Percentiles ComputePercentiles(std::vector<uint32_t> samples_us);

// `n` channels to one address, each its own TCP connection.
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::string& address, int n);

// "DEADLINE_EXCEEDED", ...
std::string CodeName(grpc::StatusCode code);

// The result as one JSON object.
std::string ToJson(const LoadResult& result);

// A deadline `seconds` from now.
inline std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

}  // namespace bench
