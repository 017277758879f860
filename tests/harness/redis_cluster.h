// Test harness: a real Redis Cluster on loopback. Three primaries (optionally
// one replica each) started with `redis-server --cluster-enabled yes`, joined
// with `redis-cli --cluster create ... --cluster-yes`, ready once every node
// says cluster_state:ok and serves all 16384 slots; stopped and its files
// removed when destroyed. Nodes can be killed (-9), paused (SIGSTOP) and
// resumed, and a slot migrated the way `redis-cli --cluster reshard` does it
// (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/redis/redis_client.h"
#include "tests/harness/process.h"

namespace harness {

class RedisCluster {
 public:
  struct Options {
    int primaries = 3;
    int replicas_per_primary = 0;
    // cluster-node-timeout: how long a silent node takes to be marked failed
    // (and, with no replica, the cluster to refuse every command: CLUSTERDOWN).
    int node_timeout_ms = 3000;
    // Added to every node's redis-server command line.
    std::vector<std::string> extra_args = {};
  };

  RedisCluster();
  explicit RedisCluster(Options options);
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Nodes are numbered 0..size()-1 in start order; after `create` the first
  // `primaries` are the primaries (slots 0-5460, 5461-10922, 10923-16383
  // for three), the rest their replicas.
  int size() const { return static_cast<int>(nodes_.size()); }
  int port(int node) const;
  std::string address(int node) const;
  std::vector<std::string> addresses() const;
  // "host:port,host:port,..." of every node, for --redis.
  std::string seeds() const;

  // One command on one node over a plain connection. Throws on I/O errors;
  // a Redis error reply is returned as the status.
  absl::StatusOr<common::redis::Reply> Command(int node, const common::redis::Command& command);

  // The node (index) that serves `slot` according to `asked_node`'s view.
  int PrimaryOfSlot(int slot, int asked_node = 0);
  // For each primary, the first name `prefix`0, `prefix`1, ... whose {hash
  // tag} slot it serves (at most 1,000 tried): orgs placed on every primary.
  std::map<int, std::string> OneNamePerPrimary(const std::string& prefix);
  std::string NodeId(int node);

  void Kill(int node);    // SIGKILL: a crash
  void Pause(int node);   // SIGSTOP: a stalled node
  void Resume(int node);  // SIGCONT
  void Restart(int node); // start a killed node again (same port and config)
  bool running(int node) const;

  // Slot migration from its current primary to `to`, as a reshard does it.
  // BeginSlotMigration leaves the slot half-moved (target IMPORTING, source
  // MIGRATING, no key moved): the source answers ASK for keys it lacks.
  void BeginSlotMigration(int slot, int to);
  // Moves the keys still on the source, then SETSLOT NODE on every primary.
  void FinishSlotMigration(int slot);
  void MigrateSlot(int slot, int to) {
    BeginSlotMigration(slot, to);
    FinishSlotMigration(slot);
  }

  // Every running node answers cluster_state:ok, serves all 16384 slots,
  // knows every node and maps every slot as node 0 does. False after `timeout`.
  bool WaitUntilStable(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  struct Node {
    int port;
    int bus_port;
    std::string dir;
    std::unique_ptr<Process> process;
    pid_t pid = -1;
    bool paused = false;
  };
  void StartNode(Node& node);
  std::string KeysOnBothSides(int target, const common::redis::Reply& keys);
  int IndexOfPort(int port) const;

  Options options_;
  std::vector<Node> nodes_;
  int migrating_slot_ = -1;
  int migrating_from_ = -1;
  int migrating_to_ = -1;
};

}  // namespace harness
