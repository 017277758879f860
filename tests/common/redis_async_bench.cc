// Micro-bench (not a test): N GETs with `depth` in flight through AsyncClient
// (one loop, one connection) versus Pool::Pipeline batches of `depth` on one
// connection and versus `depth` threads calling Pool::Run (pool of 16). Prints ops/s, client CPU µs per op (getrusage) and Redis CPU µs
// per op (INFO cpu). Usage: redis_async_bench 127.0.0.1:6379 [N] [depth] [loops]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/redis/async_client.h"

using namespace common::redis;
using Clock = std::chrono::steady_clock;

namespace {

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double RedisCpu(Connection& connection) {
  absl::StatusOr<Reply> info = connection.Run({"INFO", "cpu"});
  double total = 0;
  if (!info.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    double value = 0;
    if ((absl::ConsumePrefix(&line, "used_cpu_sys:") || absl::ConsumePrefix(&line, "used_cpu_user:")) &&
        absl::SimpleAtod(line, &value)) {
      total += value;
    }
  }
  return total;
}

struct Driver {
  AsyncClient* client = nullptr;
  int total = 0;
  std::atomic<int> issued{0};
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  std::promise<void> finished;
  void Next() {
    int i = issued.fetch_add(1);
    if (i >= total) return;
    client->Run({"GET", "bench:{k}" + std::to_string(i % 1000)}, DeadlineIn(std::chrono::seconds(30)),
                [this](absl::StatusOr<Reply> reply) {
                  if (!reply.ok()) failed.fetch_add(1);
                  if (done.fetch_add(1) + 1 == total) {
                    finished.set_value();
                  } else {
                    Next();
                  }
                });
  }
};

void Report(const char* name, int n, double seconds, double cpu, double redis_cpu) {
  std::printf("%-28s %8d ops  %7.3f s  %9.0f ops/s  client CPU %6.2f us/op  redis CPU %6.2f us/op\n",
              name, n, seconds, n / seconds, cpu * 1e6 / n, redis_cpu * 1e6 / n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s host:port [N=100000] [depth=64] [loops=1]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? std::atoi(argv[2]) : 100000;
  int depth = argc > 3 ? std::atoi(argv[3]) : 64;
  int loops = argc > 4 ? std::atoi(argv[4]) : 1;
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(argv[1]);
  if (!endpoint.ok()) return 2;
  Connection admin(*endpoint, std::chrono::seconds(5));
  for (int i = 0; i < 1000; ++i) {
    if (!admin.Run({"SET", "bench:{k}" + std::to_string(i), "value"}).ok()) return 1;
  }

  for (int round = 0; round < 2; ++round) {
    {
      PoolOptions options;
      options.endpoint = *endpoint;
      options.size = 1;
      Pool pool(options);
      double redis0 = RedisCpu(admin), cpu0 = CpuSeconds();
      auto t0 = Clock::now();
      int failed = 0;
      for (int i = 0; i < n; i += depth) {
        std::vector<Command> batch;
        for (int j = i; j < std::min(n, i + depth); ++j) {
          batch.push_back({"GET", "bench:{k}" + std::to_string(j % 1000)});
        }
        auto replies = pool.Pipeline(batch);
        if (!replies.ok()) ++failed;
      }
      double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      Report("Pool::Pipeline (batches)", n, seconds, CpuSeconds() - cpu0, RedisCpu(admin) - redis0);
      if (failed) std::printf("  %d batches failed\n", failed);
    }
    {
      // The services' pattern today: one blocking thread per call in flight,
      // a pool of 16 connections (--redis_pool_size default).
      PoolOptions options;
      options.endpoint = *endpoint;
      options.size = 16;
      Pool pool(options);
      std::atomic<int> next{0}, failed{0};
      double redis0 = RedisCpu(admin), cpu0 = CpuSeconds();
      auto t0 = Clock::now();
      std::vector<std::thread> threads;
      for (int t = 0; t < depth; ++t) {
        threads.emplace_back([&] {
          for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
            if (!pool.Run({"GET", "bench:{k}" + std::to_string(i % 1000)}).ok()) failed.fetch_add(1);
          }
        });
      }
      for (auto& thread : threads) thread.join();
      double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      Report("Pool::Run, threads, pool 16", n, seconds, CpuSeconds() - cpu0, RedisCpu(admin) - redis0);
      if (failed) std::printf("  %d calls failed\n", failed.load());
    }
    {
      absl::StatusOr<AsyncClientOptions> options = AsyncClientOptionsFor(argv[1]);
      options->loops = loops;
      AsyncClient client(*options);
      if (!client.RunSync({"PING"}, std::chrono::seconds(5)).ok()) return 1;
      Driver driver;
      driver.client = &client;
      driver.total = n;
      double redis0 = RedisCpu(admin), cpu0 = CpuSeconds();
      auto t0 = Clock::now();
      for (int i = 0; i < depth; ++i) driver.Next();
      driver.finished.get_future().wait();
      double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      Report("AsyncClient (in flight)", n, seconds, CpuSeconds() - cpu0, RedisCpu(admin) - redis0);
      if (driver.failed) std::printf("  %d calls failed\n", driver.failed.load());
      AsyncClient::Stats stats = client.stats();
      std::printf("  connects %llu, largest batch %llu\n",
                  static_cast<unsigned long long>(stats.connects),
                  static_cast<unsigned long long>(stats.largest_batch));
    }
  }
  return 0;
}
