// The blocking Pool on a real 3-primary Redis Cluster on loopback
// (tests/harness/redis_cluster.h): routing by the {org} hash tag through one
// seed, scripts by SHA reloaded per node, keys spanning slots refused before
// sending, MOVED after a slot migration, ASK and TRYAGAIN during one, a
// paused node failing only its own slots, the per-node connection bound and
// a failover. One cluster for the suite (it takes seconds to form).
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"
#include "tests/harness/eventually.h"
#include "tests/harness/redis_cluster.h"

namespace common::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// "blocked_clients:N" of a node's INFO clients.
int BlockedClients(harness::RedisCluster& cluster, int node) {
  absl::StatusOr<Reply> info = cluster.Command(node, {"INFO", "clients"});
  if (!info.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    int blocked = 0;
    if (absl::ConsumePrefix(&line, "blocked_clients:") && absl::SimpleAtoi(line, &blocked)) {
      return blocked;
    }
  }
  return -1;
}

class RedisPoolClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new harness::RedisCluster();
    orgs_ = cluster_->OneNamePerPrimary("org");  // the slot of {org} decides
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Through one seed only: the pool finds the other primaries itself.
  static PoolOptions OneSeed() {
    absl::StatusOr<PoolOptions> options = PoolOptionsFor(cluster_->address(0));
    EXPECT_TRUE(options.ok()) << options.status();
    options->size = 2;
    options->timeout = seconds(10);
    return *options;
  }

  static harness::RedisCluster* cluster_;
  static std::map<int, std::string> orgs_;  // primary -> an org whose slot it serves
};
harness::RedisCluster* RedisPoolClusterTest::cluster_ = nullptr;
std::map<int, std::string> RedisPoolClusterTest::orgs_;

TEST_F(RedisPoolClusterTest, OrgsOnThreeDifferentPrimariesAreAllReachableThroughOneSeed) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed());
  EXPECT_EQ(pool.mode(), Pool::Mode::kCluster);
  std::vector<std::string> primaries = pool.Primaries();
  EXPECT_EQ(std::set<std::string>(primaries.begin(), primaries.end()),
            std::set<std::string>({cluster_->address(0), cluster_->address(1),
                                   cluster_->address(2)}));
  Script add("add", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  for (const auto& [primary, org] : orgs_) {
    const std::string tag = "{" + org + "}";
    EXPECT_EQ(pool.NodeForSlot(KeySlot(org)), cluster_->address(primary));
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies =
        pool.Pipeline({{"SET", tag + ":name", org}, {"INCR", tag + ":n"}, {"GET", tag + ":name"}});
    ASSERT_TRUE(replies.ok()) << replies.status();
    for (const auto& reply : *replies) ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ((*replies)[2]->str, org);
    absl::StatusOr<Reply> added = pool.Eval(add, {tag + ":n"}, {"41"});
    ASSERT_TRUE(added.ok()) << added.status();
    EXPECT_EQ(added->integer, 42);
    // A transaction of one org: one node, applied once.
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> tx =
        pool.Pipeline({{"MULTI"}, {"INCR", tag + ":tx"}, {"INCR", tag + ":tx"}, {"EXEC"}});
    ASSERT_TRUE(tx.ok()) << tx.status();
    ASSERT_TRUE((*tx)[3].ok()) << (*tx)[3].status();
    EXPECT_EQ((*tx)[3]->elements[1].integer, 2);
    // The keys live on that primary (a plain connection to it reads them).
    absl::StatusOr<Reply> there = cluster_->Command(primary, {"GET", tag + ":name"});
    ASSERT_TRUE(there.ok()) << there.status();
    EXPECT_EQ(there->str, org);
  }
  // Keyless commands go to any primary.
  absl::StatusOr<Reply> pong = pool.Run({"PING"});
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->str, "PONG");
  Pool::Stats stats = pool.stats();
  EXPECT_EQ(stats.moved, 0u) << "routed by the slot map, not by redirects";
  EXPECT_EQ(stats.asked, 0u);
}

