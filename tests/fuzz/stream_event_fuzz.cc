// Fuzzes event decoding in the leaderboard: stream entries as Redis returns
// them (ParseEntries, ParseStreamId), the event bytes parsed and planned
// (PlanKudosEvent / PlanLedgerEvent), and each plan applied to an in-memory
// image with apply_event.lua's semantics (ProjectionImage), entry after
// entry, so a settings or person change shapes the plans after it.
// Input: up to 8 records of [kind byte][length: 2 bytes, big endian][bytes].
// Invariants: every key a plan names lies in the org's {acme} hash slot; a
// plan of ours is never malformed; applying an entry twice applies it once.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/check/check.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/projection_image.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

constexpr char kOrg[] = "acme";
constexpr int kMaxRecords = 8;

// Redis Cluster's hash tag: between the first '{' and the next '}'.
std::string HashTag(const std::string& key) {
  size_t open = key.find('{');
  if (open == std::string::npos) return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

// An XRANGE reply of one entry, as hiredis hands it over.
common::redis::Reply XrangeReply(const std::string& id, const std::string& event) {
  auto text = [](const std::string& s) {
    common::redis::Reply reply;
    reply.type = common::redis::Reply::Type::kString;
    reply.str = s;
    return reply;
  };
  common::redis::Reply fields;
  fields.type = common::redis::Reply::Type::kArray;
  fields.elements = {text("event"), text(event)};
  common::redis::Reply entry;
  entry.type = common::redis::Reply::Type::kArray;
  entry.elements = {text(id), fields};
  common::redis::Reply reply;
  reply.type = common::redis::Reply::Type::kArray;
  reply.elements = {entry};
  return reply;
}

leaderboard::ApplyPlan Plan(leaderboard::ProjectionImage& image, bool is_ledger,
                            const leaderboard::StreamEntry& entry,
                            const leaderboard::OrgCalendar& calendar, bool* parsed) {
  if (is_ledger) {
    ledger::v1::LedgerEvent event;
    *parsed = event.ParseFromString(entry.event);
    if (!*parsed) return {};
    return leaderboard::PlanLedgerEvent(kOrg, "l:" + entry.id, event, calendar);
  }
  kudos::v1::KudosEvent event;
  *parsed = event.ParseFromString(entry.event);
  if (!*parsed) return {};
  std::map<std::string, kudos::v1::Person> people =
      image.People(kOrg, leaderboard::PeopleOfEvent(event));
  return leaderboard::PlanKudosEvent(kOrg, "k:" + entry.id, event, calendar,
                                     [&](const std::string& id) {
                                       auto it = people.find(id);
                                       return it == people.end() ? std::string()
                                                                 : it->second.time_zone();
                                     });
}

void ApplyRecord(leaderboard::ProjectionImage& image, bool is_ledger, int index,
                 const std::string& bytes) {
  std::string id = absl::StrCat(1794700800000 + index, "-", index);
  std::vector<leaderboard::StreamEntry> entries =
      leaderboard::ParseEntries(XrangeReply(id, bytes));
  KUDOS_CHECK(entries.size() == 1 && entries[0].id == id && entries[0].event == bytes,
              "a stream entry parses to its id and event bytes");
  KUDOS_CHECK(leaderboard::ParseStreamId(id).second == static_cast<uint64_t>(index),
              "a stream id parses back");
  absl::StatusOr<leaderboard::OrgCalendar> calendar = image.Calendar(kOrg);
  KUDOS_CHECK(calendar.ok(), "settings written by a plan parse back");
  bool parsed = false;
  leaderboard::ApplyPlan plan = Plan(image, is_ledger, entries[0], *calendar, &parsed);
  if (!parsed) return;  // the consumer skips unparsable entries
  for (const std::string& key : plan.keys) {
    KUDOS_CHECK(HashTag(key) == kOrg, "a plan touches only keys in the org's hash slot");
  }
  absl::StatusOr<bool> applied = image.Apply(plan);
  KUDOS_CHECK(applied.ok(), "a plan built by PlanXEvent is well-formed");
  for (const leaderboard::ApplyPlan::StreakCheck& check : plan.streak_checks) {
    image.CheckGivingStreak(kOrg, *calendar, check);
  }
  absl::StatusOr<bool> again = image.Apply(plan);
  KUDOS_CHECK(again.ok() && !*again, "an entry applied twice is applied once");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::QuietProtobuf();
  fuzz::Input input(data, size);
  leaderboard::ProjectionImage image(absl::FromUnixSeconds(1794700800));
  for (int index = 1; index <= kMaxRecords && !input.empty(); ++index) {
    bool is_ledger = (input.Byte() & 1) != 0;
    size_t length = size_t{input.Byte()} << 8;
    length |= input.Byte();
    std::string bytes;
    for (size_t i = 0; i < length && !input.empty(); ++i) bytes.push_back(static_cast<char>(input.Byte()));
    ApplyRecord(image, is_ledger, index, bytes);
  }
  return 0;
}
