// Issue 14: the leaderboard's scripts pass every key they read or write in
// KEYS (enforced by the declared-keys guard of common::redis::Script), so
// while an org's slot migrates Redis runs each of them only where all its
// keys are: TRYAGAIN while they are split between source and target (the
// pool retries), ASK once all have moved. Against a real 3-primary cluster
// on loopback and the real library (Store, Projector, Consumer).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/cluster_slots.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/projection_image.h"
#include "tests/harness/eventually.h"
#include "tests/harness/redis_cluster.h"
#include "tests/leaderboard/event_writer.h"

namespace {

using common::redis::Reply;
using harness::Eventually;
namespace v1 = leaderboard::v1;

common::redis::PoolOptions PoolFor(const harness::RedisCluster& cluster) {
  common::redis::PoolOptions options;
  options.endpoint = {"127.0.0.1", cluster.port(0)};
  options.size = 4;
  // TRYAGAIN is retried within it: a call may wait out the migration below.
  options.timeout = std::chrono::seconds(30);
  return options;
}

// Store + Projector + Consumer, as main.cc wires them.
struct Replica {
  explicit Replica(const harness::RedisCluster& cluster)
      : pool(PoolFor(cluster)), store(pool), projector(store, RebuildFor()) {
    leaderboard::ConsumerOptions options;
    options.endpoint = {"127.0.0.1", cluster.port(0)};
    options.consumer_name = "replica-a";
    options.block = std::chrono::milliseconds(50);
    options.claim_min_idle = std::chrono::milliseconds(200);
    options.org_refresh = std::chrono::milliseconds(50);
    options.batch = 7;
    consumer = std::make_unique<leaderboard::Consumer>(store, projector, options, nullptr);
  }
  static leaderboard::RebuildOptions RebuildFor() {
    leaderboard::RebuildOptions options;
    options.min_interval = std::chrono::milliseconds(0);
    return options;
  }
  common::redis::Pool pool;
  leaderboard::Store store;
  leaderboard::Projector projector;
  std::unique_ptr<leaderboard::Consumer> consumer;
};

// Entries of the org's streams the group has not acknowledged; -1 before
// the group exists.
int64_t Backlog(common::redis::Pool& pool, const std::string& org) {
  int64_t total = 0;
  for (const std::string& stream :
       {leaderboard::KudosStream(org), leaderboard::LedgerStream(org)}) {
    auto groups = pool.Run({"XINFO", "GROUPS", stream});
    if (!groups.ok() || groups->elements.empty()) return -1;
    const auto& fields = groups->elements[0].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "pending" || fields[i].str == "lag") total += fields[i + 1].integer;
    }
  }
  return total;
}

int64_t ZScore(common::redis::Pool& pool, const std::string& key, const std::string& member) {
  auto reply = pool.Run({"ZSCORE", key, member});
  if (!reply.ok() || reply->is_nil()) return 0;
  return std::stoll(reply->str);
}

struct Totals {
  std::map<std::string, int64_t> points;  // all-time points received
  int entries = 0;
};

// `n` kudos with their transfers, among people the directory names.
void WriteKudos(lbtest::EventWriter& writer, int first, int n, Totals& totals) {
  const std::vector<std::string> people = {"ann", "bob", "cem", "dia"};
  absl::Time now = absl::Now();
  for (int i = first; i < first + n; ++i) {
    const std::string& giver = people[i % people.size()];
    const std::string& recipient = people[(i + 1) % people.size()];
    std::string id = absl::StrCat("K", i);
    int64_t points = 1 + i % 3;
    writer.Kudos(lbtest::SentEvent(writer.org(), id, giver, "dev", {{recipient, "ops"}},
                                   {"teamwork"}, points, now - absl::Minutes(i)));
    writer.Ledger(lbtest::TransfersEvent(writer.org(), id, id, ledger::v1::TRANSFER_KIND_KUDOS,
                                         giver, {{recipient, "ops"}}, {"teamwork"}, points,
                                         now - absl::Minutes(i)));
    totals.points[recipient] += points;
    totals.entries += 2;
  }
}

bool IsMetricBoard(const std::string& org, const std::string& key) {
  for (const char* metric : {"points_received:", "kudos_received:", "kudos_given:"}) {
    if (key.rfind(leaderboard::Prefix(org) + metric, 0) == 0) return true;
  }
  return false;
}

