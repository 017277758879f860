// Fuzzes what the ledger builds for its Lua scripts from a client's
// transfer: validation (ValidatePostedTransfer, ValidateOrg), account keys,
// the idempotency fingerprint, the outbox event the script assembles from
// C++-encoded pieces (EventHeader + EventFragment(AppendSequence(body))),
// and journal lines.
// Input: org (a line), 8 bytes of sequence, then a serialized Transfer.
// Invariants: what passes validation round-trips through every encoding the
// script sees, and an accepted org keeps every key in its own hash slot.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "common/check/check.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using google::protobuf::util::MessageDifferencer;

void CheckOrg(const std::string& org) {
  if (!ledger::ValidateOrg(org).ok()) return;
  std::string prefix = ledger::LedgerStore::Prefix(org);
  size_t open = prefix.find('{');
  size_t close = prefix.find('}', open + 1);
  KUDOS_CHECK(open != std::string::npos && close != std::string::npos &&
                  prefix.substr(open + 1, close - open - 1) == org,
              "an accepted org is exactly its keys' hash tag");
}

void CheckAccountKey(const ledger::v1::Account& account) {
  absl::StatusOr<ledger::v1::Account> parsed = ledger::ParseAccountKey(ledger::AccountKey(account));
  // Type and person only: the request's account may carry unknown fields.
  KUDOS_CHECK(parsed.ok() && parsed->type() == account.type() &&
                  parsed->person_id() == account.person_id(),
              "a valid account's key parses back to it");
}

// The outbox event as post.lua concatenates it parses as one TransfersPosted.
void CheckOutboxEvent(const std::string& org, const ledger::v1::Transfer& transfer,
                      int64_t sequence) {
  const absl::Time now = absl::FromUnixSeconds(1794700800);
  std::string body = transfer.SerializeAsString();
  std::string event_bytes = ledger::EventHeader(org, now) +
                            ledger::EventFragment(ledger::AppendSequence(body, sequence)) +
                            ledger::EventFragment(ledger::AppendSequence(body, sequence + 1));
  ledger::v1::LedgerEvent event;
  KUDOS_CHECK(event.ParseFromString(event_bytes), "the outbox event parses");
  const ledger::v1::TransfersPosted& posted = event.transfers_posted();
  KUDOS_CHECK(posted.org_id() == org, "the outbox event names its org");
  KUDOS_CHECK(posted.transfers_size() == 2, "one transfer per fragment");
  ledger::v1::Transfer expected = transfer;
  expected.set_sequence(sequence);
  KUDOS_CHECK(MessageDifferencer::Equals(posted.transfers(0), expected),
              "a fragment carries the transfer and its sequence");
  KUDOS_CHECK(posted.transfers(1).sequence() == sequence + 1, "each fragment its own sequence");
}

void CheckJournal(const ledger::v1::Transfer& transfer) {
  ledger::JournalEntry entry{ledger::AccountKey(transfer.debit_account()),
                             ledger::AccountKey(transfer.credit_account()), transfer.amount(),
                             transfer.transfer_id()};
  absl::StatusOr<ledger::JournalEntry> parsed =
      ledger::ParseJournalEntry(ledger::FormatJournalEntry(entry));
  KUDOS_CHECK(parsed.ok() && parsed->debit == entry.debit && parsed->credit == entry.credit &&
                  parsed->amount == entry.amount && parsed->transfer_id == entry.transfer_id,
              "a journal line parses back");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::QuietProtobuf();
  fuzz::Input input(data, size);
  std::string org = input.Field();
  uint64_t raw_sequence = 0;
  for (int i = 0; i < 8; ++i) raw_sequence = raw_sequence << 8 | input.Byte();
  // Sequences count up from 1 inside the script; keep sequence + 1 in range.
  int64_t sequence = 1 + static_cast<int64_t>(raw_sequence % (uint64_t{1} << 62));
  CheckOrg(org);

  ledger::v1::Transfer transfer;
  if (!transfer.ParseFromString(input.Rest())) return 0;
  absl::Status valid = ledger::ValidatePostedTransfer(transfer, "transfers[0]");
  if (!valid.ok()) {
    KUDOS_CHECK(valid.code() == absl::StatusCode::kInvalidArgument,
                "a bad transfer is INVALID_ARGUMENT");
    return 0;
  }
  KUDOS_CHECK(transfer.amount() >= 1 && transfer.amount() <= ledger::kMaxAmount,
              "an accepted amount is within the exact range of Lua numbers");
  CheckAccountKey(transfer.debit_account());
  CheckAccountKey(transfer.credit_account());
  std::string fingerprint = ledger::Fingerprint(transfer);
  ledger::v1::Transfer renamed = transfer;
  renamed.set_transfer_id(transfer.transfer_id() + "x");
  KUDOS_CHECK(ledger::Fingerprint(renamed) == fingerprint, "the id is not part of the fingerprint");
  ledger::v1::Transfer more = transfer;
  more.set_amount(transfer.amount() + 1);
  KUDOS_CHECK(ledger::Fingerprint(more) != fingerprint, "the amount is part of the fingerprint");
  KUDOS_CHECK(ledger::DescribeDifference(transfer, more) != "", "a difference is described");
  if (ledger::ValidateOrg(org).ok()) CheckOutboxEvent(org, transfer, sequence);
  CheckJournal(transfer);
  return 0;
}
