#include "services/kudos/social_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {

const std::vector<AllowedEmoji>& AllowedEmojis() {
  static const std::vector<AllowedEmoji>* const kEmojis = new std::vector<AllowedEmoji>{
      {"thumbsup", "\xF0\x9F\x91\x8D"},
      {"heart", "\xE2\x9D\xA4\xEF\xB8\x8F"},
      {"clap", "\xF0\x9F\x91\x8F"},
      {"tada", "\xF0\x9F\x8E\x89"},
      {"fire", "\xF0\x9F\x94\xA5"},
      {"rocket", "\xF0\x9F\x9A\x80"},
      {"star", "\xE2\xAD\x90"},
      {"100", "\xF0\x9F\x92\xAF"},
      {"raised_hands", "\xF0\x9F\x99\x8C"},
      {"smile", "\xF0\x9F\x98\x84"},
  };
  return *kEmojis;
}

absl::StatusOr<std::string> NormalizeEmoji(absl::string_view emoji) {
  absl::string_view code = emoji;
  if (code.size() > 2 && absl::ConsumePrefix(&code, ":")) absl::ConsumeSuffix(&code, ":");
  for (const AllowedEmoji& allowed : AllowedEmojis()) {
    if (code == allowed.code || emoji == allowed.text) return std::string(allowed.code);
  }
  // The heart without its variation selector is the same emoji.
  if (emoji == "\xE2\x9D\xA4") return std::string("heart");
  std::vector<std::string> codes;
  for (const AllowedEmoji& allowed : AllowedEmojis()) codes.push_back(allowed.code);
  return absl::InvalidArgumentError(
      absl::StrCat("emoji: '", emoji.substr(0, 32), "' is not an allowed reaction; use one of ",
                   absl::StrJoin(codes, ", "), " (or the emoji itself)"));
}

absl::Status ValidateText(absl::string_view field, absl::string_view text, int max_chars,
                          bool required) {
  absl::StatusOr<int> length = Utf8Length(text);
  if (!length.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  if (required && *length == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required (1..", max_chars, " characters)"));
  }
  if (*length > max_chars) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", *length, " characters, at most ", max_chars));
  }
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": control characters other than newline and tab are not allowed"));
    }
  }
  if (required && absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be only spaces"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSocialId(absl::string_view field, absl::string_view id, char prefix) {
  const bool shaped = id.size() >= 2 && id.size() <= 64 && id[0] == prefix &&
                      std::all_of(id.begin() + 1, id.end(), [](char c) {
                        return absl::ascii_isalnum(static_cast<unsigned char>(c));
                      });
  if (!shaped) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", id.substr(0, 64), "' is not an id this service made ('",
                     std::string(1, prefix), "' and letters or digits)"));
  }
  return absl::OkStatus();
}

bool CanSeeKudos(const kudos::v1::Kudos& kudos, absl::string_view viewer, bool viewer_is_admin,
                 const std::map<std::string, kudos::v1::Person>& people) {
  if (kudos.visibility() != kudos::v1::KUDOS_VISIBILITY_PRIVATE || viewer_is_admin) return true;
  if (kudos.giver_id() == viewer) return true;
  for (const std::string& recipient : kudos.recipient_ids()) {
    if (recipient == viewer) return true;
    auto person = people.find(recipient);
    if (person != people.end() && !person->second.manager_id().empty() &&
        person->second.manager_id() == viewer) {
      return true;
    }
  }
  return false;
}

std::string RetractionTransferId(absl::string_view original_transfer_id) {
  return absl::StrCat("retract:", original_transfer_id);
}

ledger::v1::Transfer ReversalOf(const ledger::v1::Transfer& original) {
  ledger::v1::Transfer reversal;
  reversal.set_transfer_id(RetractionTransferId(original.transfer_id()));
  *reversal.mutable_debit_account() = original.credit_account();
  *reversal.mutable_credit_account() = original.debit_account();
  reversal.set_amount(original.amount());
  reversal.set_kind(ledger::v1::TRANSFER_KIND_RETRACTION);
  reversal.set_reference(original.reference());
  *reversal.mutable_tags() = original.tags();
  reversal.set_reverses_transfer_id(original.transfer_id());
  return reversal;
}

std::vector<kudos::v1::ReactionCount> ReactionSummary(const std::map<std::string, int64_t>& counts,
                                                      const std::vector<std::string>& mine) {
  std::vector<kudos::v1::ReactionCount> summary;
  for (const AllowedEmoji& allowed : AllowedEmojis()) {
    auto count = counts.find(allowed.code);
    if (count == counts.end() || count->second <= 0) continue;
    kudos::v1::ReactionCount entry;
    entry.set_emoji(allowed.code);
    entry.set_count(count->second);
    entry.set_reacted_by_me(std::find(mine.begin(), mine.end(), allowed.code) != mine.end());
    summary.push_back(std::move(entry));
  }
  return summary;
}

}  // namespace kudos
