// What `lb:{org}:events` stores of a leaderboard.v1.LeaderboardEvent (issue
// 15, memory): a badge or streak event without the fields a reader puts
// back: its org (the stream's), its event_id (derived from what happened:
// "badge.earned/<person>/<badge>", "streak.extended/<kind>/<person>/<day>")
// and a badge's two earn times (the event's time). 77 of a badge event's
// ~205 bytes. The leaderboard writes it (and reads period.closed events
// back), the integrations service turns every event into a webhook: both
// read through ParseStoredEvent / CompleteStoredEvent, which take the full
// form (written before, or with --lb_events_full) as it is.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "leaderboard/v1/leaderboard.pb.h"

namespace common::events {

// The stable ids of badge and streak events (LeaderboardEvent.event_id):
// "badge.earned/<person>/<badge>", "streak.extended/<kind>/<person>/<day>"
// (day "YYYY-MM-DD"). The leaderboard names its events with these and the
// reader derives a stored event's id with them.
std::string BadgeEventId(absl::string_view person, absl::string_view badge);
std::string StreakEventId(absl::string_view kind, absl::string_view person,
                          absl::string_view day);

// The id a badge or streak event is derived to have; "" for any other event
// (a period.closed id names its board: it is kept).
std::string DerivedEventId(const leaderboard::v1::LeaderboardEvent& event);

// The serialized stored form of `event` in its org's stream: without its
// event_id (the stored form's mark) only when ParseStoredEvent puts back
// exactly the event, else the full form.
std::string StoredEvent(const leaderboard::v1::LeaderboardEvent& event);

// The full event an entry of `org`'s stream stored (either form);
// INVALID_ARGUMENT when the bytes do not parse.
absl::StatusOr<leaderboard::v1::LeaderboardEvent> ParseStoredEvent(absl::string_view org,
                                                                  absl::string_view bytes);
// The same for an event already parsed from an entry of `org`'s stream:
// puts back what the stored form left out (nothing for the full form).
void CompleteStoredEvent(absl::string_view org, leaderboard::v1::LeaderboardEvent& event);

}  // namespace common::events
