// A local Redis Cluster for the bench's cluster scenario (issue 14, item 7):
// `primaries` redis-server nodes with --cluster-enabled on free loopback
// ports (data under `dir`, no RDB/AOF), joined with
// `redis-cli --cluster create ... --cluster-yes`, ready once every node says
// cluster_state:ok with all 16384 slots served. The test harness's
// RedisCluster (tests/harness) does the same, but links GoogleTest's main;
// the bench cannot. Stopped (SIGTERM) when destroyed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_env.h"

namespace bench {

class LocalCluster {
 public:
  // Throws std::runtime_error when a node does not start or the cluster does
  // not form within `ready_timeout_s`. `redis_config`: a config file each node
  // loads before its options (empty = none).
  LocalCluster(const std::string& redis_server, const std::string& redis_cli,
               const std::string& redis_config, const std::string& dir, int primaries,
               double ready_timeout_s = 60);
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  int size() const { return static_cast<int>(ports_.size()); }
  int port(int node) const { return ports_.at(node); }
  pid_t pid(int node) const { return nodes_.at(node)->pid(); }
  // "127.0.0.1:p1,127.0.0.1:p2,..." for the services' --redis.
  std::string seeds() const;
  // The node (index) serving `slot`, from CLUSTER SLOTS on node 0.
  int NodeOfSlot(int slot);

 private:
  bool Ready();

  std::vector<int> ports_;
  std::vector<std::unique_ptr<Child>> nodes_;
};

}  // namespace bench
