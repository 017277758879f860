// AsyncClient on a real 3-primary Redis Cluster on loopback
// (tests/harness/redis_cluster.h): routing by the {org} hash tag through one
// seed, MOVED after a slot migration, ASK and TRYAGAIN during one, CROSSSLOT
// refused before sending. One cluster for the suite (it takes seconds to form).
#include <gtest/gtest.h>

#include <future>
#include <map>

#include "common/redis/async_client.h"
#include "common/redis/cluster_slots.h"
#include "tests/harness/eventually.h"
#include "tests/harness/redis_cluster.h"

namespace common::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new harness::RedisCluster();
    orgs_ = cluster_->OneNamePerPrimary("org");  // the slot of {org} decides
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Through one seed only: the client finds the other primaries itself.
  static AsyncClientOptions OneSeed() {
    absl::StatusOr<AsyncClientOptions> options = AsyncClientOptionsFor(cluster_->address(0));
    EXPECT_TRUE(options.ok());
    options->loops = 2;
    return *options;
  }

  static harness::RedisCluster* cluster_;
  static std::map<int, std::string> orgs_;  // primary -> an org whose slot it serves
};
harness::RedisCluster* RedisClusterTest::cluster_ = nullptr;
std::map<int, std::string> RedisClusterTest::orgs_;

TEST_F(RedisClusterTest, OrgsOnThreeDifferentPrimariesAreAllReachableThroughOneSeed) {
  ASSERT_EQ(orgs_.size(), 3u);
  AsyncClient client(OneSeed());
  EXPECT_EQ(client.mode(), AsyncClient::Mode::kCluster);
  Script add("add", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  for (const auto& [primary, org] : orgs_) {
    const std::string tag = "{" + org + "}";
    EXPECT_EQ(client.NodeForSlot(KeySlot(org)), cluster_->address(primary));
    absl::StatusOr<PipelineReplies> replies = client.PipelineSync(
        {{"SET", tag + ":name", org}, {"INCR", tag + ":n"}, {"GET", tag + ":name"}}, seconds(10));
    ASSERT_TRUE(replies.ok()) << replies.status();
    for (const auto& reply : *replies) ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ((*replies)[2]->str, org);
    absl::StatusOr<Reply> added = client.EvalShaSync(add, {tag + ":n"}, {"41"}, seconds(10));
    ASSERT_TRUE(added.ok()) << added.status();
    EXPECT_EQ(added->integer, 42);
    // The keys live on that primary (a plain connection to it reads them).
    absl::StatusOr<Reply> there = cluster_->Command(primary, {"GET", tag + ":name"});
    ASSERT_TRUE(there.ok()) << there.status();
    EXPECT_EQ(there->str, org);
  }
  AsyncClient::Stats stats = client.stats();
  EXPECT_EQ(stats.moved, 0u) << "routed by the slot map, not by redirects";
  EXPECT_EQ(stats.asked, 0u);
}

TEST_F(RedisClusterTest, KeysSpanningSlotsAreRefusedBeforeSending) {
  AsyncClient client(OneSeed());
  const std::string a = "{" + orgs_.begin()->second + "}";
  const std::string b = "{" + orgs_.rbegin()->second + "}";
  absl::StatusOr<PipelineReplies> pipeline =
      client.PipelineSync({{"SET", a + ":cross", "1"}, {"SET", b + ":cross", "1"}}, seconds(10));
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument) << pipeline.status();
  Script both("both", "redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[2], 1)");
  absl::StatusOr<Reply> script =
      client.EvalShaSync(both, {a + ":cross", b + ":cross"}, {}, seconds(10));
  EXPECT_EQ(script.status().code(), absl::StatusCode::kInvalidArgument) << script.status();
  absl::StatusOr<Reply> mget = client.RunSync({"MGET", a + ":cross", b + ":cross"}, seconds(10));
  EXPECT_EQ(mget.status().code(), absl::StatusCode::kInvalidArgument) << mget.status();
  // Nothing reached Redis: the first key was not written either.
  absl::StatusOr<Reply> written = client.RunSync({"EXISTS", a + ":cross"}, seconds(10));
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->integer, 0);
}