// Least privilege: an ACL user may be denied INFO. The pool still finds out
// it talks to a cluster (CLUSTER SLOTS answers a map) instead of taking the
// seed for a standalone server and failing other nodes' orgs with MOVED.
TEST_F(RedisPoolClusterTest, AUserDeniedInfoStillDetectsTheClusterAndRoutesBySlot) {
  for (int node = 0; node < 3; ++node) {
    ASSERT_TRUE(cluster_->Command(node, {"ACL", "SETUSER", "noinfo", "on", ">noinfo-pw", "~*", "&*",
                                         "+@all", "-info"})
                    .ok());
  }
  absl::StatusOr<PoolOptions> options =
      PoolOptionsFor(cluster_->address(0), Credentials{"noinfo", "noinfo-pw", ""});
  ASSERT_TRUE(options.ok()) << options.status();
  options->size = 2;
  options->timeout = seconds(10);
  Pool pool(*options);
  EXPECT_EQ(pool.mode(), Pool::Mode::kCluster);
  for (const auto& [primary, org] : orgs_) {
    const std::string key = "noinfo:{" + org + "}";
    ASSERT_TRUE(pool.Run({"SET", key, "1"}).ok()) << org;
    EXPECT_EQ(cluster_->Command(primary, {"EXISTS", key})->integer, 1) << org;
  }
}

TEST_F(RedisPoolClusterTest, EachPrimaryIsReachableByItselfForPerNodeWork) {
  Pool pool(OneSeed());
  for (const auto& [primary, org] : orgs_) {
    const std::string tag = "{" + org + "}";
    ASSERT_TRUE(pool.Run({"SET", tag + ":pernode", org}).ok());
    const std::string node = pool.NodeForSlot(KeySlot(org));
    ASSERT_EQ(node, cluster_->address(primary));
    // RunOn sends as is to that node: its own slot's key is there...
    absl::StatusOr<Reply> here = pool.RunOn(node, {"GET", tag + ":pernode"});
    ASSERT_TRUE(here.ok()) << here.status();
    EXPECT_EQ(here->str, org);
    absl::StatusOr<Reply> keys = pool.RunOn(node, {"CLUSTER", "COUNTKEYSINSLOT",
                                                   std::to_string(KeySlot(org))});
    ASSERT_TRUE(keys.ok()) << keys.status();
    EXPECT_GE(keys->integer, 1);
    // ...and another node answers MOVED in place: no redirect is followed.
    const std::string other = cluster_->address((primary + 1) % 3);
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> elsewhere =
        pool.PipelineOn(other, {{"PING"}, {"GET", tag + ":pernode"}});
    ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
    EXPECT_TRUE((*elsewhere)[0].ok());
    EXPECT_TRUE(absl::StrContains((*elsewhere)[1].status().message(), "MOVED"))
        << (*elsewhere)[1].status();
  }
  absl::StatusOr<Reply> stranger = pool.RunOn("127.0.0.1:1", {"PING"});
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kFailedPrecondition) << stranger.status();
}

