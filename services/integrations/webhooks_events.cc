#include "services/integrations/webhooks_events.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "common/events/leaderboard_event.h"
#include "feedback/v1/feedback.pb.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace integrations::webhooks {
namespace {

namespace pb = google::protobuf;

std::string JsonOf(const pb::Message& message) {
  std::string out;
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!pb::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

// A JSON string literal (quotes included), escaped by protobuf's printer.
std::string JsonString(absl::string_view text) {
  pb::Value value;
  value.set_string_value(std::string(text));
  std::string out;
  if (!pb::util::MessageToJsonString(value, &out).ok()) return "\"\"";
  return out;
}

// Slack's mrkdwn reserves &, < and >.
std::string SlackEscape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

// The ms of a stream id "<ms>-<seq>".
int64_t EntryMillis(absl::string_view id) {
  int64_t ms = 0;
  if (!absl::SimpleAtoi(id.substr(0, id.find('-')), &ms)) return 0;
  return ms;
}

int64_t Millis(const pb::Timestamp& time, int64_t fallback) {
  if (time.seconds() == 0 && time.nanos() == 0) return fallback;
  return time.seconds() * 1000 + time.nanos() / 1000000;
}

OutboundEvent Make(std::string id, std::string type, absl::string_view org, int64_t created_ms,
                   const pb::Message& data, absl::string_view slack_text) {
  OutboundEvent event;
  event.id = std::move(id);
  event.type = std::move(type);
  event.created_ms = created_ms;
  std::string created_at =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(created_ms), absl::UTCTimeZone());
  event.json_body = absl::StrCat("{\"id\":", JsonString(event.id), ",\"type\":",
                                 JsonString(event.type), ",\"org\":", JsonString(org),
                                 ",\"created_at\":", JsonString(created_at),
                                 ",\"data\":", JsonOf(data), "}");
  event.slack_body = absl::StrCat("{\"text\":", JsonString(slack_text), "}");
  return event;
}

const std::string* Field(const StreamEntry& entry, absl::string_view name) {
  for (const auto& [field, value] : entry.fields) {
    if (field == name) return &value;
  }
  return nullptr;
}

template <typename Message>
absl::Status ParseField(const StreamEntry& entry, absl::string_view name, Message& message) {
  const std::string* value = Field(entry, name);
  if (value == nullptr || !message.ParseFromString(*value)) {
    return absl::DataLossError(absl::StrCat("webhooks: stream entry ", entry.id, " has no parsable '",
                                            name, "' field"));
  }
  return absl::OkStatus();
}

std::string ValueTags(const pb::RepeatedPtrField<std::string>& values) {
  std::vector<std::string> tags;
  for (const std::string& value : values) tags.push_back(absl::StrCat("#", value));
  return absl::StrJoin(tags, " ");
}

absl::Status FromKudos(absl::string_view org, const StreamEntry& entry,
                       std::vector<OutboundEvent>& out) {
  kudos::v1::KudosEvent event;
  if (absl::Status s = ParseField(entry, "event", event); !s.ok()) return s;
  int64_t created_ms = Millis(event.event_time(), EntryMillis(entry.id));
  std::string id = absl::StrCat("evt_kudos_", entry.id);
  // A private kudos (issue 18) is for its giver, recipients and their
  // managers only: no webhook or Slack channel hears of it or its boosts.
  if (event.has_kudos_sent() &&
      event.kudos_sent().kudos().visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
    return absl::OkStatus();
  }
  if (event.has_kudos_boosted() &&
      event.kudos_boosted().visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
    return absl::OkStatus();
  }
  if (event.has_kudos_sent()) {
    const kudos::v1::Kudos& k = event.kudos_sent().kudos();
    // A celebration (issue 18 part 3) is a kudos from the company: no giver id.
    const std::string giver = k.from_company() ? std::string("The company") : k.giver_id();
    std::string text = SlackEscape(absl::StrCat(
        giver, " gave ", k.points_per_recipient(), " points to ",
        absl::StrJoin(k.recipient_ids(), ", "), ": ", k.message(), " ", ValueTags(k.values())));
    out.push_back(Make(id, "kudos.sent", org, created_ms, event.kudos_sent(), text));
  } else if (event.has_kudos_boosted()) {
    const kudos::v1::KudosBoosted& b = event.kudos_boosted();
    std::string text = SlackEscape(absl::StrCat(b.boost().booster_id(), " boosted kudos ",
                                                b.kudos_id(), " for ",
                                                absl::StrJoin(b.recipient_ids(), ", ")));
    out.push_back(Make(id, "kudos.boosted", org, created_ms, b, text));
  }
  return absl::OkStatus();
}

absl::Status FromLedger(absl::string_view org, const StreamEntry& entry,
                        std::vector<OutboundEvent>& out) {
  ledger::v1::LedgerEvent event;
  if (absl::Status s = ParseField(entry, "event", event); !s.ok()) return s;
  const ledger::v1::TransfersPosted& posted = event.transfers_posted();
  int index = 0;
  for (const ledger::v1::Transfer& transfer : posted.transfers()) {
    if (transfer.kind() != ledger::v1::TRANSFER_KIND_REDEMPTION) continue;
    ledger::v1::Redemption redemption;
    redemption.set_redemption_id(transfer.reference());
    redemption.set_person_id(transfer.debit_account().person_id());
    auto reward = transfer.tags().find("reward");
    if (reward != transfer.tags().end()) redemption.set_reward(reward->second);
    redemption.set_points(transfer.amount());
    redemption.set_state(ledger::v1::REDEMPTION_STATE_FULFILLED);
    redemption.set_transfer_id(transfer.transfer_id());
    int64_t created_ms = Millis(transfer.post_time(), Millis(posted.post_time(), EntryMillis(entry.id)));
    std::string text = SlackEscape(absl::StrCat(redemption.person_id(), " redeemed ",
                                                redemption.points(), " points for ",
                                                redemption.reward()));
    out.push_back(Make(absl::StrCat("evt_ledger_", entry.id, "_", index++), "redemption.fulfilled",
                       org, created_ms, redemption, text));
  }
  return absl::OkStatus();
}

absl::Status FromFeedback(absl::string_view org, const StreamEntry& entry,
                          std::vector<OutboundEvent>& out) {
  feedback::v1::Invitation invitation;
  if (absl::Status s = ParseField(entry, "invitation", invitation); !s.ok()) return s;
  std::string text = SlackEscape(absl::StrCat(invitation.person_id(), " is invited to rate team ",
                                              invitation.team_display_name(), " for ",
                                              invitation.period()));
  out.push_back(Make(absl::StrCat("evt_feedback_", entry.id), "survey.invitation", org,
                     EntryMillis(entry.id), invitation, text));
  return absl::OkStatus();
}

absl::Status FromLeaderboard(absl::string_view org, const StreamEntry& entry,
                             std::vector<OutboundEvent>& out) {
  leaderboard::v1::LeaderboardEvent event;
  if (absl::Status s = ParseField(entry, "event", event); !s.ok()) return s;
  // The stored form leaves out what the reader puts back (org, event_id, a
  // badge's earn times): common/events/leaderboard_event.h.
  common::events::CompleteStoredEvent(org, event);
  int64_t created_ms = Millis(event.event_time(), EntryMillis(entry.id));
  // The leaderboard's own ids are stable (derived from what happened).
  std::string id = event.event_id().empty() ? absl::StrCat("evt_lb_", entry.id)
                                            : absl::StrCat("evt_lb_", event.event_id());
  if (event.has_badge_earned()) {
    const auto& badge = event.badge_earned();
    out.push_back(Make(id, "badge.earned", org, created_ms, badge,
                       SlackEscape(absl::StrCat(badge.person_id(), " earned the badge ",
                                                badge.badge().display_name()))));
  } else if (event.has_streak_extended()) {
    const auto& streak = event.streak_extended();
    out.push_back(Make(id, "streak.extended", org, created_ms, streak,
                       SlackEscape(absl::StrCat(streak.person_id(), " is on a ",
                                                streak.length_days(), "-day streak"))));
  } else if (event.has_period_closed()) {
    const auto& closed = event.period_closed();
    std::vector<std::string> top;
    for (const auto& e : closed.entries()) {
      top.push_back(absl::StrCat(e.rank(), ". ", e.display_name().empty() ? e.subject_id()
                                                                          : e.display_name(),
                                 " (", e.score(), ")"));
    }
    out.push_back(Make(id, "period.closed", org, created_ms, closed,
                       SlackEscape(absl::StrCat("Period ", closed.period(), " closed: ",
                                                absl::StrJoin(top, ", ")))));
  }
  return absl::OkStatus();
}

}  // namespace

