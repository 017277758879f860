// Issue 14 on a real 3-primary Redis Cluster, through the real binaries:
// - "Done when": orgs whose slots sit on three different primaries are each
//   seeded with kudosctl, send a kudos and see it ranked;
// - fault tests, each during a bounded SendKudos load whose client retries
//   a failed call with the same request id: a slot migration of the org's
//   slot, and a primary failover (kill -9 of the org's primary, one replica
//   per primary). No acknowledged kudos lost, none counted twice (ledger
//   transfers and the feed against what was acknowledged), VerifyLedger
//   clean, boards equal to the acknowledged kudos and to a rebuild. Each
//   prints one CLUSTER-FIGURES line (sent, acknowledged, lost, duplicated,
//   the unavailability window) for the closing note.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "common/redis/cluster_slots.h"
#include "tests/cluster/cluster_platform.h"
#include "tests/harness/eventually.h"
#include "tests/harness/tokens.h"

namespace cluster_test {
namespace {

using namespace std::chrono_literals;
using common::redis::KeySlot;
using harness::Context;
using harness::Eventually;
using harness::MintToken;

std::string Admin(const std::string& org) { return MintToken(org, "root", {"admin"}); }

TEST(ClusterDoneWhen, OrgsOnThreePrimaries_AreEachSeededWithKudosctlSendAKudosAndSeeItRanked) {
  Platform platform;
  for (int primary = 0; primary < 3; ++primary) {
    const std::string org = OrgOnPrimary(platform.cluster(), primary, "team");
    SCOPED_TRACE("org " + org + " on primary " + std::to_string(primary));
    CtlResult seeded = platform.Kudosctl(org, {"seed"});
    ASSERT_EQ(seeded.exit_code, 0) << seeded.output;
    CtlResult sent = platform.Kudosctl(
        org, {"send", "--as=alice", "--to=bob", "--points=5", "--values=teamwork",
              "--message=Thanks for the on-time delivery", "--request_id=done-when-1"});
    ASSERT_EQ(sent.exit_code, 0) << sent.output;
    EXPECT_TRUE(absl::StrContains(sent.output, "alice -> bob (5 points each)")) << sent.output;
    CtlResult board;
    bool ranked = Eventually(
        [&] {
          board = platform.Kudosctl(org, {"leaderboard", "--as=alice", "--window=all_time"});
          return board.exit_code == 0 && absl::StrContains(board.output, "#1  Bob Chen (bob)  5");
        },
        60s);
    EXPECT_TRUE(ranked) << board.output;
    CtlResult verified = platform.Kudosctl(org, {"verify"});
    EXPECT_EQ(verified.exit_code, 0) << verified.output;
    EXPECT_TRUE(absl::StrContains(verified.output, "': consistent, ")) << verified.output;
    // The org's keys live on that primary, in the org's slot.
    absl::StatusOr<common::redis::Reply> keys = platform.cluster().Command(
        primary, {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(KeySlot(org))});
    ASSERT_TRUE(keys.ok()) << keys.status();
    EXPECT_GT(keys->integer, 0);
  }
}

// Seeds `org` with kudosctl and raises its limits out of the load's way.
void SeedForLoad(Platform& platform, const std::string& org) {
  CtlResult seeded = platform.Kudosctl(org, {"seed"});
  ASSERT_EQ(seeded.exit_code, 0) << seeded.output;
  ASSERT_NO_THROW(RaiseLimits(platform, org));
}

// Everything the fault tests check once the load is over.
void ExpectNothingLostOrCountedTwice(Platform& platform, const std::string& org,
                                     const std::string& name, const LoadResult& load) {
  Audit audit = AuditLedgerAndFeed(platform, org, load.acknowledged);
  const int64_t window_ms = UnavailabilityWindowMs(load.attempts);
  PrintFigures(name, load, audit, window_ms);
  EXPECT_TRUE(load.unacknowledged.empty())
      << load.unacknowledged.size() << " requests never acknowledged, e.g. "
      << load.unacknowledged.front();
  EXPECT_EQ(audit.lost, 0);
  EXPECT_EQ(audit.duplicated, 0);
  for (const std::string& detail : audit.details) ADD_FAILURE() << detail;
  EXPECT_GE(window_ms, 0) << "the load never succeeded again after its first failure";

  ledger::v1::VerifyLedgerResponse verify;
  grpc::Status verified =
      platform.ledger().VerifyLedger(Context(Admin(org), 30s).get(), {}, &verify);
  ASSERT_TRUE(verified.ok()) << verified.error_message();
  EXPECT_TRUE(verify.consistent()) << verify.DebugString();

  const Boards expected = ExpectedBoards(load.acknowledged);
  Boards served;
  EXPECT_TRUE(Eventually([&] { return ReadBoards(platform, org, &served) && served == expected; },
                         60s))
      << "expected\n" << Show(expected) << "served\n" << Show(served);
  leaderboard::v1::RebuildProjectionsResponse rebuilt;
  grpc::Status rebuild =
      platform.leaderboard().RebuildProjections(Context(Admin(org), 60s).get(), {}, &rebuilt);
  ASSERT_TRUE(rebuild.ok()) << rebuild.error_message();
  ASSERT_TRUE(ReadBoards(platform, org, &served));
  EXPECT_EQ(served, expected) << "after a rebuild\n" << Show(served);
}

// The org's slot moves from its primary to another one in the middle of the
// load, as `redis-cli --cluster reshard` moves it: half-moved first (source
// MIGRATING, target IMPORTING), held there while every load thread makes a
// couple of attempts, then every key MIGRATEd in batches and the slot given
// to the target. Every service script declares every key it touches (the
// Script guard enforces it), so Redis never runs one where only part of the
// org's keys are: it answers ASK or TRYAGAIN, which the Redis clients retry
// within the call's deadline and the load's client retries past it. The
// window printed includes the deliberate hold in the half-moved state.
TEST(ClusterFaults, SlotMigrationDuringLoad_LosesNoAcknowledgedKudosAndCountsNoneTwice) {
  Platform platform;
  const std::string org = OrgOnPrimary(platform.cluster(), 1, "moving");
  ASSERT_NO_FATAL_FAILURE(SeedForLoad(platform, org));
  const int slot = KeySlot(org);
  const int target = 2;

  std::atomic<int> answered{0};
  LoadOptions options;
  options.org = org;
  options.tag = "migrate";
  std::string fault_error;
  std::thread fault([&] {
    try {
      Eventually([&] { return answered.load() >= 40; }, 60s);
      platform.cluster().BeginSlotMigration(slot, target);
      const int begun_at = answered.load();
      Eventually([&] { return answered.load() >= begun_at + 2 * options.threads; }, 60s);
      platform.cluster().FinishSlotMigration(slot);
    } catch (const std::exception& e) {
      fault_error = e.what();
    }
  });
  LoadResult load = RunLoad(platform, options, &answered);
  fault.join();
  ASSERT_TRUE(fault_error.empty()) << fault_error;
  for (int node = 0; node < 3; ++node) {
    EXPECT_EQ(platform.cluster().PrimaryOfSlot(slot, node), target) << "as node " << node << " sees it";
  }
  // Nothing was written behind the migration's back on the old primary.
  absl::StatusOr<common::redis::Reply> left =
      platform.cluster().Command(1, {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->integer, 0) << "keys of the moved slot left on its old primary";
  ExpectNothingLostOrCountedTwice(platform, org, "slot_migration", load);
}

// kill -9 of the org's primary in the middle of the load; its replica is
// promoted (cluster-node-timeout 3 s), then the killed node is started again
// and rejoins as the new primary's replica, as an operator would restart it.
// The ledger runs with REDIS_WAIT_REPLICAS=1 (docs/cluster.md): a transfer is
// acknowledged only once the replica has it, so the promotion cannot drop it.
TEST(ClusterFaults, PrimaryKilledDuringLoad_LosesNoAcknowledgedKudosAndCountsNoneTwice) {
  PlatformOptions platform_options;
  platform_options.replicas_per_primary = 1;
  // A generous WAIT timeout: this machine is shared and noisy.
  platform_options.ledger_env = {{"REDIS_WAIT_REPLICAS", "1"}, {"REDIS_WAIT_TIMEOUT_MS", "2000"}};
  Platform platform(platform_options);
  const int primary = 1;
  const std::string org = OrgOnPrimary(platform.cluster(), primary, "failing");
  ASSERT_NO_FATAL_FAILURE(SeedForLoad(platform, org));
  const int slot = KeySlot(org);

  std::atomic<int> answered{0};
  LoadOptions options;
  options.org = org;
  options.tag = "failover";
  std::string fault_error;
  int promoted = -1;
  std::thread fault([&] {
    try {
      Eventually([&] { return answered.load() >= 60; }, 60s);
      platform.cluster().Kill(primary);
      Eventually(
          [&] {
            promoted = platform.cluster().PrimaryOfSlot(slot, 0);
            return promoted >= 0 && promoted != primary;
          },
          60s);
      platform.cluster().Restart(primary);
      if (!platform.cluster().WaitUntilStable(60s)) fault_error = "not stable after the restart";
    } catch (const std::exception& e) {
      fault_error = e.what();
    }
  });
  LoadResult load = RunLoad(platform, options, &answered);
  fault.join();
  ASSERT_TRUE(fault_error.empty()) << fault_error;
  EXPECT_NE(promoted, primary) << "the replica was not promoted";
  EXPECT_GE(promoted, 3) << "the first three nodes are the original primaries";
  ExpectNothingLostOrCountedTwice(platform, org, "primary_failover", load);
}

}  // namespace
}  // namespace cluster_test