TEST_F(RedisPoolClusterTest, ScriptsBySHAAreLoadedOnEachNodeThatLacksThem) {
  Pool pool(OneSeed());
  Script script("pool-cluster-echo", "return {KEYS[1], ARGV[1], 'pool-cluster-echo'}");
  for (const auto& [primary, org] : orgs_) {
    absl::StatusOr<Reply> reply = pool.Eval(script, {"{" + org + "}:s"}, {org});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->elements[1].str, org);
  }
  EXPECT_EQ(pool.stats().script_loads, 3u) << "NOSCRIPT once per node, loaded there";
  for (const auto& [primary, org] : orgs_) {
    ASSERT_TRUE(pool.Eval(script, {"{" + org + "}:s"}, {org}).ok());
  }
  EXPECT_EQ(pool.stats().script_loads, 3u) << "loaded for good";
  // A SCRIPT FLUSH on one node: only that node's org reloads.
  const auto& [flushed, flushed_org] = *orgs_.rbegin();
  ASSERT_TRUE(cluster_->Command(flushed, {"SCRIPT", "FLUSH"}).ok());
  for (const auto& [primary, org] : orgs_) {
    absl::StatusOr<Reply> reply = pool.Eval(script, {"{" + org + "}:s"}, {org});
    ASSERT_TRUE(reply.ok()) << reply.status();
  }
  EXPECT_EQ(pool.stats().script_loads, 4u);
  EXPECT_EQ(cluster_->Command(flushed, {"SCRIPT", "EXISTS", script.sha()})->elements[0].integer,
            1);

  // A caller that pipelines EVALSHA and, on NOSCRIPT, sends its own keyless
  // SCRIPT LOAD: the load goes to the node that answered NOSCRIPT.
  Script pipelined("pool-cluster-pipelined", "return 'pipelined ' .. KEYS[1]");
  for (const auto& [primary, org] : orgs_) {
    const Command evalsha = {"EVALSHA", pipelined.sha(), "1", "{" + org + "}:p"};
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> first = pool.Pipeline({evalsha});
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ((*first)[0].status().message(), "NOSCRIPT") << (*first)[0].status();
    ASSERT_TRUE(pool.Run({"SCRIPT", "LOAD", pipelined.source()}).ok());
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> again = pool.Pipeline({evalsha});
    ASSERT_TRUE(again.ok()) << again.status();
    ASSERT_TRUE((*again)[0].ok()) << (*again)[0].status() << " on " << org;
    EXPECT_EQ((*again)[0]->str, "pipelined {" + org + "}:p");
  }
  // NOSCRIPT on every node first, then one keyless SCRIPT LOAD: loaded on all.
  Script spread("pool-cluster-spread", "return 'spread ' .. KEYS[1]");
  for (const auto& [primary, org] : orgs_) {
    absl::StatusOr<Reply> missing = pool.Run({"EVALSHA", spread.sha(), "1", "{" + org + "}:q"});
    ASSERT_EQ(missing.status().message(), "NOSCRIPT") << missing.status();
  }
  absl::StatusOr<Reply> loaded = pool.Run({"SCRIPT", "LOAD", spread.source()});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->str, spread.sha());
  for (const auto& [primary, org] : orgs_) {
    absl::StatusOr<Reply> ran = pool.Run({"EVALSHA", spread.sha(), "1", "{" + org + "}:q"});
    ASSERT_TRUE(ran.ok()) << ran.status() << " on " << org;
  }
}

TEST_F(RedisPoolClusterTest, KeysSpanningSlotsAreRefusedBeforeSending) {
  Pool pool(OneSeed());
  const std::string a = "{" + orgs_.begin()->second + "}";
  const std::string b = "{" + orgs_.rbegin()->second + "}";
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> pipeline =
      pool.Pipeline({{"SET", a + ":cross", "1"}, {"SET", b + ":cross", "1"}});
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument) << pipeline.status();
  EXPECT_TRUE(absl::StrContains(pipeline.status().message(), a + ":cross") &&
              absl::StrContains(pipeline.status().message(), b + ":cross"))
      << "the message names the keys: " << pipeline.status();
  Script both("both", "redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[2], 1)");
  absl::StatusOr<Reply> script = pool.Eval(both, {a + ":cross", b + ":cross"}, {});
  EXPECT_EQ(script.status().code(), absl::StatusCode::kInvalidArgument) << script.status();
  absl::StatusOr<Reply> mget = pool.Run({"MGET", a + ":cross", b + ":cross"});
  EXPECT_EQ(mget.status().code(), absl::StatusCode::kInvalidArgument) << mget.status();
  // Nothing reached Redis: the first key was not written either.
  absl::StatusOr<Reply> written = pool.Run({"EXISTS", a + ":cross"});
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->integer, 0);
}

