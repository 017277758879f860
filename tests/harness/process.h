// Test harness: real processes on loopback. A redis-server on a free port
// with its data in a temporary folder, and the real service binaries, each
// started, stopped and restarted by the test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
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
  // Before Start: the child's stdout and stderr go to this file (appended).
  void set_output_file(std::string path) { output_file_ = std::move(path); }
  // The exit status once the process has exited on its own within
  // `timeout` (polled), or nullopt while it still runs (or died of a signal).
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);

 private:
  std::string binary_;
  std::vector<std::string> args_;
  std::map<std::string, std::string> env_;
  std::string output_file_;
  pid_t pid_ = -1;
};

// The environment every service started by the harness gets: the public
// development secrets allowed (KUDOS_DEV_INSECURE_DEFAULTS=1; services refuse
// to start without explicit keys otherwise), no API rate limit nor stream
// cap (RATE_LIMIT_*_RPS=0, MAX_STREAMS_PER_PERSON=0): load tests use one token.
std::map<std::string, std::string> DevServiceEnv();

class RedisCluster;

// The environment variable that runs the integration suites against a Redis
// Cluster: KUDOS_TEST_REDIS=cluster makes every RedisServer a 3-primary
// cluster on loopback (tests/CMakeLists.txt registers the suites a second
// time under the ctest label `cluster` with it). Unset or anything else: one
// standalone redis-server.
inline constexpr char kTestRedisEnv[] = "KUDOS_TEST_REDIS";
bool ClusterModeFromEnvironment();

class RedisServer {
 public:
  RedisServer();
  // With extra redis-server arguments, e.g. {"--requirepass", "secret"} or
  // an ACL user {"--user", "alice", "on", ">pw", "~*", "&*", "+@all"}.
  // In cluster mode they are given to every node (AUTH arguments are not
  // supported there: redis-cli --cluster create would need the password).
  explicit RedisServer(std::vector<std::string> extra_args);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Standalone: the server's port and "127.0.0.1:port". Cluster: those of
  // node 0, one seed from which every client (the services' --redis, the
  // blocking Pool, the AsyncClient) discovers the other nodes, so a test
  // that hands address() to a service or port() to a Pool runs unchanged.
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Every node's address, comma-separated (standalone: address()).
  std::string seeds() const;
  // The cluster behind this server, or nullptr when standalone.
  RedisCluster* cluster() { return cluster_.get(); }
  // Standalone: stop and start the server (no persistence: the data is gone).
  // Cluster: every node likewise, then waits until the cluster is ok again.
  void Restart();

 private:
  std::unique_ptr<RedisCluster> cluster_;
  int port_;
  std::string dir_;
  Process process_;
};

// One service binary listening on a free port, with DevServiceEnv(); pass
// --rate_limit_* / --max_streams_per_person flags to test the limits, and
// `env` entries to override (e.g. {KUDOS_DEV_INSECURE_DEFAULTS, "0"} plus
// explicit JWT_KEY / SERVICE_TOKEN_SECRET to run as in production).
class Service {
 public:
  Service(const std::string& binary, const std::string& redis_address,
          std::vector<std::string> extra_args = {},
          const std::map<std::string, std::string>& env = {});
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
