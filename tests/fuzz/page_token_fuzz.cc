// Fuzzes the page-token decoders a client can send back: the leaderboard's
// (keyset position), the kudos feed's and lists' (an opaque position) and
// the ledger's (a sequence bound to an account).
// Input: a selector byte, then the token text.
// Invariants: a refusal is INVALID_ARGUMENT naming page_token; whatever
// decodes re-encodes to a token that decodes to the same value.
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "common/check/check.h"
#include "services/kudos/kudos_rules.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/ledger/ledger_rules.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

void CheckRefusal(const absl::Status& status) {
  KUDOS_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
              "a bad page token is INVALID_ARGUMENT");
  KUDOS_CHECK(absl::StrContains(status.message(), "page_token"),
              "the refusal names the page_token field");
}

void Leaderboard(const std::string& text) {
  absl::StatusOr<leaderboard::PageToken> token = leaderboard::DecodePageToken(text);
  if (!token.ok()) return CheckRefusal(token.status());
  KUDOS_CHECK(leaderboard::ValidId(token->subject_id), "a decoded boundary is a valid id");
  absl::StatusOr<leaderboard::PageToken> again =
      leaderboard::DecodePageToken(leaderboard::EncodePageToken(*token));
  KUDOS_CHECK(again.ok(), "a decoded token re-encodes to a valid one");
  KUDOS_CHECK(again->direction == token->direction && again->score == token->score &&
                  again->subject_id == token->subject_id && again->period == token->period &&
                  again->board_key == token->board_key,
              "encode and decode are inverse");
}

void Kudos(const std::string& text) {
  absl::StatusOr<std::string> position = kudos::DecodePageToken(text);
  if (!position.ok()) return CheckRefusal(position.status());
  absl::StatusOr<std::string> again = kudos::DecodePageToken(kudos::EncodePageToken(*position));
  // Long positions may encode past the decoder's size limit; those never
  // come from the service (positions are sequence numbers and ids).
  if (position->size() <= 64) {
    KUDOS_CHECK(again.ok() && *again == *position, "encode and decode are inverse");
  }
}

void Ledger(const std::string& text) {
  const std::string account = "earned:alice";
  absl::StatusOr<int64_t> sequence = ledger::DecodePageToken(text, account);
  if (!sequence.ok()) return CheckRefusal(sequence.status());
  KUDOS_CHECK(*sequence >= 1, "a decoded sequence is positive");
  absl::StatusOr<int64_t> again =
      ledger::DecodePageToken(ledger::EncodePageToken(*sequence, account), account);
  KUDOS_CHECK(again.ok() && *again == *sequence, "encode and decode are inverse");
  KUDOS_CHECK(!ledger::DecodePageToken(text, "earned:bob").ok(),
              "a token of one account is refused for another");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input input(data, size);
  uint8_t which = input.Byte() % 3;
  std::string text = input.Rest();
  if (which == 0) Leaderboard(text);
  if (which == 1) Kudos(text);
  if (which == 2) Ledger(text);
  return 0;
}