TEST_F(RedisPoolClusterTest, MovedAfterASlotMigrationKeepsTheOrgsCallsWorking) {
  const int from = orgs_.begin()->first;
  const std::string org = orgs_.begin()->second;
  const std::string tag = "{" + org + "}";
  const int slot = KeySlot(org);
  const int to = (from + 1) % 3;
  Pool pool(OneSeed());
  Pool stale(OneSeed());  // a second pool that learns only by MOVED, in a MULTI
  ASSERT_TRUE(pool.Run({"SET", tag + ":before", "1"}).ok());
  ASSERT_TRUE(stale.Run({"GET", tag + ":before"}).ok());
  cluster_->MigrateSlot(slot, to);

  absl::StatusOr<Reply> read = pool.Run({"GET", tag + ":before"});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->str, "1");
  EXPECT_GE(pool.stats().moved, 1u);
  EXPECT_EQ(pool.NodeForSlot(slot), cluster_->address(to)) << "patched from the MOVED at once";
  EXPECT_TRUE(harness::Eventually([&] { return pool.stats().topology_refreshes >= 2; }))
      << "and a full CLUSTER SLOTS read in the background";
  uint64_t moved = pool.stats().moved;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool.Run({"INCR", tag + ":after"}).ok());
  EXPECT_EQ(pool.stats().moved, moved) << "the map was refreshed: no more redirects";
  EXPECT_EQ(cluster_->Command(to, {"GET", tag + ":after"})->str, "10");

  // A transaction with a stale map: MULTI/EXEC discarded (EXECABORT), sent again whole.
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> tx = stale.Pipeline(
      {{"MULTI"}, {"INCR", tag + ":moved-tx"}, {"INCR", tag + ":moved-tx"}, {"EXEC"}});
  ASSERT_TRUE(tx.ok()) << tx.status();
  ASSERT_TRUE((*tx)[3].ok()) << (*tx)[3].status();
  EXPECT_EQ((*tx)[3]->elements[1].integer, 2);
  EXPECT_EQ(cluster_->Command(to, {"GET", tag + ":moved-tx"})->str, "2") << "applied once";
  EXPECT_GE(stale.stats().moved, 1u);
}

TEST_F(RedisPoolClusterTest, AskAndTryAgainDuringAMigration) {
  auto it = std::next(orgs_.begin());
  const int from = it->first;
  const std::string org = it->second;
  const std::string tag = "{" + org + "}";
  const int slot = KeySlot(org);
  const int to = (from + 1) % 3;
  PoolOptions options = OneSeed();
  options.timeout = seconds(60);  // TRYAGAIN is retried within it, below
  Pool pool(options);
  ASSERT_TRUE(pool.Run({"SET", tag + ":old", "o"}).ok());
  cluster_->BeginSlotMigration(slot, to);

  // A key the source lacks: ASK, ASKING + the command on the target.
  ASSERT_TRUE(pool.Run({"SET", tag + ":new", "n"}).ok());
  EXPECT_GE(pool.stats().asked, 1u);
  EXPECT_EQ(pool.NodeForSlot(slot), cluster_->address(from)) << "ASK leaves the map as it is";
  absl::StatusOr<Reply> new_key = pool.Run({"GET", tag + ":new"});
  ASSERT_TRUE(new_key.ok()) << new_key.status();
  EXPECT_EQ(new_key->str, "n");
  // A key the source still has: served there.
  EXPECT_EQ(pool.Run({"GET", tag + ":old"})->str, "o");
  // A pipeline over both: each command where its key is, replies in order.
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> mixed =
      pool.Pipeline({{"GET", tag + ":old"}, {"SET", tag + ":new2", "n2"}, {"GET", tag + ":new"}});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  for (const auto& reply : *mixed) ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*mixed)[0]->str, "o");
  EXPECT_EQ((*mixed)[2]->str, "n");
  // A script on a key only the target has: loaded there, run there with ASKING.
  Script touch("pool-touch", "return redis.call('INCR', KEYS[1])");
  absl::StatusOr<Reply> scripted = pool.Eval(touch, {tag + ":new3"}, {});
  ASSERT_TRUE(scripted.ok()) << scripted.status();
  EXPECT_EQ(scripted->integer, 1);

  // Keys split between source and target: TRYAGAIN until the migration ends,
  // retried within the call's timeout.
  std::future<absl::StatusOr<Reply>> split = std::async(std::launch::async, [&] {
    return pool.Run({"MGET", tag + ":old", tag + ":new"});
  });
  EXPECT_TRUE(harness::Eventually([&] { return pool.stats().retried >= 1; }));
  cluster_->FinishSlotMigration(slot);
  absl::StatusOr<Reply> both = split.get();
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->elements.size(), 2u);
  EXPECT_EQ(both->elements[0].str, "o");
  EXPECT_EQ(both->elements[1].str, "n");
  // After the migration every key is on the target and reachable (MOVED).
  for (const char* key : {":old", ":new", ":new2", ":new3"}) {
    absl::StatusOr<Reply> reply = pool.Run({"EXISTS", tag + key});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->integer, 1) << key;
    EXPECT_EQ(cluster_->Command(to, {"EXISTS", tag + key})->integer, 1) << key;
  }
}

