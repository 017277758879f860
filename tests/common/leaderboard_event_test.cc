// The stored form of the leaderboard's events (common/events/leaderboard_event.h):
// what it leaves out, that every reader gets the event back whole, and that
// anything the reader could not put back exactly stays in.
#include "common/events/leaderboard_event.h"

#include <gtest/gtest.h>

#include "google/protobuf/util/message_differencer.h"

namespace {

namespace v1 = leaderboard::v1;
using google::protobuf::util::MessageDifferencer;

google::protobuf::Timestamp At(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

v1::LeaderboardEvent Badge() {
  v1::LeaderboardEvent event;
  event.set_event_id("badge.earned/p00041/first_kudos_given");
  event.set_org_id("acme");
  *event.mutable_event_time() = At(1796103520, 655000000);
  v1::BadgeEarned& earned = *event.mutable_badge_earned();
  earned.set_person_id("p00041");
  earned.mutable_badge()->set_badge_id("first_kudos_given");
  earned.mutable_badge()->set_display_name("First kudos given");
  *earned.mutable_badge()->mutable_earn_time() = event.event_time();
  *earned.mutable_earned_time() = event.event_time();
  earned.set_cause_kudos_id("k1627dad15f97eca5fb2c1999");
  return event;
}

v1::LeaderboardEvent Streak() {
  v1::LeaderboardEvent event;
  event.set_event_id("streak.extended/giving/p00041/2026-03-09");
  event.set_org_id("acme");
  *event.mutable_event_time() = At(1773050400, 0);
  v1::StreakExtended& streak = *event.mutable_streak_extended();
  streak.set_person_id("p00041");
  streak.set_kind(v1::STREAK_KIND_GIVING);
  streak.set_length_days(3);
  streak.mutable_day()->set_year(2026);
  streak.mutable_day()->set_month(3);
  streak.mutable_day()->set_day(9);
  return event;
}

void ExpectReadBackWhole(const v1::LeaderboardEvent& event) {
  absl::StatusOr<v1::LeaderboardEvent> back =
      common::events::ParseStoredEvent(event.org_id(), common::events::StoredEvent(event));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*back, event))
      << back->DebugString() << " instead of " << event.DebugString();
}

TEST(StoredLeaderboardEvent, ABadgeEventLeavesOutItsOrgIdAndEarnTimesAndReadsBackWhole) {
  v1::LeaderboardEvent event = Badge();
  v1::LeaderboardEvent stored;
  ASSERT_TRUE(stored.ParseFromString(common::events::StoredEvent(event)));
  EXPECT_EQ(stored.org_id(), "");
  EXPECT_EQ(stored.event_id(), "");
  EXPECT_FALSE(stored.badge_earned().has_earned_time());
  EXPECT_FALSE(stored.badge_earned().badge().has_earn_time());
  EXPECT_EQ(stored.badge_earned().badge().display_name(), "First kudos given");
  // 77 of the full form's bytes: the id (39), the org (6), two times (2 x 14).
  EXPECT_EQ(event.ByteSizeLong() - stored.ByteSizeLong(), 39u + 6u + 2u * 14u);
  ExpectReadBackWhole(event);
}

TEST(StoredLeaderboardEvent, AStreakEventLeavesOutItsIdAndReadsBackWholeWithItsLengthMerged) {
  v1::LeaderboardEvent event = Streak();
  v1::LeaderboardEvent stored;
  ASSERT_TRUE(stored.ParseFromString(common::events::StoredEvent(event)));
  EXPECT_EQ(stored.event_id(), "");
  ExpectReadBackWhole(event);
  // The apply script appends the length to the stored prefix (a merge).
  v1::LeaderboardEvent prefix = event;
  prefix.mutable_streak_extended()->clear_length_days();
  std::string bytes = common::events::StoredEvent(prefix);
  v1::LeaderboardEvent length;
  length.mutable_streak_extended()->set_length_days(3);
  bytes += length.SerializeAsString();
  absl::StatusOr<v1::LeaderboardEvent> back = common::events::ParseStoredEvent("acme", bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*back, event)) << back->DebugString();
}

TEST(StoredLeaderboardEvent, KeepsWhatAReaderCouldNotPutBackExactly) {
  v1::LeaderboardEvent other_id = Badge();
  other_id.set_event_id("badge.earned/someone-else/first_kudos_given");
  v1::LeaderboardEvent other_time = Badge();
  *other_time.mutable_badge_earned()->mutable_earned_time() = At(1796103520, 655000001);
  v1::LeaderboardEvent no_badge_time = Badge();
  no_badge_time.mutable_badge_earned()->mutable_badge()->clear_earn_time();
  v1::LeaderboardEvent odd_kind = Streak();
  odd_kind.set_event_id("streak.extended/sideways/p00041/2026-03-09");
  v1::LeaderboardEvent closed;
  closed.set_event_id("period.closed/points_received/week/2026-W10/org");
  closed.set_org_id("acme");
  closed.mutable_period_closed()->set_period("2026-W10");
  for (const v1::LeaderboardEvent& event : {other_id, other_time, no_badge_time, odd_kind, closed}) {
    SCOPED_TRACE(event.DebugString());
    ExpectReadBackWhole(event);
  }
  v1::LeaderboardEvent stored;
  ASSERT_TRUE(stored.ParseFromString(common::events::StoredEvent(other_id)));
  EXPECT_EQ(stored.event_id(), other_id.event_id());
  ASSERT_TRUE(stored.ParseFromString(common::events::StoredEvent(closed)));
  EXPECT_EQ(stored.event_id(), closed.event_id());
  EXPECT_EQ(stored.org_id(), "acme");
  ASSERT_TRUE(stored.ParseFromString(common::events::StoredEvent(no_badge_time)));
  EXPECT_EQ(stored.event_id(), no_badge_time.event_id()) << "the full form: read as it is";
}

TEST(StoredLeaderboardEvent, TheFullFormWrittenBeforeReadsAsItIsAndGarbageIsRefused) {
  v1::LeaderboardEvent event = Badge();
  absl::StatusOr<v1::LeaderboardEvent> back =
      common::events::ParseStoredEvent("acme", event.SerializeAsString());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*back, event));
  absl::StatusOr<v1::LeaderboardEvent> garbage =
      common::events::ParseStoredEvent("acme", std::string("\xff\xff\xff", 3));
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
