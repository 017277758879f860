// Issue 14: the webhooks scripts during a slot migration of the org's slot,
// on a real 3-primary Redis Cluster on loopback (tests/harness/redis_cluster.h),
// through the store's own Pool. The slot is left half-moved (target
// IMPORTING, source MIGRATING, no key moved yet): a script that declared a
// key prefix (a key that never exists) was sent (ASK) to the target, which
// holds none of the org's subscriptions. With every key in KEYS the source
// runs a script whose keys it all holds, and one that creates a key waits
// (TRYAGAIN, retried by the Pool) until the migration ends.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"
#include "services/integrations/webhooks_store.h"
#include "tests/harness/redis_cluster.h"

namespace integrations::webhooks {
namespace {

using namespace std::chrono_literals;

constexpr char kOrg[] = "whmig";
const absl::Time kT0 = absl::FromUnixSeconds(1764400000);

OutboundEvent Event(const std::string& id) {
  OutboundEvent event;
  event.id = id;
  event.type = "kudos.sent";
  event.created_ms = absl::ToUnixMillis(kT0);
  event.json_body = "{\"id\":\"" + id + "\"}";
  event.slack_body = "{\"text\":\"" + id + "\"}";
  return event;
}

common::redis::PoolOptions ClusterPool(const harness::RedisCluster& cluster) {
  absl::StatusOr<common::redis::PoolOptions> options =
      common::redis::PoolOptionsFor(cluster.seeds());
  EXPECT_TRUE(options.ok()) << options.status();
  options->size = 2;
  // TRYAGAIN is retried within it: long enough for the migration to end.
  options->timeout = 30s;
  return *options;
}

TEST(WebhooksMigrationTest, SlotMigration_ScriptsRunWhereTheOrgsKeysAreAndTheSlotMovesCleanly) {
  harness::RedisCluster cluster;
  ASSERT_TRUE(cluster.WaitUntilStable());
  common::redis::Pool pool(ClusterPool(cluster));
  WebhookStore store(pool, {});

  // Every key the scripts below declare exists on the source: a
  // subscription to every source's events (each stream gets the group, so
  // exists), a pending queue, a due entry and a log.
  const std::string all_types =
      ",kudos.sent,redemption.fulfilled,survey.invitation,badge.earned,";
  auto created = store.PutSubscription(
      kOrg, "create", "wh_1",
      {{"url", "https://hooks.example/"}, {"types", all_types}, {"format", "json"},
       {"secret", "whsec_AAAA"}},
      kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string stream = StreamKey(Source::kKudos, kOrg);
  std::vector<std::string> entries;
  for (int i = 0; i < 3; ++i) {
    auto id = pool.Run({"XADD", stream, "*", "event", "x"});
    ASSERT_TRUE(id.ok()) << id.status();
    entries.push_back(id->str);
  }
  ASSERT_TRUE(pool.Run({"XREADGROUP", "GROUP", "webhooks", "t", "COUNT", "10", "STREAMS", stream, ">"})
                  .ok());
  auto queued = store.Enqueue(kOrg, stream, entries, {Event("e1"), Event("e2"), Event("e3")}, kT0,
                              {"wh_1"});
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_EQ(queued->first, 3);
  auto first = store.Claim(kOrg, "wh_1", "r", kT0, absl::Seconds(15));
  ASSERT_TRUE(first.ok() && first->has_value()) << first.status();
  auto finished = store.Finish(kOrg, "wh_1", (*first)->delivery_id, "r", kT0, {true, 200, ""}, kT0,
                               absl::Hours(24), 20, (*first)->finish_touches);
  ASSERT_TRUE(finished.ok() && *finished) << finished.status();

  const int slot = common::redis::KeySlot(kOrg);
  const int source = cluster.PrimaryOfSlot(slot);
  cluster.BeginSlotMigration(slot, (source + 1) % 3);

  // All their keys are on the source: it runs them, on the org's data.
  ASSERT_TRUE(store.RotateSecret(kOrg, "wh_1", "whsec_BBBB").ok())
      << "a script during the migration did not see the subscription";
  auto claimed = store.Claim(kOrg, "wh_1", "r", kT0, absl::Seconds(15));
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_TRUE(claimed->has_value()) << "a claim during the migration found no pending delivery";
  EXPECT_EQ((*claimed)->event_id, "e2");
  EXPECT_EQ((*claimed)->secret, "whsec_BBBB");

  // A new subscription's key exists nowhere yet while the others are on the
  // source: TRYAGAIN until the slot has moved, then it runs on the target.
  std::future<absl::StatusOr<v1::WebhookSubscription>> second = std::async(std::launch::async, [&] {
    return store.PutSubscription(kOrg, "create", "wh_2",
                                 {{"url", "https://hooks.example/2"}, {"types", ",kudos.sent,"}},
                                 kT0);
  });
  // Throws on BUSYKEY: a key written on both sides.
  ASSERT_NO_THROW(cluster.FinishSlotMigration(slot));
  absl::StatusOr<v1::WebhookSubscription> added = second.get();
  ASSERT_TRUE(added.ok()) << added.status();

  auto subscriptions = store.ListSubscriptions(kOrg);
  ASSERT_TRUE(subscriptions.ok()) << subscriptions.status();
  ASSERT_EQ(subscriptions->size(), 2u);
  auto log = store.ListDeliveries(kOrg, "wh_1", 0, 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->first.size(), 3u);
  EXPECT_EQ(log->first[0].event_id(), "e2");
  EXPECT_EQ(log->first[0].attempts(), 1);
  EXPECT_EQ(log->first[2].state(), v1::DELIVERY_STATE_DELIVERED);
}

}  // namespace
}  // namespace integrations::webhooks