TEST_F(RedisClusterTest, MovedAfterASlotMigrationKeepsTheOrgsCallsWorking) {
  const int from = orgs_.begin()->first;
  const std::string org = orgs_.begin()->second;
  const std::string tag = "{" + org + "}";
  const int slot = KeySlot(org);
  const int to = (from + 1) % 3;
  AsyncClient client(OneSeed());
  AsyncClient stale(OneSeed());  // a second client that learns only by MOVED, in a MULTI
  ASSERT_TRUE(client.RunSync({"SET", tag + ":before", "1"}, seconds(10)).ok());
  ASSERT_TRUE(stale.RunSync({"GET", tag + ":before"}, seconds(10)).ok());
  cluster_->MigrateSlot(slot, to);

  absl::StatusOr<Reply> read = client.RunSync({"GET", tag + ":before"}, seconds(10));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->str, "1");
  EXPECT_GE(client.stats().moved, 1u);
  EXPECT_TRUE(harness::Eventually(
      [&] { return client.NodeForSlot(slot) == cluster_->address(to); }));
  uint64_t moved = client.stats().moved;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.RunSync({"INCR", tag + ":after"}, seconds(10)).ok());
  }
  EXPECT_EQ(client.stats().moved, moved) << "the map was refreshed: no more redirects";
  EXPECT_EQ(cluster_->Command(to, {"GET", tag + ":after"})->str, "10");

  // A transaction with a stale map: MULTI/EXEC discarded (EXECABORT), sent again whole.
  absl::StatusOr<PipelineReplies> tx = stale.PipelineSync(
      {{"MULTI"}, {"INCR", tag + ":tx"}, {"INCR", tag + ":tx"}, {"EXEC"}}, seconds(10));
  ASSERT_TRUE(tx.ok()) << tx.status();
  ASSERT_TRUE((*tx)[3].ok()) << (*tx)[3].status();
  EXPECT_EQ((*tx)[3]->elements[1].integer, 2);
  EXPECT_EQ(cluster_->Command(to, {"GET", tag + ":tx"})->str, "2") << "applied once";
  EXPECT_GE(stale.stats().moved, 1u);
}

TEST_F(RedisClusterTest, AskAndTryAgainDuringAMigration) {
  auto it = std::next(orgs_.begin());
  const int from = it->first;
  const std::string org = it->second;
  const std::string tag = "{" + org + "}";
  const int slot = KeySlot(org);
  const int to = (from + 1) % 3;
  AsyncClient client(OneSeed());
  ASSERT_TRUE(client.RunSync({"SET", tag + ":old", "o"}, seconds(10)).ok());
  cluster_->BeginSlotMigration(slot, to);

  // A key the source lacks: ASK, ASKING + the command on the target.
  ASSERT_TRUE(client.RunSync({"SET", tag + ":new", "n"}, seconds(10)).ok());
  EXPECT_GE(client.stats().asked, 1u);
  absl::StatusOr<Reply> new_key = client.RunSync({"GET", tag + ":new"}, seconds(10));
  ASSERT_TRUE(new_key.ok()) << new_key.status();
  EXPECT_EQ(new_key->str, "n");
  // A key the source still has: served there.
  EXPECT_EQ(client.RunSync({"GET", tag + ":old"}, seconds(10))->str, "o");
  // A pipeline over both: each command where its key is.
  absl::StatusOr<PipelineReplies> mixed = client.PipelineSync(
      {{"GET", tag + ":old"}, {"SET", tag + ":new2", "n2"}, {"GET", tag + ":new"}}, seconds(10));
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  for (const auto& reply : *mixed) ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*mixed)[0]->str, "o");
  EXPECT_EQ((*mixed)[2]->str, "n");
  // A script on a key only the target has: ASKING before SCRIPT LOAD's retry too.
  Script touch("touch", "return redis.call('INCR', KEYS[1])");
  absl::StatusOr<Reply> scripted = client.EvalShaSync(touch, {tag + ":new3"}, {}, seconds(10));
  ASSERT_TRUE(scripted.ok()) << scripted.status();
  EXPECT_EQ(scripted->integer, 1);

  // Keys split between source and target: TRYAGAIN until the migration ends,
  // retried within the call's deadline.
  std::promise<absl::StatusOr<Reply>> split;
  client.Run({"MGET", tag + ":old", tag + ":new"}, DeadlineIn(seconds(30)),
             [&split](absl::StatusOr<Reply> reply) { split.set_value(std::move(reply)); });
  EXPECT_TRUE(harness::Eventually([&] { return client.stats().retried >= 1; }));
  cluster_->FinishSlotMigration(slot);
  absl::StatusOr<Reply> both = split.get_future().get();
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->elements.size(), 2u);
  EXPECT_EQ(both->elements[0].str, "o");
  EXPECT_EQ(both->elements[1].str, "n");
  // After the migration every key is on the target and reachable (MOVED).
  for (const char* key : {":old", ":new", ":new2", ":new3"}) {
    absl::StatusOr<Reply> reply = client.RunSync({"EXISTS", tag + key}, seconds(10));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->integer, 1) << key;
    EXPECT_EQ(cluster_->Command(to, {"EXISTS", tag + key})->integer, 1) << key;
  }
}

