// The webhooks store's scripts against a real redis-server, with the clock
// injected (no sleeping): leases, ordering, retries, the retry window, the
// pending cap, idempotent enqueue.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
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

  // Scripts run by SHA so far (INFO commandstats: calls less the failed
  // ones, i.e. the NOSCRIPT of a first call): the store's script round trips.
  int64_t ScriptCalls() {
    absl::StatusOr<common::redis::Reply> info = pool_.Run({"INFO", "commandstats"});
    EXPECT_TRUE(info.ok());
    if (!info.ok()) return -1;
    int64_t calls = 0, failed = 0;
    for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
      if (!absl::ConsumePrefix(&line, "cmdstat_evalsha:")) continue;
      for (absl::string_view field : absl::StrSplit(line, ',')) {
        if (absl::ConsumePrefix(&field, "calls=")) {
          EXPECT_TRUE(absl::SimpleAtoi(field, &calls));
        } else if (absl::ConsumePrefix(&field, "failed_calls=")) {
          EXPECT_TRUE(absl::SimpleAtoi(field, &failed));
        }
      }
    }
    return calls - failed;
  }

  std::string Subscribe(WebhookStore& store, const std::string& id) {
    absl::StatusOr<v1::WebhookSubscription> sub = store.PutSubscription(
        kOrg, "create", id,
        {{"url", "https://hooks.example/" + id}, {"types", ",kudos.sent,"}, {"format", "json"},
         {"secret", "whsec_AAAA"}},
        kT0);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return id;
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


// Issue 14: every key a webhooks script touches is in KEYS, and which ones
// depends on data (the subscriptions, a queue's head, a log's tail). The
// dispatcher passes what it last read, so its calls take one round trip.
TEST_F(WebhookStoreTest, DispatcherCalls_WithTheirHintsRunOneScriptEach) {
  WebhookStore store(pool_, {});
  const std::string sub = Subscribe(store, "wh_1");
  std::vector<std::string> entries = Append(2);
  int64_t before = ScriptCalls();
  auto queued = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), entries,
                              {Event("e1"), Event("e2")}, kT0, {sub});
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->first, 2);
  EXPECT_EQ(ScriptCalls() - before, 1);

  auto due = store.DueSubscriptions(kOrg, kT0, 10);
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].id, sub);
  EXPECT_EQ((*due)[0].head, sub + ".e1");
  before = ScriptCalls();
  auto claimed = store.Claim(kOrg, sub, "r", kT0, absl::Seconds(15), (*due)[0].head);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->event_id, "e1");
  EXPECT_EQ((*claimed)->finish_touches, std::vector<std::string>{sub + ".e2"});
  EXPECT_EQ(ScriptCalls() - before, 1);

  before = ScriptCalls();
  auto finished = store.Finish(kOrg, sub, (*claimed)->delivery_id, "r", kT0, {true, 200, ""}, kT0,
                               absl::Hours(24), 20, (*claimed)->finish_touches);
  ASSERT_TRUE(finished.ok() && *finished) << finished.status();
  EXPECT_EQ(ScriptCalls() - before, 1);
  // The next head is due at its own time (schedule read the declared e2).
  auto next = store.DueSubscriptions(kOrg, kT0, 10);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].head, sub + ".e2");
}

TEST_F(WebhookStoreTest, StaleHints_CostARetryNeverAMissedDelivery) {
  WebhookStore store(pool_, {});
  const std::string first = Subscribe(store, "wh_1");
  // Created after the dispatcher last read the subscriptions.
  const std::string second = Subscribe(store, "wh_2");
  auto queued = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(1), {Event("e1")},
                              kT0, {first});
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->first, 2);
  EXPECT_EQ(PendingInGroup(), 0);

  // A head that went out meanwhile, and a delivery queued after the claim.
  auto claimed = store.Claim(kOrg, first, "r", kT0, absl::Seconds(15), "wh_1.gone");
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  EXPECT_EQ((*claimed)->event_id, "e1");
  EXPECT_TRUE((*claimed)->finish_touches.empty());
  ASSERT_TRUE(store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(1), {Event("e2")}, kT0,
                            {first, second})
                  .ok());
  auto finished = store.Finish(kOrg, first, (*claimed)->delivery_id, "r", kT0, {true, 200, ""},
                               kT0, absl::Hours(24), 20, (*claimed)->finish_touches);
  ASSERT_TRUE(finished.ok() && *finished) << finished.status();
  auto next = store.Claim(kOrg, first, "r", kT0, absl::Seconds(15));
  ASSERT_TRUE(next.ok() && next->has_value()) << next.status();
  EXPECT_EQ((*next)->event_id, "e2");
  auto log = store.ListDeliveries(kOrg, second, 0, 10);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->first.size(), 2u);
}