// Every lb:{org}:* key but streams, with type and content, read on `node`
// (SCAN has no key a cluster pool could route by).
std::map<std::string, std::string> Projections(harness::RedisCluster& cluster, int node,
                                               const std::string& org) {
  std::map<std::string, std::string> out;
  absl::StatusOr<Reply> keys = cluster.Command(
      node, {"CLUSTER", "GETKEYSINSLOT", absl::StrCat(common::redis::KeySlot(org)), "10000"});
  EXPECT_TRUE(keys.ok()) << keys.status();
  if (!keys.ok()) return out;
  for (const Reply& key : keys->elements) {
    if (key.str.rfind(leaderboard::Prefix(org), 0) != 0) continue;
    absl::StatusOr<Reply> type = cluster.Command(node, {"TYPE", key.str});
    if (!type.ok() || type->str == "stream") continue;
    common::redis::Command read = {"GET", key.str};
    if (type->str == "zset") read = {"ZRANGE", key.str, "0", "-1", "WITHSCORES"};
    if (type->str == "set") read = {"SORT", key.str, "ALPHA"};
    if (type->str == "hash") read = {"HGETALL", key.str};
    absl::StatusOr<Reply> content = cluster.Command(node, read);
    std::string text = type->str + "|";
    if (content.ok() && type->str == "hash") {
      std::map<std::string, std::string> fields;  // HGETALL's order is not the content's
      for (size_t i = 0; i + 1 < content->elements.size(); i += 2) {
        fields[content->elements[i].str] = content->elements[i + 1].str;
      }
      for (const auto& [field, value] : fields) absl::StrAppend(&text, field, "=", value, ",");
    } else if (content.ok()) {
      for (const Reply& e : content->elements) absl::StrAppend(&text, e.str, ",");
      absl::StrAppend(&text, content->str);
    }
    out[key.str] = text;
  }
  return out;
}

int64_t KeysInSlot(harness::RedisCluster& cluster, int node, int slot) {
  absl::StatusOr<Reply> count =
      cluster.Command(node, {"CLUSTER", "COUNTKEYSINSLOT", absl::StrCat(slot)});
  return count.ok() ? count->integer : -1;
}

// The consumer keeps applying while the org's slot is half-migrated (its
// boards moved, its marks and streams not): each apply_event.lua call waits
// (TRYAGAIN, retried) instead of running on one side with the other side's
// keys missing, so no key is written on both nodes (MIGRATE would stop with
// BUSYKEY), every entry counts once, and the boards equal a rebuild after.
TEST(LeaderboardMigrationTest, Consumer_DuringASlotMigrationAppliesOnlyWhereAllItsKeysAre) {
  harness::RedisCluster cluster;
  const std::string org = cluster.OneNamePerPrimary("mig").begin()->second;
  const int slot = common::redis::KeySlot(org);
  const int from = cluster.PrimaryOfSlot(slot);
  const int to = (from + 1) % 3;
  common::redis::Pool pool(PoolFor(cluster));
  ASSERT_EQ(pool.mode(), common::redis::Pool::Mode::kCluster);
  lbtest::EventWriter writer(cluster.address(0), org);
  Totals totals;
  for (const char* person : {"ann", "bob", "cem", "dia"}) {
    writer.Kudos(lbtest::PersonEvent(person, person, "ops"));
    ++totals.entries;
  }
  WriteKudos(writer, 0, 10, totals);
  Replica replica(cluster);
  replica.consumer->Start();
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));

  // Half-migrated: the org's projections (lb:{org}:*) moved to the target,
  // the streams, marks and directory still on the source.
  cluster.BeginSlotMigration(slot, to);
  std::vector<std::string> boards;
  {
    absl::StatusOr<Reply> keys =
        cluster.Command(from, {"CLUSTER", "GETKEYSINSLOT", absl::StrCat(slot), "1000"});
    ASSERT_TRUE(keys.ok()) << keys.status();
    for (const Reply& key : keys->elements) {
      if (IsMetricBoard(org, key.str)) boards.push_back(key.str);
    }
  }
  ASSERT_FALSE(boards.empty());
  common::redis::Command migrate = {"MIGRATE", "127.0.0.1", absl::StrCat(cluster.port(to)), "",
                                    "0", "10000", "KEYS"};
  migrate.insert(migrate.end(), boards.begin(), boards.end());
  absl::StatusOr<Reply> moved = cluster.Command(from, migrate);
  ASSERT_TRUE(moved.ok()) << moved.status();

  const uint64_t retried_before = replica.pool.stats().retried;
  WriteKudos(writer, 10, 10, totals);
  EXPECT_TRUE(Eventually([&] { return replica.pool.stats().retried > retried_before; }))
      << "the consumer's apply waits (TRYAGAIN) while the org's keys are split";
  // Throws on BUSYKEY: a key written on the target while the source held it.
  ASSERT_NO_THROW(cluster.FinishSlotMigration(slot));
  ASSERT_TRUE(Eventually([&] { return Backlog(pool, org) == 0; }));
  replica.consumer->Stop();

  EXPECT_EQ(KeysInSlot(cluster, from, slot), 0) << "every key of the org moved";
  EXPECT_GT(KeysInSlot(cluster, to, slot), 0);
  const std::string all_time = leaderboard::BoardKey(
      org, v1::METRIC_POINTS_RECEIVED, v1::WINDOW_ALL_TIME, "all", v1::SCOPE_ORG, "");
  for (const auto& [person, points] : totals.points) {
    EXPECT_EQ(ZScore(pool, all_time, person), points) << person;
  }
  std::map<std::string, std::string> live = Projections(cluster, to, org);
  EXPECT_GT(live.size(), 3u);
  auto rebuilt = replica.projector.Rebuild(org);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(rebuilt->events_read, totals.entries);
  EXPECT_EQ(live, Projections(cluster, to, org));
}

}  // namespace
