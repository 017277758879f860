#include "services/integrations/slack_command.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace integrations {
namespace {

// A Slack id ("U0123ABC") or a person id: letters, digits, '.', '_', '-'.
bool IsIdText(absl::string_view text) {
  return !text.empty() && text.size() <= 64 &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

int HexDigit(char c) {
  if (absl::ascii_isdigit(c)) return c - '0';
  return absl::ascii_tolower(c) - 'a' + 10;
}

absl::StatusOr<std::string> FormDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c != '%') {
      out.push_back(c);
    } else if (i + 2 < text.size() && absl::ascii_isxdigit(text[i + 1]) &&
               absl::ascii_isxdigit(text[i + 2])) {
      out.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2])));
      i += 2;
    } else {
      return absl::InvalidArgumentError("the form body holds a malformed %-escape");
    }
  }
  return out;
}

// "<@U123|bob>" / "<@U123>" -> U123; nullopt otherwise.
std::optional<std::string> EscapedMention(absl::string_view token) {
  if (!absl::ConsumePrefix(&token, "<@") || !absl::ConsumeSuffix(&token, ">")) return {};
  absl::string_view id = token.substr(0, token.find('|'));
  if (!IsIdText(id)) return {};
  return std::string(id);
}

// "#teamwork" / "<#C123|teamwork>" -> teamwork; nullopt otherwise.
std::optional<std::string> ValueTag(absl::string_view token) {
  if (absl::ConsumePrefix(&token, "<#") && absl::ConsumeSuffix(&token, ">")) {
    size_t bar = token.find('|');
    if (bar == absl::string_view::npos) return {};
    token.remove_prefix(bar + 1);
  } else if (!absl::ConsumePrefix(&token, "#")) {
    return {};
  }
  if (!IsIdText(token)) return {};
  return std::string(token);
}

// "5", "+5", "-5": the org's bounds are checked by kudos.
bool IsSignedNumber(absl::string_view token) {
  if (!token.empty() && (token[0] == '+' || token[0] == '-')) token.remove_prefix(1);
  return !token.empty() && std::all_of(token.begin(), token.end(), absl::ascii_isdigit);
}

absl::Status Usage(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " (", kSlackUsage, ")"));
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseForm(
    absl::string_view body) {
  std::vector<std::pair<std::string, std::string>> form;
  for (absl::string_view pair : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    absl::StatusOr<std::string> name = FormDecode(parts.first);
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> value = FormDecode(parts.second);
    if (!value.ok()) return value.status();
    form.emplace_back(std::move(*name), std::move(*value));
  }
  return form;
}

std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      absl::string_view name) {
  for (const auto& [key, value] : form) {
    if (key == name) return value;
  }
  return "";
}

absl::StatusOr<KudosCommand> ParseKudosText(absl::string_view text) {
  KudosCommand command;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(text);
  // Bounded: each pass consumes one token of `rest`.
  while (!rest.empty()) {
    size_t end = 0;
    while (end < rest.size() && !absl::ascii_isspace(rest[end])) ++end;
    const absl::string_view token = rest.substr(0, end);
    if (std::optional<std::string> user = EscapedMention(token)) {
      command.recipients.push_back({*user, "", std::string(token)});
    } else if (absl::StartsWith(token, "@") && IsIdText(token.substr(1))) {
      command.recipients.push_back({"", std::string(token.substr(1)), std::string(token)});
    } else if (std::optional<std::string> value = ValueTag(token)) {
      if (std::find(command.values.begin(), command.values.end(), *value) ==
          command.values.end()) {
        command.values.push_back(*value);
      }
    } else if (!command.points.has_value() && IsSignedNumber(token)) {
      int64_t points = 0;
      if (token.size() > 10 || !absl::SimpleAtoi(token, &points)) {
        return Usage(absl::StrCat("points: '", token, "' is too large"));
      }
      command.points = points;
    } else {
      break;  // the message starts here
    }
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(end));
  }
  command.message = std::string(absl::StripTrailingAsciiWhitespace(rest));
  if (command.recipients.empty()) {
    return Usage("name at least one recipient with @");
  }
  if (command.message.empty()) {
    return Usage("add a message saying what the kudos is for");
  }
  return command;
}

}  // namespace integrations
