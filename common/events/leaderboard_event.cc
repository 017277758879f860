#include "common/events/leaderboard_event.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace common::events {

namespace v1 = leaderboard::v1;

namespace {

bool SameTime(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() == b.seconds() && a.nanos() == b.nanos();
}

}  // namespace

std::string BadgeEventId(absl::string_view person, absl::string_view badge) {
  return absl::StrCat("badge.earned/", person, "/", badge);
}

std::string StreakEventId(absl::string_view kind, absl::string_view person,
                          absl::string_view day) {
  return absl::StrCat("streak.extended/", kind, "/", person, "/", day);
}

std::string DerivedEventId(const v1::LeaderboardEvent& event) {
  if (event.has_badge_earned()) {
    const v1::BadgeEarned& earned = event.badge_earned();
    return BadgeEventId(earned.person_id(), earned.badge().badge_id());
  }
  if (event.has_streak_extended()) {
    const v1::StreakExtended& streak = event.streak_extended();
    return StreakEventId(streak.kind() == v1::STREAK_KIND_GIVING ? "giving" : "receiving",
                         streak.person_id(),
                         absl::StrFormat("%04d-%02d-%02d", streak.day().year(),
                                         streak.day().month(), streak.day().day()));
  }
  return "";
}

// The stored form is the one without an event_id: the full form (every
// period.closed, anything written before) is left as it is.
void CompleteStoredEvent(absl::string_view org, v1::LeaderboardEvent& event) {
  if (!event.event_id().empty()) return;
  if (event.org_id().empty()) event.set_org_id(std::string(org));
  if (event.has_badge_earned() && event.has_event_time()) {
    v1::BadgeEarned& earned = *event.mutable_badge_earned();
    if (!earned.has_earned_time()) *earned.mutable_earned_time() = event.event_time();
    if (earned.has_badge() && !earned.badge().has_earn_time()) {
      *earned.mutable_badge()->mutable_earn_time() = event.event_time();
    }
  }
  event.set_event_id(DerivedEventId(event));
}

std::string StoredEvent(const v1::LeaderboardEvent& event) {
  if (event.event_id().empty() || event.event_id() != DerivedEventId(event)) {
    return event.SerializeAsString();
  }
  v1::LeaderboardEvent stored = event;
  stored.clear_org_id();
  stored.clear_event_id();
  if (stored.has_badge_earned() && event.has_event_time()) {
    v1::BadgeEarned& earned = *stored.mutable_badge_earned();
    if (earned.has_earned_time() && SameTime(earned.earned_time(), event.event_time())) {
      earned.clear_earned_time();
    }
    if (earned.has_badge() && earned.badge().has_earn_time() &&
        SameTime(earned.badge().earn_time(), event.event_time())) {
      earned.mutable_badge()->clear_earn_time();
    }
  }
  // What a reader gets back must be the event itself, or nothing is left out.
  v1::LeaderboardEvent back = stored;
  CompleteStoredEvent(event.org_id(), back);
  if (!google::protobuf::util::MessageDifferencer::Equals(back, event)) {
    return event.SerializeAsString();
  }
  return stored.SerializeAsString();
}

absl::StatusOr<v1::LeaderboardEvent> ParseStoredEvent(absl::string_view org,
                                                      absl::string_view bytes) {
  v1::LeaderboardEvent event;
  if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("a leaderboard event of org '", org, "' does not parse"));
  }
  CompleteStoredEvent(org, event);
  return event;
}

}  // namespace common::events
