// The slash command's payload: Slack's form body and the command text
// `@bob <@U123|carol> 5 #teamwork thanks for the quick fix`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace integrations {

// application/x-www-form-urlencoded: name/value pairs in order, decoded
// ('+' is a space). INVALID_ARGUMENT on a malformed percent escape.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseForm(
    absl::string_view body);
// The first value of `name`, or "".
std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      absl::string_view name);

// A recipient as written: Slack's escaped mention (<@U123|bob> or <@U123>)
// names a Slack user, a plain @name names a person id directly.
struct SlackRecipient {
  std::string slack_user_id;  // set for an escaped mention
  std::string person_id;      // set for a plain @name
  std::string as_written;     // "<@U123|bob>" or "@bob", for messages
};

struct KudosCommand {
  std::vector<SlackRecipient> recipients;
  std::optional<int64_t> points;
  std::vector<std::string> values;  // value ids, in order, without '#'
  std::string message;
};

// The usage line shown with every parse error.
inline constexpr char kSlackUsage[] =
    "usage: /kudos @person [@person...] [points] [#value...] message, e.g. "
    "/kudos @bob @carol 5 #teamwork thanks for the quick fix";

// Leading tokens in any order: mentions, one number (the points per
// recipient), #values (also Slack's escaped channel form <#C123|value>);
// the message is the rest of the text, as written. INVALID_ARGUMENT with a
// message for the Slack user (what to fix) when there is no recipient, the
// points are not a number in range, or the message is empty.
absl::StatusOr<KudosCommand> ParseKudosText(absl::string_view text);

}  // namespace integrations