std::string StreamKey(Source source, absl::string_view org) {
  switch (source) {
    case Source::kKudos:
      return absl::StrCat("kudos:{", org, "}:events");
    case Source::kLedger:
      return absl::StrCat("ledger:{", org, "}:outbox");
    case Source::kFeedback:
      return absl::StrCat("feedback:{", org, "}:invitations");
    case Source::kLeaderboard:
      return absl::StrCat("lb:{", org, "}:events");
  }
  return "";
}

bool SourceOfStream(absl::string_view org, absl::string_view key, Source* source) {
  for (int i = 0; i < kSourceCount; ++i) {
    if (StreamKey(static_cast<Source>(i), org) == key) {
      *source = static_cast<Source>(i);
      return true;
    }
  }
  return false;
}

const std::vector<std::pair<std::string, Source>>& EventTypes() {
  static const auto* types = new std::vector<std::pair<std::string, Source>>{
      {"kudos.sent", Source::kKudos},
      {"kudos.boosted", Source::kKudos},
      {"redemption.fulfilled", Source::kLedger},
      {"survey.invitation", Source::kFeedback},
      {"badge.earned", Source::kLeaderboard},
      {"streak.extended", Source::kLeaderboard},
      {"period.closed", Source::kLeaderboard},
  };
  return *types;
}

absl::Status CheckEventType(absl::string_view type) {
  std::vector<std::string> known;
  for (const auto& [name, source] : EventTypes()) {
    if (name == type) return absl::OkStatus();
    known.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat("event_types: unknown event type '", type,
                                                 "'; known: ", absl::StrJoin(known, ", ")));
}

absl::Status Translate(Source source, absl::string_view org, const StreamEntry& entry,
                       std::vector<OutboundEvent>& out) {
  switch (source) {
    case Source::kKudos:
      return FromKudos(org, entry, out);
    case Source::kLedger:
      return FromLedger(org, entry, out);
    case Source::kFeedback:
      return FromFeedback(org, entry, out);
    case Source::kLeaderboard:
      return FromLeaderboard(org, entry, out);
  }
  return absl::OkStatus();
}

}  // namespace integrations::webhooks
