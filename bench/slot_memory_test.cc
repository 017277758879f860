// MeasureSlot against a real redis-server (tests/harness).
#include "bench/slot_memory.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "tests/harness/process.h"

namespace bench {
namespace {

int64_t MemoryUsage(Redis& redis, const std::string& key) {
  return redis.Run({"MEMORY", "USAGE", key, "SAMPLES", "0"}).integer;
}

TEST(SlotMemoryTest, SumsMemoryUsageOfEveryKeyOfTheOrgSlotAndNoOther) {
  harness::RedisServer server;
  Redis redis("127.0.0.1", server.port());
  int64_t expected = 0;
  // More keys than one SCAN page, of several types and classes.
  for (int i = 0; i < 2500; ++i) {
    std::string key = absl::StrCat("kudos:{acme}:k:", i);
    redis.Run({"HSET", key, "pb", std::string(100 + i % 50, 'x')});
    expected += MemoryUsage(redis, key);
  }
  redis.Run({"ZADD", "lb:{acme}:points:week", "1", "a", "2", "b"});
  redis.Run({"XADD", "kudos:{acme}:events", "*", "event", "e"});
  expected += MemoryUsage(redis, "lb:{acme}:points:week") + MemoryUsage(redis, "kudos:{acme}:events");
  // Other orgs, a look-alike tag and the global set are not acme's.
  redis.Run({"SET", "kudos:{acme2}:settings", "x"});
  redis.Run({"SET", "kudos:{other}:settings", "x"});
  redis.Run({"SADD", "platform:orgs", "acme"});

  SlotMemory m = MeasureSlot(redis, "acme");

  EXPECT_EQ(m.keys, 2502);
  EXPECT_EQ(m.bytes, expected);
  EXPECT_EQ(m.by_class["kudos:k"].keys, 2500);
  EXPECT_EQ(m.by_class["lb:points"].keys, 1);
  EXPECT_EQ(m.by_class["kudos:events"].keys, 1);
  EXPECT_EQ(m.by_class.size(), 3u);
  EXPECT_EQ(m.BytesWithPrefix("lb:"), MemoryUsage(redis, "lb:{acme}:points:week"));
}

TEST(SlotMemoryTest, KeysExpiringByTheSimulatedNowAreCountedApart) {
  harness::RedisServer server;
  Redis redis("127.0.0.1", server.port());
  const int64_t now_ms = std::stoll(redis.Run({"TIME"}).elements.at(0).str) * 1000;
  const int64_t hour_ms = 3600 * 1000;
  redis.Run({"SET", "kudos:{acme}:req:a", "1", "PXAT", absl::StrCat(now_ms + hour_ms)});
  redis.Run({"SET", "kudos:{acme}:req:b", "1", "PXAT", absl::StrCat(now_ms + 3 * hour_ms)});
  redis.Run({"SET", "kudos:{acme}:k:1", "1"});
  const int64_t a = MemoryUsage(redis, "kudos:{acme}:req:a");

  SlotMemory later = MeasureSlot(redis, "acme", now_ms + 2 * hour_ms);
  SlotMemory today = MeasureSlot(redis, "acme");

  EXPECT_EQ(later.keys, 2);
  EXPECT_EQ(later.expired_by_as_of_keys, 1);
  EXPECT_EQ(later.expired_by_as_of_bytes, a);
  EXPECT_EQ(today.keys, 3);
  EXPECT_EQ(today.expired_by_as_of_keys, 0);
}

TEST(SlotMemoryTest, MoreKeysThanTheBoundIsRefusedRatherThanAPartialFigure) {
  harness::RedisServer server;
  Redis redis("127.0.0.1", server.port());
  for (int i = 0; i < 50; ++i) redis.Run({"SET", absl::StrCat("kudos:{acme}:k:", i), "x"});

  EXPECT_THROW(MeasureSlot(redis, "acme", std::nullopt, /*max_keys=*/49), std::runtime_error);
  EXPECT_EQ(MeasureSlot(redis, "acme", std::nullopt, /*max_keys=*/50).keys, 50);
}

TEST(SlotMemoryTest, KeyClassIsThePrefixAndTheFirstSegmentAfterTheTag) {
  EXPECT_EQ(KeyClass("kudos:{acme}:k:123"), "kudos:k");
  EXPECT_EQ(KeyClass("lb:{acme}:points_received:week:2026-W48:org"), "lb:points_received");
  EXPECT_EQ(KeyClass("audit:{acme}"), "audit");
  EXPECT_EQ(KeyClass("platform:orgs"), "platform:orgs");
}

}  // namespace
}  // namespace bench