TEST_F(RedisPoolClusterTest, APausedNodeFailsOnlyItsOwnSlots) {
  absl::StatusOr<PoolOptions> options = PoolOptionsFor(cluster_->seeds());
  ASSERT_TRUE(options.ok()) << options.status();
  options->size = 2;
  options->timeout = seconds(60);  // the stalled call below waits, it is not cut short
  Pool patient(*options);
  options->timeout = milliseconds(300);
  Pool impatient(*options);
  ASSERT_EQ(patient.mode(), Pool::Mode::kCluster);
  const std::string paused_org = orgs_.rbegin()->second;
  const int paused = cluster_->PrimaryOfSlot(KeySlot(paused_org));
  std::string other_org;
  for (const auto& [primary, org] : orgs_) {
    if (cluster_->PrimaryOfSlot(KeySlot(org)) != paused) other_org = org;
  }
  ASSERT_FALSE(other_org.empty());
  ASSERT_TRUE(patient.Run({"SET", "{" + paused_org + "}:k", "v"}).ok());
  ASSERT_TRUE(patient.Run({"SET", "{" + other_org + "}:k", "v"}).ok());
  ASSERT_TRUE(impatient.Run({"GET", "{" + other_org + "}:k"}).ok());
  cluster_->Pause(paused);

  // A call on the stalled node waits on that node's connection only...
  std::future<absl::StatusOr<Reply>> stalled = std::async(std::launch::async, [&] {
    return patient.Run({"GET", "{" + paused_org + "}:k"});
  });
  // ...while another primary's org is served, many times over.
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Reply> served = patient.Run({"GET", "{" + other_org + "}:k"});
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(served->str, "v");
  }
  EXPECT_EQ(stalled.wait_for(milliseconds(0)), std::future_status::timeout)
      << "the stalled node's call is still waiting (60 s timeout)";
  // With a short timeout the stalled node's call fails, on its own.
  absl::StatusOr<Reply> failed = impatient.Run({"GET", "{" + paused_org + "}:k"});
  EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
  absl::StatusOr<Reply> still_served = impatient.Run({"GET", "{" + other_org + "}:k"});
  ASSERT_TRUE(still_served.ok()) << still_served.status();

  cluster_->Resume(paused);
  absl::StatusOr<Reply> resumed = stalled.get();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->str, "v");
  EXPECT_TRUE(harness::Eventually([&] {
    absl::StatusOr<Reply> reply = impatient.Run({"GET", "{" + paused_org + "}:k"});
    return reply.ok() && reply->str == "v";
  }));
}

