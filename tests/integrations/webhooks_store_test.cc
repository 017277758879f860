// The webhooks store's scripts against a real redis-server, with the clock
// injected (no sleeping): leases, ordering, retries, the retry window, the
// pending cap, idempotent enqueue.
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "services/integrations/webhooks_store.h"
#include "tests/harness/process.h"

namespace integrations::webhooks {
namespace {

constexpr char kOrg[] = "acme";
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

class WebhookStoreTest : public ::testing::Test {
 protected:
  WebhookStoreTest() : pool_([&] {
      common::redis::PoolOptions options;
      options.endpoint.port = redis_.port();
      options.size = 2;
      return options;
    }()) {}

  std::string Subscribe(WebhookStore& store) {
    absl::StatusOr<v1::WebhookSubscription> sub = store.PutSubscription(
        kOrg, "create", "wh_1",
        {{"url", "https://hooks.example/"}, {"types", ",kudos.sent,"}, {"format", "json"},
         {"secret", "whsec_AAAA"}},
        kT0);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return "wh_1";
  }

  // Appends `n` entries to the kudos stream and returns their ids (the
  // group `webhooks` reads them; Enqueue acknowledges them).
  std::vector<std::string> Append(int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<common::redis::Reply> id =
          pool_.Run({"XADD", StreamKey(Source::kKudos, kOrg), "*", "event", "x"});
      EXPECT_TRUE(id.ok());
      ids.push_back(id->str);
    }
    absl::StatusOr<common::redis::Reply> read =
        pool_.Run({"XREADGROUP", "GROUP", "webhooks", "test", "COUNT", "100", "STREAMS",
                   StreamKey(Source::kKudos, kOrg), ">"});
    EXPECT_TRUE(read.ok());
    return ids;
  }

  int64_t PendingInGroup() {
    absl::StatusOr<common::redis::Reply> pending =
        pool_.Run({"XPENDING", StreamKey(Source::kKudos, kOrg), "webhooks"});
    return pending.ok() ? pending->elements[0].integer : -1;
  }

  harness::RedisServer redis_;
  common::redis::Pool pool_;
};

TEST_F(WebhookStoreTest, Lease_OnlyItsOwnerRecordsTheOutcomeAndADeliveryIsMarkedOnce) {
  WebhookStore store(pool_, {});
  const std::string sub = Subscribe(store);
  std::vector<std::string> entries = Append(2);
  auto queued = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), entries,
                              {Event("e1"), Event("e2")}, kT0);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->first, 2);
  EXPECT_EQ(PendingInGroup(), 0);  // acknowledged with the enqueue

  const absl::Duration lease = absl::Seconds(15);
  auto a = store.Claim(kOrg, sub, "replica-a", kT0, lease);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->event_id, "e1");
  EXPECT_EQ((*a)->attempts, 1);
  // While A holds the head nobody else gets it, nor the delivery behind it.
  auto b_early = store.Claim(kOrg, sub, "replica-b", kT0 + absl::Seconds(14), lease);
  ASSERT_TRUE(b_early.ok());
  EXPECT_FALSE(b_early->has_value());
  // A stalls past its lease; B takes the same delivery over.
  auto b = store.Claim(kOrg, sub, "replica-b", kT0 + absl::Seconds(16), lease);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->delivery_id, (*a)->delivery_id);
  EXPECT_EQ((*b)->attempts, 2);
  // A's late answer changes nothing; B's is recorded once.
  Outcome ok{true, 200, ""};
  auto late = store.Finish(kOrg, sub, (*a)->delivery_id, "replica-a", kT0 + absl::Seconds(17), ok,
                           kT0, absl::Hours(24), 20);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(*late);
  auto done = store.Finish(kOrg, sub, (*b)->delivery_id, "replica-b", kT0 + absl::Seconds(17), ok,
                           kT0, absl::Hours(24), 20);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  auto again = store.Finish(kOrg, sub, (*b)->delivery_id, "replica-b", kT0 + absl::Seconds(18), ok,
                            kT0, absl::Hours(24), 20);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  // The next one in order is now the head.
  auto next = store.Claim(kOrg, sub, "replica-a", kT0 + absl::Seconds(18), lease);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->event_id, "e2");

  auto log = store.ListDeliveries(kOrg, sub, 0, 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->first.size(), 2u);
  EXPECT_EQ(log->first[0].event_id(), "e2");  // pending first
  EXPECT_EQ(log->first[1].state(), v1::DELIVERY_STATE_DELIVERED);
  EXPECT_EQ(log->first[1].attempts(), 2);
}

