// Stalling a process on purpose (SIGSTOP) and probing who still answers:
// the Redis-stall and stopped-ledger tests of the asynchronous services.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "tests/harness/process.h"

namespace harness {

// grpc.health.v1.Health/Check of the server at `address`, hand-encoded (no
// generated health stub in Debian): "SERVING", or what went wrong.
std::string HealthStatus(const std::string& address, std::chrono::milliseconds timeout);

// redis-server's pid, from INFO server (RedisServer keeps its pid private); -1 if unknown.
pid_t RedisPid(const RedisServer& redis);

// The pid of the service started with --listen=<address> (a child of this
// test: its port is unique on the machine while it runs); -1 if none.
pid_t ServicePid(const std::string& address);

// DEADLINE_EXCEEDED or UNAVAILABLE: a call that failed on time, not hung.
bool FailedOnTime(const grpc::Status& status);

// SIGSTOP, then waits until every thread of the process has really stopped:
// kill() only queues the signal, and until one of its threads takes it the
// others keep running (on a loaded machine, long enough to answer a call).
// SIGCONT on scope exit, so a failed assertion never leaves a process stopped.
class Paused {
 public:
  explicit Paused(pid_t pid);
  ~Paused() { Resume(); }
  Paused(const Paused&) = delete;
  Paused& operator=(const Paused&) = delete;
  // False if the process was still running 30 s after SIGSTOP.
  bool stopped() const { return stopped_; }
  void Resume();

 private:
  pid_t pid_;
  bool stopped_ = false;
};

}  // namespace harness
