#include "bench/bench_cluster.h"

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bench {

LocalCluster::LocalCluster(const std::string& redis_server, const std::string& redis_cli,
                           const std::string& redis_config,
                           const std::string& dir, int primaries, double ready_timeout_s) {
  if (primaries < 3) throw std::runtime_error("a Redis Cluster needs at least 3 primaries");
  std::vector<std::string> addresses;
  for (int i = 0; i < primaries; ++i) {
    const int port = FreePort();
    // The bus port defaults to port + 10000, past 65535 for high free ports.
    const int bus_port = FreePort();
    const std::string node_dir = absl::StrCat(dir, "/node", i);
    std::system(("mkdir -p '" + node_dir + "' && rm -f '" + node_dir + "'/*").c_str());
    ports_.push_back(port);
    std::vector<std::string> args = RedisServerArgs(
        redis_config, {"--port", absl::StrCat(port), "--bind", "127.0.0.1",
                       // Relative to --dir (redis-server changes into it first).
                       "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-port", absl::StrCat(bus_port), "--cluster-node-timeout", "5000",
                       "--dir", node_dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                       "--loglevel", "warning"});
    nodes_.push_back(std::make_unique<Child>(redis_server, args, absl::StrCat(dir, "/node", i, ".log")));
    if (!WaitForPort(port, std::chrono::seconds(10))) {
      throw std::runtime_error(absl::StrCat("cluster node ", i, " did not start; see ", dir));
    }
    addresses.push_back(absl::StrCat("127.0.0.1:", port));
  }
  // Addresses and paths are ours (numbers and the bench's out dir).
  const std::string create = absl::StrCat("'", redis_cli, "' --cluster create ",
                                          absl::StrJoin(addresses, " "), " --cluster-yes >> '",
                                          dir, "/create.log' 2>&1");
  if (std::system(create.c_str()) != 0) {
    throw std::runtime_error("redis-cli --cluster create failed; see " + dir + "/create.log");
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(ready_timeout_s * 1000));
  while (!Ready()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the cluster did not reach cluster_state:ok in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

bool LocalCluster::Ready() {
  for (int node = 0; node < size(); ++node) {
    Redis redis("127.0.0.1", ports_[node]);
    RedisReply info = redis.Run({"CLUSTER", "INFO"});
    if (!absl::StrContains(info.str, "cluster_state:ok") ||
        !absl::StrContains(info.str, "cluster_slots_ok:16384") ||
        !absl::StrContains(info.str, absl::StrCat("cluster_known_nodes:", size()))) {
      return false;
    }
  }
  return true;
}

std::string LocalCluster::seeds() const {
  std::vector<std::string> out;
  for (int port : ports_) out.push_back(absl::StrCat("127.0.0.1:", port));
  return absl::StrJoin(out, ",");
}

int LocalCluster::NodeOfSlot(int slot) {
  Redis redis("127.0.0.1", ports_[0]);
  RedisReply slots = redis.Run({"CLUSTER", "SLOTS"});
  // Each entry: first slot, last slot, [host, port, id], replicas...
  for (const RedisReply& range : slots.elements) {
    if (range.elements.size() < 3) continue;
    if (slot < range.elements[0].integer || slot > range.elements[1].integer) continue;
    const int port = static_cast<int>(range.elements[2].elements.at(1).integer);
    for (int node = 0; node < size(); ++node) {
      if (ports_[node] == port) return node;
    }
  }
  return -1;
}

}  // namespace bench