TEST_F(WebhookStoreTest, LogTrim_DeletesTheDeliveriesItDropsWithTheirKeysDeclared) {
  StoreLimits limits;
  limits.log_size = 2;
  WebhookStore store(pool_, limits);
  const std::string sub = Subscribe(store, "wh_1");
  ASSERT_TRUE(store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(4),
                            {Event("e1"), Event("e2"), Event("e3"), Event("e4")}, kT0)
                  .ok());
  for (int i = 0; i < 4; ++i) {
    auto claimed = store.Claim(kOrg, sub, "r", kT0, absl::Seconds(15));
    ASSERT_TRUE(claimed.ok() && claimed->has_value()) << i << " " << claimed.status();
    auto finished = store.Finish(kOrg, sub, (*claimed)->delivery_id, "r", kT0, {true, 200, ""},
                                 kT0, absl::Hours(24), 20, (*claimed)->finish_touches);
    ASSERT_TRUE(finished.ok() && *finished) << i << " " << finished.status();
  }
  auto log = store.ListDeliveries(kOrg, sub, 0, 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->first.size(), 2u);
  EXPECT_EQ(log->first[0].event_id(), "e4");
  EXPECT_EQ(log->first[1].event_id(), "e3");
  for (const char* dropped : {"wh_1.e1", "wh_1.e2"}) {
    auto exists = pool_.Run({"EXISTS", DeliveryKey(kOrg, dropped)});
    ASSERT_TRUE(exists.ok());
    EXPECT_EQ(exists->integer, 0) << dropped;
  }
  // Deleting the subscription deletes its logged deliveries (each declared).
  ASSERT_TRUE(store.DeleteSubscription(kOrg, sub).ok());
  auto left = pool_.Run({"EXISTS", DeliveryKey(kOrg, "wh_1.e3"), DeliveryKey(kOrg, "wh_1.e4")});
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->integer, 0);
}

TEST_F(WebhookStoreTest, ScriptKeysBound_ACallThatWouldDeclareMoreIsRefusedAndNothingAcknowledged) {
  StoreLimits limits;
  limits.max_script_keys = 20;
  WebhookStore store(pool_, limits);
  const std::string sub = Subscribe(store, "wh_1");
  // 7 fixed keys + 3 of the subscription + one delivery per event: 15 fit.
  std::vector<OutboundEvent> events;
  for (int i = 0; i < 11; ++i) events.push_back(Event("e" + std::to_string(i)));
  auto queued =
      store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), Append(11), events, kT0, {sub});
  EXPECT_EQ(queued.status().code(), absl::StatusCode::kResourceExhausted) << queued.status();
  EXPECT_EQ(PendingInGroup(), 11);  // not acknowledged: read again later
  events.resize(10);
  queued = store.Enqueue(kOrg, StreamKey(Source::kKudos, kOrg), {}, events, kT0, {sub});
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->first, 10);
}

TEST(WebhookStoreLimits, ScriptKeysNeeded_CoversTheDefaultsWithinTheDefaultBound) {
  StoreLimits limits;
  // 7 + 3 x 51 + 51 x (100 + 200): an enqueue of a full batch to every subscription.
  EXPECT_EQ(ScriptKeysNeeded(limits, 100), 7 + 3 * 51 + 51 * 300);
  EXPECT_LE(ScriptKeysNeeded(limits, 100), limits.max_script_keys);
  limits.max_pending = 100000;
  EXPECT_EQ(ScriptKeysNeeded(limits, 100), 7 + 3 * 51 + 100000 + 200 + 1);
}

}  // namespace
}  // namespace integrations::webhooks
