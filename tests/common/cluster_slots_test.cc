#include "common/redis/cluster_slots.h"

#include <gtest/gtest.h>

namespace common::redis {
namespace {

TEST(ClusterSlotsTest, Crc16IsXmodemAsTheClusterSpecSays) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);  // the spec's test vector
  EXPECT_EQ(Crc16(""), 0);
}

TEST(ClusterSlotsTest, KnownSlotsAndHashTags) {
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  // Only the first {...} counts; an empty {} is no tag.
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), Crc16("foo{}{bar}") % 16384);
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar"), KeySlot("foo{bar"));
  // An org's keys: one slot.
  EXPECT_EQ(KeySlot("lb:{acme}:points_received:week:2026-W48:org"), KeySlot("ledger:{acme}:outbox"));
  for (int i = 0; i < 1000; ++i) {
    int slot = KeySlot("k" + std::to_string(i));
    EXPECT_GE(slot, 0);
    EXPECT_LT(slot, 16384);
  }
}

TEST(ClusterSlotsTest, KeysOfTheUsualCommands) {
  using V = std::vector<absl::string_view>;
  EXPECT_EQ(KeysOf({"GET", "a"}), V({"a"}));
  EXPECT_EQ(KeysOf({"set", "a", "1"}), V({"a"}));
  EXPECT_EQ(KeysOf({"PING"}), V());
  EXPECT_EQ(KeysOf({"MULTI"}), V());
  EXPECT_EQ(KeysOf({"SCRIPT", "LOAD", "return 1"}), V());
  EXPECT_EQ(KeysOf({"MGET", "a", "b"}), V({"a", "b"}));
  EXPECT_EQ(KeysOf({"MSET", "a", "1", "b", "2"}), V({"a", "b"}));
  EXPECT_EQ(KeysOf({"EVALSHA", "sha", "2", "k1", "k2", "arg"}), V({"k1", "k2"}));
  EXPECT_EQ(KeysOf({"EVAL", "return 1", "0", "arg"}), V());
  EXPECT_EQ(KeysOf({"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "s1", "s2", ">",
                    ">"}),
            V({"s1", "s2"}));
  EXPECT_EQ(KeysOf({"BLPOP", "q1", "q2", "0"}), V({"q1", "q2"}));
  EXPECT_EQ(KeysOf({"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}), V({"d", "a", "b"}));
  EXPECT_EQ(KeysOf({"XGROUP", "CREATE", "s", "g", "$"}), V({"s"}));
}

TEST(ClusterSlotsTest, SlotOfRefusesKeysSpanningSlots) {
  absl::StatusOr<std::optional<int>> one =
      SlotOf({{"MULTI"}, {"SET", "{acme}:a", "1"}, {"INCR", "{acme}:b"}, {"EXEC"}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(**one, KeySlot("acme"));
  absl::StatusOr<std::optional<int>> none = SlotOf({{"PING"}, {"INFO"}});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  absl::StatusOr<std::optional<int>> cross = SlotOf({{"SET", "{acme}:a", "1"}, {"GET", "{zeta}:a"}});
  EXPECT_EQ(cross.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cross.status().message().find("CROSSSLOT"), absl::string_view::npos);
}

TEST(ClusterSlotsTest, SeedsAreOneAddressOrAList) {
  absl::StatusOr<std::vector<Endpoint>> one = ParseSeeds("127.0.0.1:6379");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].port, 6379);
  absl::StatusOr<std::vector<Endpoint>> list = ParseSeeds("10.0.0.1:7000, 10.0.0.2:7001,redis-2:7002");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].host, "redis-2");
  EXPECT_EQ(ParseSeeds("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSeeds("a:1,,b:2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSeeds("a:1,b").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace common::redis
