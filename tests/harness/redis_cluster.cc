#include "tests/harness/redis_cluster.h"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/redis/cluster_slots.h"
#include "tests/harness/loopback.h"

namespace harness {
namespace {

using common::redis::Reply;

std::string MakeTempDir() {
  char pattern[] = "/tmp/kudos-test-cluster-XXXXXX";
  char* dir = mkdtemp(pattern);
  if (dir == nullptr) throw std::runtime_error("mkdtemp failed");
  return dir;
}

// "start-end owner" ranges of CLUSTER SLOTS, as one comparable string.
std::string SlotMapOf(const Reply& slots) {
  std::vector<std::string> ranges;
  for (const Reply& range : slots.elements) {
    if (range.elements.size() < 3) continue;
    ranges.push_back(absl::StrCat(range.elements[0].integer, "-", range.elements[1].integer, "@",
                                  range.elements[2].elements[1].integer));
  }
  std::sort(ranges.begin(), ranges.end());
  return absl::StrJoin(ranges, ",");
}

}  // namespace

RedisCluster::RedisCluster() : RedisCluster(Options{}) {}

RedisCluster::RedisCluster(Options options) : options_(std::move(options)) {
  const int total = options_.primaries * (1 + options_.replicas_per_primary);
  // Client and bus ports drawn at once, so no node's bus port is another's port.
  const std::vector<int> ports = FreePorts(2 * total);
  for (int i = 0; i < total; ++i) {
    Node node;
    node.port = ports[2 * i];
    node.bus_port = ports[2 * i + 1];
    node.dir = MakeTempDir();
    nodes_.push_back(std::move(node));
  }
  for (Node& node : nodes_) StartNode(node);
  std::vector<std::string> args = {"--cluster", "create"};
  for (int i = 0; i < total; ++i) args.push_back(address(i));
  args.insert(args.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_primary),
                           "--cluster-yes"});
  Process create(REDIS_CLI_BINARY, args);
  create.set_output_file(nodes_[0].dir + "/create.log");
  create.Start();
  std::optional<int> exit = create.WaitForExit(std::chrono::seconds(60));
  if (!exit.has_value() || *exit != 0) {
    throw std::runtime_error("redis-cli --cluster create failed; see " + nodes_[0].dir +
                             "/create.log");
  }
  if (!WaitUntilStable(std::chrono::seconds(60))) {
    throw std::runtime_error("the redis cluster did not reach cluster_state:ok");
  }
}

RedisCluster::~RedisCluster() {
  for (Node& node : nodes_) {
    if (node.paused && node.pid > 0) kill(node.pid, SIGCONT);
    node.process.reset();  // SIGTERM, then SIGKILL
    std::string command = "rm -rf '" + node.dir + "'";
    if (std::system(command.c_str()) != 0) std::perror("rm");
  }
}

void RedisCluster::StartNode(Node& node) {
  std::vector<std::string> args = {
      REDIS_PLATFORM_CONF,
      "--port", std::to_string(node.port),
      "--cluster-port", std::to_string(node.bus_port),
      "--bind", "127.0.0.1",
      "--cluster-enabled", "yes",
      "--cluster-config-file", node.dir + "/nodes.conf",
      "--cluster-node-timeout", std::to_string(options_.node_timeout_ms),
      "--dir", node.dir,
      "--save", "",
      "--appendonly", "no",
      "--daemonize", "no",
      "--loglevel", "warning",
      "--logfile", node.dir + "/redis.log"};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  node.process = std::make_unique<Process>(REDIS_SERVER_BINARY, args);
  node.process->Start();
  if (!WaitForPort(node.port, std::chrono::seconds(10))) {
    throw std::runtime_error("redis-server (cluster node) did not start");
  }
  node.paused = false;
  common::redis::Endpoint endpoint;
  endpoint.port = node.port;
  common::redis::Connection connection(endpoint, std::chrono::seconds(5));
  absl::StatusOr<Reply> info = connection.Run({"INFO", "server"});
  if (!info.ok()) throw std::runtime_error("cannot read a cluster node's INFO");
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    if (absl::ConsumePrefix(&line, "process_id:")) {
      int pid = -1;
      if (absl::SimpleAtoi(line, &pid)) node.pid = pid;
    }
  }
}

int RedisCluster::port(int node) const { return nodes_.at(node).port; }

std::string RedisCluster::address(int node) const {
  return "127.0.0.1:" + std::to_string(port(node));
}

std::vector<std::string> RedisCluster::addresses() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(address(i));
  return all;
}

std::string RedisCluster::seeds() const { return absl::StrJoin(addresses(), ","); }

absl::StatusOr<Reply> RedisCluster::Command(int node, const common::redis::Command& command) {
  common::redis::Endpoint endpoint;
  endpoint.port = port(node);
  common::redis::Connection connection(endpoint, std::chrono::seconds(10));
  return connection.Run(command);
}

int RedisCluster::IndexOfPort(int port) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i].port == port) return i;
  }
  return -1;
}

int RedisCluster::PrimaryOfSlot(int slot, int asked_node) {
  absl::StatusOr<Reply> slots = Command(asked_node, {"CLUSTER", "SLOTS"});
  if (!slots.ok()) throw std::runtime_error("CLUSTER SLOTS failed");
  for (const Reply& range : slots->elements) {
    if (range.elements.size() >= 3 && range.elements[0].integer <= slot &&
        slot <= range.elements[1].integer) {
      return IndexOfPort(static_cast<int>(range.elements[2].elements[1].integer));
    }
  }
  return -1;
}

