// Test harness: real processes on loopback. A redis-server on a free port
// with its data in a temporary folder, and the real service binaries, each
// started, stopped and restarted by the test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "tests/harness/loopback.h"

namespace harness {

// A child process; killed when destroyed.
class Process {
 public:
  Process(std::string binary, std::vector<std::string> args,
          std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void Start();
  // SIGTERM, then SIGKILL after the grace period.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  // SIGKILL: a crash.
  void Kill();
  bool running() const { return pid_ > 0; }

 private:
  std::string binary_;
  std::vector<std::string> args_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
};

class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void Restart();

 private:
  int port_;
  std::string dir_;
  Process process_;
};

// One service binary listening on a free port. Started without the API rate
// limit nor stream cap (env RATE_LIMIT_*_RPS=0, MAX_STREAMS_PER_PERSON=0); pass
// --rate_limit_* / --max_streams_per_person flags to test them.
class Service {
 public:
  Service(const std::string& binary, const std::string& redis_address,
          std::vector<std::string> extra_args = {});
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void Start();
  void Stop() { process_.Stop(); }
  void Kill() { process_.Kill(); }
  void Restart() {
    process_.Stop();
    Start();
  }

 private:
  int port_;
  Process process_;
};

}  // namespace harness
