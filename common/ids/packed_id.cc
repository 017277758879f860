#include "common/ids/packed_id.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "common/check/check.h"

namespace common::ids {
namespace {
bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

std::optional<std::string> PackKudosId(absl::string_view id) {
  if (id.size() != 1 + 2 * kPackedKudosIdBytes || id[0] != 'k' ||
      !std::all_of(id.begin() + 1, id.end(), IsLowerHex)) {
    return std::nullopt;
  }
  std::string packed = absl::HexStringToBytes(id.substr(1));
  KUDOS_CHECK(UnpackKudosId(packed) == id, "a packed kudos id unpacks to itself");
  return packed;
}

std::string UnpackKudosId(absl::string_view packed) {
  KUDOS_CHECK(packed.size() == kPackedKudosIdBytes, "a packed kudos id has 12 bytes");
  return "k" + absl::BytesToHexString(packed);
}

}  // namespace common::ids
