// What a webhook carries: the platform's stream entries turned into
// outbound events {id, type, org, created_at, data} (and the Slack text of
// the same event). Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace integrations::webhooks {

// The org streams events come from, in the order the scripts take them as
// KEYS[2..5].
enum class Source { kKudos = 0, kLedger = 1, kFeedback = 2, kLeaderboard = 3 };
inline constexpr int kSourceCount = 4;

std::string StreamKey(Source source, absl::string_view org);
// The source whose stream key is `key` in `org`, or false.
bool SourceOfStream(absl::string_view org, absl::string_view key, Source* source);

// Every event type a subscription may ask for, and where it comes from.
// redemption.created / .cancelled are not offered: the ledger's outbox
// carries postings only, and a redemption posts when it is fulfilled.
const std::vector<std::pair<std::string, Source>>& EventTypes();
// INVALID_ARGUMENT naming the type and listing the known ones.
absl::Status CheckEventType(absl::string_view type);

struct OutboundEvent {
  // Stable: derived from the stream entry (or the leaderboard's own event
  // id), so every retry and redelivery carries the same id.
  std::string id;
  std::string type;
  int64_t created_ms = 0;
  // {"id","type","org","created_at","data"}.
  std::string json_body;
  // {"text": "..."} for a Slack incoming webhook.
  std::string slack_body;
};

// One stream entry as read: its id and field/value pairs.
struct StreamEntry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
};

// The webhook events of one entry: none for entries no webhook carries
// (e.g. a person changed), one or more otherwise. An entry that does not
// parse gives DATA_LOSS naming it (the caller logs it and moves on).
absl::Status Translate(Source source, absl::string_view org, const StreamEntry& entry,
                       std::vector<OutboundEvent>& out);

}  // namespace integrations::webhooks