std::map<int, std::string> RedisCluster::OneNamePerPrimary(const std::string& prefix) {
  std::map<int, std::string> names;
  const int primaries = options_.primaries;
  for (int i = 0; static_cast<int>(names.size()) < primaries && i < 1000; ++i) {
    std::string name = prefix + std::to_string(i);
    names.emplace(PrimaryOfSlot(common::redis::KeySlot(name)), name);
  }
  return names;
}

std::string RedisCluster::NodeId(int node) {
  absl::StatusOr<Reply> id = Command(node, {"CLUSTER", "MYID"});
  if (!id.ok()) throw std::runtime_error("CLUSTER MYID failed");
  return id->str;
}

void RedisCluster::Kill(int node) {
  nodes_.at(node).process->Kill();
  nodes_[node].paused = false;
}

void RedisCluster::Pause(int node) {
  Node& n = nodes_.at(node);
  if (n.pid > 0 && kill(n.pid, SIGSTOP) == 0) n.paused = true;
}

void RedisCluster::Resume(int node) {
  Node& n = nodes_.at(node);
  if (n.pid > 0 && kill(n.pid, SIGCONT) == 0) n.paused = false;
}

void RedisCluster::Restart(int node) {
  Node& n = nodes_.at(node);
  n.process->Kill();
  StartNode(n);
}

bool RedisCluster::running(int node) const { return nodes_.at(node).process->running(); }

void RedisCluster::BeginSlotMigration(int slot, int to) {
  int from = PrimaryOfSlot(slot);
  if (from < 0 || from == to) throw std::runtime_error("slot migration: bad source or target");
  std::string from_id = NodeId(from);
  std::string to_id = NodeId(to);
  std::string s = std::to_string(slot);
  if (!Command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}).ok() ||
      !Command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}).ok()) {
    throw std::runtime_error("CLUSTER SETSLOT IMPORTING/MIGRATING failed");
  }
  migrating_slot_ = slot;
  migrating_from_ = from;
  migrating_to_ = to;
}

// For a BUSYKEY: which of `keys` the target already holds (written there
// through ASK while the source still had them).
std::string RedisCluster::KeysOnBothSides(int target, const Reply& keys) {
  std::vector<std::string> both;
  for (const Reply& key : keys.elements) {
    common::redis::Endpoint endpoint;
    endpoint.port = port(target);
    common::redis::Connection connection(endpoint, std::chrono::seconds(10));
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies =
        connection.Pipeline({{"ASKING"}, {"EXISTS", key.str}});
    if (replies.ok() && replies->size() == 2 && (*replies)[1].ok() && (*replies)[1]->integer == 1) {
      both.push_back(key.str);
    }
  }
  return both.empty() ? "" : "; on both source and target: " + absl::StrJoin(both, ", ");
}

void RedisCluster::FinishSlotMigration(int slot) {
  if (slot != migrating_slot_) throw std::runtime_error("slot migration: not begun");
  std::string s = std::to_string(slot);
  // Bounded: a source in MIGRATING state creates no new key of the slot
  // (ASK sends them to the target), so each batch shrinks what is left.
  for (int batch = 0;; ++batch) {
    if (batch == 100000) throw std::runtime_error("slot migration: keys keep appearing");
    absl::StatusOr<Reply> keys = Command(migrating_from_, {"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (!keys.ok()) throw std::runtime_error("CLUSTER GETKEYSINSLOT failed");
    if (keys->elements.empty()) break;
    common::redis::Command migrate = {"MIGRATE", "127.0.0.1", std::to_string(port(migrating_to_)),
                                      "", "0", "10000", "KEYS"};
    for (const Reply& key : keys->elements) migrate.push_back(key.str);
    absl::StatusOr<Reply> moved = Command(migrating_from_, migrate);
    if (!moved.ok()) {
      throw std::runtime_error("MIGRATE failed: " + std::string(moved.status().message()) +
                               KeysOnBothSides(migrating_to_, *keys));
    }
  }
  std::string to_id = NodeId(migrating_to_);
  // The target first, then the source, then everyone else (as redis-cli does).
  std::vector<int> order = {migrating_to_, migrating_from_};
  for (int i = 0; i < options_.primaries; ++i) {
    if (i != migrating_to_ && i != migrating_from_ && running(i)) order.push_back(i);
  }
  for (int node : order) {
    absl::StatusOr<Reply> set = Command(node, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
    if (!set.ok()) {
      throw std::runtime_error("CLUSTER SETSLOT NODE failed: " +
                               std::string(set.status().message()));
    }
  }
  migrating_slot_ = migrating_from_ = migrating_to_ = -1;
}

bool RedisCluster::WaitUntilStable(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool stable = true;
    std::string reference;
    for (int i = 0; i < size() && stable; ++i) {
      if (!running(i) || nodes_[i].paused) continue;
      absl::StatusOr<Reply> info = Command(i, {"CLUSTER", "INFO"});
      absl::StatusOr<Reply> slots = Command(i, {"CLUSTER", "SLOTS"});
      if (!info.ok() || !slots.ok() || !absl::StrContains(info->str, "cluster_state:ok") ||
          !absl::StrContains(info->str, "cluster_slots_ok:16384") ||
          !absl::StrContains(info->str, absl::StrCat("cluster_known_nodes:", size()))) {
        stable = false;
        break;
      }
      std::string map = SlotMapOf(*slots);
      if (reference.empty()) {
        reference = map;
      } else if (map != reference) {
        stable = false;
      }
    }
    if (stable) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace harness
