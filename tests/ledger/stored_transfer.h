// A live ledger transfer in the STRING form services/ledger/scripts/lib.lua
// stores (read_tx, stored_tx), for tests that rewrite one in place (backdate
// it, or store it in an older form). Header-only: the ledger's tests and the
// replicas test share it (both link ledger_lib).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "ledger/v1/ledger.pb.h"
#include "services/ledger/ledger_rules.h"

namespace ledger_test {

struct StoredTransfer {
  int64_t seq = 0;
  std::string fp;
  ledger::v1::Transfer transfer;  // whole: the fields left out put back
};

// seq5 | fp length (+128: the transfer_id field left out) | fp | [marker
// below 8: 1 the sequence left out, + 2 the reference, the id's part before
// its ':'] body. nullopt when `value` does not parse as that.
inline std::optional<StoredTransfer> ParseStoredTransfer(const std::string& id,
                                                         const std::string& value) {
  if (value.size() <= 6) return std::nullopt;
  StoredTransfer out;
  for (int i = 0; i < 5; ++i) out.seq = out.seq * 256 + static_cast<unsigned char>(value[i]);
  const unsigned char flags = static_cast<unsigned char>(value[5]);
  out.fp = value.substr(6, flags % 128);
  std::string body = value.substr(6 + flags % 128);
  const int marker = body.empty() ? 8 : static_cast<unsigned char>(body[0]);
  if (marker < 8) body.erase(0, 1);
  if (!out.transfer.ParseFromString(body)) return std::nullopt;
  if (flags >= 128) out.transfer.set_transfer_id(id);
  if (marker < 8 && marker % 2 == 1) out.transfer.set_sequence(out.seq);
  if (marker < 8 && marker % 4 >= 2) out.transfer.set_reference(id.substr(0, id.find(':')));
  return out;
}

// The form before fields were left out: seq5 | fp length | fp | the whole
// body (`transfer` serialized), which read_tx still reads.
inline std::string WholeStoredTransfer(const std::string& value, const StoredTransfer& stored) {
  return value.substr(0, 5) + static_cast<char>(stored.fp.size()) + stored.fp +
         stored.transfer.SerializeAsString();
}

// The transfer id a journal line names (its id or its IndexMember).
inline std::string JournalTransferId(const std::string& line) {
  absl::StatusOr<ledger::JournalEntry> entry = ledger::ParseJournalEntry(line);
  return entry.ok() ? entry->transfer_id : "";
}

}  // namespace ledger_test
