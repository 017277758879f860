#include "bench/loadgen.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out;
}

// Shared by the callbacks, so it outlives RunLoad if a drain times out.
class Runner : public std::enable_shared_from_this<Runner> {
 public:
  Runner(LoadOptions options, StartFn start)
      : options_(std::move(options)), start_(std::move(start)), slots_(options_.concurrency) {}

  LoadResult Run() {
    t0_ = Clock::now();
    measure_from_ = t0_ + Micros(options_.warmup_s);
    end_ = t0_ + Micros(options_.warmup_s + options_.duration_s);
    if (options_.rate > 0) {
      RunPaced();
    } else {
      active_ = options_.concurrency;
      for (int i = 0; i < options_.concurrency; ++i) Issue(i);
    }
    std::unique_lock<std::mutex> lock(mu_);
    bool drained = cv_.wait_until(lock, end_ + Micros(options_.drain_timeout_s),
                                  [&] { return active_ == 0; });
    // Calls still in flight after the drain are not looked at again.
    stopped_ = true;
    return Collect(drained);
  }

 private:
  struct Slot {
    Clock::time_point started;
    std::vector<uint32_t> latencies_us;
    int64_t ok = 0;
    int64_t errors = 0;
    std::map<std::string, int64_t> codes;
    std::string first_error;
  };

  static Clock::duration Micros(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
  }

  bool MayStart(Clock::time_point now) {
    if (now >= end_) return false;
    if (options_.max_requests > 0 && seq_.load() >= options_.max_requests) return false;
    return true;
  }

  // Closed loop: start the slot's next call or retire the slot.
  void Issue(int slot) {
    if (!MayStart(Clock::now())) {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) cv_.notify_all();
      return;
    }
    Start(slot);
  }

  void Start(int slot) {
    int64_t seq = seq_.fetch_add(1);
    slots_[slot].started = Clock::now();
    auto self = shared_from_this();
    start_(slot, seq, [self, slot](const grpc::Status& status) { self->OnDone(slot, status); });
  }

  void OnDone(int slot, const grpc::Status& status) {
    Clock::time_point now = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
    }
    Slot& s = slots_[slot];
    if (now >= measure_from_ && now <= end_) {
      if (status.ok()) {
        ++s.ok;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - s.started).count();
        s.latencies_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      } else {
        ++s.errors;
        ++s.codes[CodeName(status.error_code())];
        if (s.first_error.empty()) {
          s.first_error = absl::StrCat(CodeName(status.error_code()), ": ", status.error_message());
        }
      }
    }
    if (options_.rate > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(slot);
      --active_;
      cv_.notify_all();
    } else {
      Issue(slot);
    }
  }

  void RunPaced() {
    for (int i = 0; i < options_.concurrency; ++i) free_.push_back(i);
    const double interval_s = 1.0 / options_.rate;
    for (int64_t i = 0;; ++i) {
      Clock::time_point at = t0_ + Micros(interval_s * static_cast<double>(i));
      if (!MayStart(at)) break;
      std::this_thread::sleep_until(at);
      int slot;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (free_.empty()) {
          ++late_;
          cv_.wait_until(lock, end_, [&] { return !free_.empty(); });
          if (free_.empty()) break;
        }
        slot = free_.front();
        free_.pop_front();
        ++active_;
      }
      Start(slot);
    }
  }

  LoadResult Collect(bool drained) {
    LoadResult r;
    r.name = options_.name;
    r.concurrency = options_.concurrency;
    r.rate = options_.rate;
    r.seconds = options_.duration_s;
    r.started = seq_.load();
    r.late = late_;
    r.drained = drained;
    std::vector<uint32_t> all;
    for (Slot& s : slots_) {
      r.ok += s.ok;
      r.errors += s.errors;
      for (const auto& [code, n] : s.codes) r.errors_by_code[code] += n;
      if (r.first_error.empty()) r.first_error = s.first_error;
      all.insert(all.end(), s.latencies_us.begin(), s.latencies_us.end());
    }
    // A count-bounded run may end early: measure over the real window.
    Clock::time_point last = std::min(Clock::now(), end_);
    double window = std::chrono::duration<double>(last - measure_from_).count();
    if (options_.max_requests > 0 && window > 0) r.seconds = window;
    r.throughput = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
    Percentiles p = ComputePercentiles(std::move(all));
    r.mean_ms = p.mean_ms;
    r.p50_ms = p.p50_ms;
    r.p90_ms = p.p90_ms;
    r.p99_ms = p.p99_ms;
    r.p999_ms = p.p999_ms;
    r.max_ms = p.max_ms;
    return r;
  }

  LoadOptions options_;
  StartFn start_;
  std::vector<Slot> slots_;
  std::atomic<int64_t> seq_{0};
  Clock::time_point t0_, measure_from_, end_;
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
  bool stopped_ = false;
  std::deque<int> free_;
  int64_t late_ = 0;
};

}  // namespace

LoadResult RunLoad(const LoadOptions& options, StartFn start) {
  auto runner = std::make_shared<Runner>(options, std::move(start));
  return runner->Run();
}

Percentiles ComputePercentiles(std::vector<uint32_t> samples) {
  Percentiles p;
  p.count = static_cast<int64_t>(samples.size());
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
    return samples[std::min(i, samples.size() - 1)] / 1000.0;
  };
  double sum = 0;
  for (uint32_t s : samples) sum += s;
  p.mean_ms = sum / static_cast<double>(samples.size()) / 1000.0;
  p.p50_ms = at(0.50);
  p.p90_ms = at(0.90);
  p.p99_ms = at(0.99);
  p.p999_ms = at(0.999);
  p.max_ms = samples.back() / 1000.0;
  return p;
}

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::string& address, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // Distinct args and a local subchannel pool: one connection per channel.
    args.SetInt("bench.channel_index", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::UNKNOWN: return "UNKNOWN";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::string ToJson(const LoadResult& r) {
  std::vector<std::string> codes;
  for (const auto& [code, n] : r.errors_by_code) codes.push_back(absl::StrFormat("\"%s\":%d", code, n));
  return absl::StrFormat(
      "{\"name\":\"%s\",\"concurrency\":%d,\"rate\":%.1f,\"seconds\":%.2f,\"started\":%d,"
      "\"ok\":%d,\"errors\":%d,\"errors_by_code\":{%s},\"first_error\":\"%s\",\"late\":%d,"
      "\"drained\":%s,\"throughput\":%.1f,\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,"
      "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}",
      JsonEscape(r.name), r.concurrency, r.rate, r.seconds, r.started, r.ok, r.errors,
      absl::StrJoin(codes, ","), JsonEscape(r.first_error), r.late, r.drained ? "true" : "false",
      r.throughput, r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms);
}

}  // namespace bench