// Two connections per node: two blocking calls hold both of one node's; a
// third call to that node waits acquire_timeout and fails; other nodes' orgs
// are served meanwhile.
TEST_F(RedisPoolClusterTest, ConnectionsPerNodeAreBoundedAndBlockingCallsHoldOnlyTheirNodes) {
  PoolOptions options = OneSeed();
  options.size = 2;
  options.acquire_timeout = milliseconds(300);
  Pool pool(options);
  const std::string busy_org = orgs_.begin()->second;
  const int busy = cluster_->PrimaryOfSlot(KeySlot(busy_org));  // slots moved in tests above
  const std::string list = "{" + busy_org + "}:wakeup";
  const int blocked_before = BlockedClients(*cluster_, busy);
  std::vector<std::future<absl::StatusOr<Reply>>> blocked;
  for (int i = 0; i < 2; ++i) {
    blocked.push_back(std::async(std::launch::async, [&] {
      // BLPOP for up to 50 s: longer than the pool's timeout, hence RunWithTimeout.
      return pool.RunWithTimeout({"BLPOP", list, "50"}, seconds(60));
    }));
  }
  ASSERT_TRUE(harness::Eventually(
      [&] { return BlockedClients(*cluster_, busy) == blocked_before + 2; }, seconds(5)))
      << BlockedClients(*cluster_, busy) << " blocked, " << blocked_before << " before";

  absl::StatusOr<Reply> third = pool.Run({"GET", "{" + busy_org + "}:k"});
  EXPECT_TRUE(absl::IsUnavailable(third.status())) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "busy")) << third.status();
  for (const auto& [primary, org] : orgs_) {
    if (cluster_->PrimaryOfSlot(KeySlot(org)) == busy) continue;
    absl::StatusOr<Reply> served = pool.Run({"SET", "{" + org + "}:k", "v"});
    ASSERT_TRUE(served.ok()) << served.status() << " for " << org;
  }

  ASSERT_TRUE(cluster_->Command(busy, {"RPUSH", list, "a", "b"}).ok());
  std::set<std::string> woken;
  for (auto& call : blocked) {
    absl::StatusOr<Reply> reply = call.get();
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->elements.size(), 2u);
    woken.insert(reply->elements[1].str);
  }
  EXPECT_EQ(woken, std::set<std::string>({"a", "b"}));
  ASSERT_TRUE(pool.Run({"GET", "{" + busy_org + "}:k"}).ok()) << "the connections came back";
}

// One replica per primary: kill -9 the primary of an org; calls fail
// UNAVAILABLE within their timeout until the replica is promoted, then the
// refreshed map routes the org to it, without a restart.
TEST(RedisPoolClusterFailoverTest, AKilledPrimarysOrgIsServedByItsPromotedReplica) {
  harness::RedisCluster::Options with_replicas;
  with_replicas.replicas_per_primary = 1;
  harness::RedisCluster cluster(with_replicas);
  ASSERT_EQ(cluster.size(), 6);
  const std::string org = "acme";
  const int primary = cluster.PrimaryOfSlot(KeySlot(org));
  ASSERT_GE(primary, 0);
  ASSERT_LT(primary, 3) << "the first three nodes are the primaries";
  absl::StatusOr<PoolOptions> options = PoolOptionsFor(cluster.seeds());
  ASSERT_TRUE(options.ok()) << options.status();
  options->timeout = seconds(30);  // the replica's first sync may take a while
  Pool writer(*options);
  // WAIT 1 on the same connection: the replica has the write before its primary dies.
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> written =
      writer.Pipeline({{"SET", "{acme}:k", "v"}, {"WAIT", "1", "20000"}});
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_TRUE((*written)[1].ok()) << (*written)[1].status();
  ASSERT_EQ((*written)[1]->integer, 1);
  options->timeout = seconds(2);
  Pool pool(*options);
  ASSERT_EQ(pool.Run({"GET", "{acme}:k"})->str, "v");
  const uint64_t refreshes = pool.stats().topology_refreshes;
  cluster.Kill(primary);
  int failed = 0;
  EXPECT_TRUE(harness::Eventually(
      [&] {
        absl::StatusOr<Reply> reply = pool.Run({"GET", "{acme}:k"});
        if (!reply.ok()) {
          ++failed;
          EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
        }
        return reply.ok() && reply->str == "v";
      },
      seconds(60)));
  EXPECT_GE(failed, 1) << "the org was unavailable until its replica was promoted";
  EXPECT_NE(pool.NodeForSlot(KeySlot(org)), cluster.address(primary));
  EXPECT_GT(pool.stats().topology_refreshes, refreshes);
  std::vector<std::string> primaries = pool.Primaries();
  EXPECT_EQ(std::count(primaries.begin(), primaries.end(), cluster.address(primary)), 0);
  // Writes go to the promoted replica too.
  absl::StatusOr<Reply> write = pool.Run({"INCR", "{acme}:after"});
  ASSERT_TRUE(write.ok()) << write.status();
}

}  // namespace
}  // namespace common::redis
