// The platform on a real Redis Cluster (issue 14, "Done when" and the fault
// tests): a 3-primary cluster on loopback (tests/harness/redis_cluster.h,
// optionally one replica per primary), the real ledger, kudos and
// leaderboard binaries pointed at its seed list, orgs picked by slot so they
// sit on chosen primaries, the project's kudosctl, and a bounded SendKudos
// load whose client retries each request with the same request id.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"

namespace cluster_test {

struct PlatformOptions {
  int replicas_per_primary = 0;
  // Extra environment of the ledger (e.g. REDIS_WAIT_REPLICAS).
  std::map<std::string, std::string> ledger_env = {};
};

// An org whose {org} slot the given primary serves (names "<prefix>N").
std::string OrgOnPrimary(harness::RedisCluster& cluster, int primary, const std::string& prefix);

// What kudosctl printed (stdout and stderr) and how it exited.
struct CtlResult {
  int exit_code = -1;
  std::string output;
};

class Platform {
 public:
  explicit Platform(PlatformOptions options = {});
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  harness::RedisCluster& cluster() { return *cluster_; }
  // kudosctl <args> --org=<org> with the services' addresses (dev tokens).
  CtlResult Kudosctl(const std::string& org, std::vector<std::string> args);

  kudos::v1::KudosService::Stub& kudos() { return *kudos_stub_; }
  kudos::v1::DirectoryService::Stub& directory() { return *directory_; }
  ledger::v1::LedgerService::Stub& ledger() { return *ledger_stub_; }
  leaderboard::v1::LeaderboardService::Stub& leaderboard() { return *board_stub_; }

 private:
  std::unique_ptr<harness::RedisCluster> cluster_;
  std::unique_ptr<harness::Service> ledger_service_, kudos_service_, board_service_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<ledger::v1::LedgerService::Stub> ledger_stub_;
  std::unique_ptr<leaderboard::v1::LeaderboardService::Stub> board_stub_;
  std::string ctl_dir_;
  int ctl_runs_ = 0;
};

// The people `kudosctl seed` creates.
const std::vector<std::string>& SeededPeople();

// One SendKudos attempt as the client saw it.
struct Attempt {
  std::chrono::steady_clock::time_point start, end;
  bool ok = false;
};

struct LoadOptions {
  std::string org;
  std::string tag;  // request ids are <tag>-<thread>-<i>
  int threads = 4;
  int per_thread = 60;
  // A request is retried (same request id) until acknowledged or this passes.
  std::chrono::milliseconds per_request_budget = std::chrono::seconds(60);
};

struct LoadResult {
  int sent = 0;  // distinct requests
  std::vector<kudos::v1::Kudos> acknowledged;
  std::vector<std::string> unacknowledged;  // request ids given up on
  std::vector<Attempt> attempts;
  int retries = 0;
};

// Givers are the first `threads` seeded people; recipients rotate over the
// others. `answered` counts finished attempts, so a test can inject a fault
// in the middle of the load.
LoadResult RunLoad(Platform& platform, const LoadOptions& options, std::atomic<int>* answered);

// From the first failed attempt to the end of the first successful attempt
// that began after it; 0 when nothing failed.
int64_t UnavailabilityWindowMs(const std::vector<Attempt>& attempts);

// What the platform holds against what was acknowledged.
struct Audit {
  int lost = 0;        // acknowledged kudos missing from the ledger or the feed
  int duplicated = 0;  // kudos counted more than once, or counted without an acknowledgement
  std::vector<std::string> details;
};
Audit AuditLedgerAndFeed(Platform& platform, const std::string& org,
                         const std::vector<kudos::v1::Kudos>& acknowledged);

// subject -> score of the org's all-time boards: "points", "received", "given".
using Boards = std::map<std::string, std::map<std::string, int64_t>>;
Boards ExpectedBoards(const std::vector<kudos::v1::Kudos>& acknowledged);
// False when a read failed.
bool ReadBoards(Platform& platform, const std::string& org, Boards* out);
std::string Show(const Boards& boards);

// Sets the org's limits out of the load's way (allowance, caps, rate).
void RaiseLimits(Platform& platform, const std::string& org);

// One line for the lead's report: "CLUSTER-FIGURES <name> sent=... ...".
void PrintFigures(const std::string& name, const LoadResult& load, const Audit& audit,
                  int64_t window_ms);

}  // namespace cluster_test