TEST_F(WebhookStoreTest, Retries_WaitForTheirTimeThenDeadLetterPastTheWindow) {
  WebhookStore store(pool_, {});
  const std::string sub = Subscribe(store);
  ASSERT_TRUE(store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(1), {Event("e1")}, kT0).ok());
  const absl::Duration lease = absl::Seconds(15), window = absl::Hours(24);
  Outcome failed{false, 500, "HTTP 500"};
  absl::Time now = kT0;
  int attempts = 0;
  // Failed attempts, each retried at the time Finish was given, until the
  // next retry would fall past the window.
  while (true) {
    auto claimed = store.Claim(kOrg, sub, "r", now, lease);
    ASSERT_TRUE(claimed.ok() && claimed->has_value()) << attempts;
    ++attempts;
    absl::Time retry_at = now + absl::Hours(5);
    // Not due before its time.
    ASSERT_TRUE(store.Finish(kOrg, sub, (*claimed)->delivery_id, "r", now, failed, retry_at, window, 1000).ok());
    auto early = store.Claim(kOrg, sub, "r", retry_at - absl::Seconds(1), lease);
    ASSERT_TRUE(early.ok());
    EXPECT_FALSE(early->has_value());
    auto log = store.ListDeliveries(kOrg, sub, 0, 10);
    ASSERT_TRUE(log.ok());
    if (log->first[0].state() == v1::DELIVERY_STATE_DEAD) break;
    EXPECT_EQ(log->first[0].state(), v1::DELIVERY_STATE_FAILED);
    EXPECT_EQ(log->first[0].last_http_status(), 500);
    now = retry_at;
    ASSERT_LT(attempts, 10);
  }
  // Retries at 0, 5, 10, 15, 20 h; the one after 20 h would be at 25 h > 24 h.
  EXPECT_EQ(attempts, 5);
  auto dead = store.Claim(kOrg, sub, "r", now + absl::Hours(48), lease);
  ASSERT_TRUE(dead.ok());
  EXPECT_FALSE(dead->has_value());
  EXPECT_EQ(store.GetSubscription(kOrg, sub)->consecutive_failures(), 5);
}

TEST_F(WebhookStoreTest, Enqueue_OfTheSameEntriesTwiceQueuesNothingTwice) {
  WebhookStore store(pool_, {});
  const std::string sub = Subscribe(store);
  std::vector<std::string> entries = Append(3);
  std::vector<OutboundEvent> events = {Event("e1"), Event("e2"), Event("e3")};
  ASSERT_TRUE(store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), entries, events, kT0).ok());
  // A replica that died before its acknowledgement was seen re-reads them.
  auto second = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), entries, events, kT0);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->first, 0);
  auto log = store.ListDeliveries(kOrg, sub, 0, 10);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->first.size(), 3u);
}

TEST_F(WebhookStoreTest, PendingCap_RefusesToQueueAndLogsTheDeliveryDead) {
  StoreLimits limits;
  limits.max_pending = 2;
  WebhookStore store(pool_, limits);
  const std::string sub = Subscribe(store);
  auto queued = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(3),
                              {Event("e1"), Event("e2"), Event("e3")}, kT0);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->first, 2);
  EXPECT_EQ(queued->second, 1);
  auto log = store.ListDeliveries(kOrg, sub, 0, 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->first.size(), 3u);
  EXPECT_EQ(log->first[2].event_id(), "e3");
  EXPECT_EQ(log->first[2].state(), v1::DELIVERY_STATE_DEAD);
}

}  // namespace
}  // namespace integrations::webhooks
