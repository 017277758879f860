// Shared pieces of kudos_bench: child processes, a small synchronous hiredis
// connection with pipelining, JSON building, the summary table; loopback
// ports and development tokens come from tests/harness (test_support).
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "bench/loadgen.h"
#include "tests/harness/loopback.h"
#include "tests/harness/tokens.h"

namespace bench {

// ---------------------------------------------------------------- processes

using harness::FreePort;
using harness::WaitForPort;

// A child process with stdout and stderr appended to `log_path`; SIGTERM
// (then SIGKILL) when destroyed.
class Child {
 public:
  Child(std::string binary, std::vector<std::string> args, std::string log_path);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  void Stop();

 private:
  pid_t pid_ = -1;
};

// ---------------------------------------------------------------- redis

struct RedisReply {
  int type = 0;  // REDIS_REPLY_*
  long long integer = 0;
  std::string str;
  std::vector<RedisReply> elements;
  bool is_error() const { return type == REDIS_REPLY_ERROR; }
};

class Redis {
 public:
  Redis(const std::string& host, int port);
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  // Throws std::runtime_error on connection errors (not on error replies).
  RedisReply Run(const std::vector<std::string>& command);
  // Sends every command, then reads every reply.
  std::vector<RedisReply> Pipeline(const std::vector<std::vector<std::string>>& commands);
  // Lower level: queue a command / read one reply.
  void Append(const std::vector<std::string>& command);
  RedisReply Read();

  // INFO memory's used_memory.
  int64_t UsedMemory();

 private:
  redisContext* context_ = nullptr;
};

// ---------------------------------------------------------------- JSON

class Json {
 public:
  Json& Str(absl::string_view key, absl::string_view value);
  Json& Num(absl::string_view key, double value);
  Json& Int(absl::string_view key, int64_t value);
  Json& Bool(absl::string_view key, bool value);
  Json& Raw(absl::string_view key, absl::string_view json);
  std::string str() const;

 private:
  std::vector<std::string> fields_;
};

std::string Escape(absl::string_view s);

// ---------------------------------------------------------------- table

struct Row {
  std::string scenario;
  std::string metric;
  double value = 0;
  std::string unit;
  std::string floor;   // e.g. "floor_a 12000/s" or ""
  std::string ratio;   // e.g. "23.1%"
  std::string target;  // e.g. ">= 20% of floor_a"
  std::string verdict; // "met", "MISSED", "info"
};

// A redis-server's arguments: the config file `config` first (redis-server
// reads it, then the options; empty = none), then `options`.
std::vector<std::string> RedisServerArgs(const std::string& config,
                                         std::vector<std::string> options);

// ---------------------------------------------------------------- tokens

// Development tokens (HS256, dev secret), as the tests mint them.
using harness::MintToken;

// Adds the bearer token and a deadline.
void Authorize(grpc::ClientContext& context, const std::string& token, double timeout_s);

}  // namespace bench