TEST_F(RedisClusterTest, SeedListAndAPausedNodeFailOnlyItsOwnSlots) {
  absl::StatusOr<AsyncClientOptions> options = AsyncClientOptionsFor(cluster_->seeds());
  ASSERT_TRUE(options.ok());
  options->loops = 1;
  AsyncClient client(*options);
  ASSERT_EQ(client.mode(), AsyncClient::Mode::kCluster);
  const std::string paused_org = orgs_.rbegin()->second;
  const int paused = cluster_->PrimaryOfSlot(KeySlot(paused_org));
  std::string other_org;
  for (const auto& [primary, org] : orgs_) {
    if (cluster_->PrimaryOfSlot(KeySlot(org)) != paused) other_org = org;
  }
  ASSERT_FALSE(other_org.empty());
  ASSERT_TRUE(client.RunSync({"SET", "{" + paused_org + "}:k", "v"}, seconds(10)).ok());
  ASSERT_TRUE(client.RunSync({"SET", "{" + other_org + "}:k", "v"}, seconds(10)).ok());
  cluster_->Pause(paused);
  absl::StatusOr<Reply> stalled =
      client.RunSync({"GET", "{" + paused_org + "}:k"}, milliseconds(300));
  EXPECT_TRUE(absl::IsDeadlineExceeded(stalled.status()) || absl::IsUnavailable(stalled.status()))
      << stalled.status();
  // Another primary's org is not held up by the stalled node.
  absl::StatusOr<Reply> served = client.RunSync({"GET", "{" + other_org + "}:k"}, seconds(10));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->str, "v");
  cluster_->Resume(paused);
  EXPECT_TRUE(harness::Eventually([&] {
    absl::StatusOr<Reply> reply = client.RunSync({"GET", "{" + paused_org + "}:k"}, seconds(5));
    return reply.ok() && reply->str == "v";
  }));
}

// One replica per primary: kill -9 the primary of an org; once its replica
// is promoted, the client (seeded with every node) finds it by refreshing its
// map and serves the org again, without a restart.
TEST(RedisClusterFailoverTest, AKilledPrimarysOrgIsServedByItsPromotedReplica) {
  harness::RedisCluster::Options with_replicas;
  with_replicas.replicas_per_primary = 1;
  harness::RedisCluster cluster(with_replicas);
  ASSERT_EQ(cluster.size(), 6);
  const std::string org = "acme";
  const int primary = cluster.PrimaryOfSlot(KeySlot(org));
  ASSERT_GE(primary, 0);
  ASSERT_LT(primary, 3) << "the first three nodes are the primaries";
  absl::StatusOr<AsyncClientOptions> options = AsyncClientOptionsFor(cluster.seeds());
  ASSERT_TRUE(options.ok());
  options->loops = 1;
  AsyncClient client(*options);
  // WAIT 1: the replica has the write before its primary dies.
  absl::StatusOr<PipelineReplies> written =
      client.PipelineSync({{"SET", "{acme}:k", "v"}, {"WAIT", "1", "10000"}}, seconds(20));
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_TRUE((*written)[1].ok()) << (*written)[1].status();
  ASSERT_EQ((*written)[1]->integer, 1);
  const uint64_t refreshes = client.stats().topology_refreshes;
  cluster.Kill(primary);
  EXPECT_TRUE(harness::Eventually(
      [&] {
        absl::StatusOr<Reply> reply = client.RunSync({"GET", "{acme}:k"}, seconds(2));
        if (!reply.ok()) {
          EXPECT_TRUE(absl::IsUnavailable(reply.status()) ||
                      absl::IsDeadlineExceeded(reply.status()))
              << reply.status();
        }
        return reply.ok() && reply->str == "v";
      },
      seconds(45)));
  EXPECT_NE(client.NodeForSlot(KeySlot(org)), cluster.address(primary));
  EXPECT_GT(client.stats().topology_refreshes, refreshes);
}

}  // namespace
}  // namespace common::redis
