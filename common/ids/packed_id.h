// Kudos ids packed into their bytes (issue 15, memory). The kudos service
// gives every kudos an id of 'k' and 24 lower-case hex digits; stored as a
// member of a feed (kudos) or of a guard zset (leaderboard), where ids are
// only compared and listed, those 25 characters fit in the 12 bytes the
// digits spell. Both services keep every other id, and every member written
// before the packing, as the text it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace common::ids {

inline constexpr size_t kPackedKudosIdBytes = 12;

// The 12 bytes of an id of the form the kudos service gives; nullopt for
// any other id (wrong length, prefix, or a digit that is not lower-case hex).
std::optional<std::string> PackKudosId(absl::string_view id);
// The id 12 packed bytes stand for ('k' and their 24 hex digits).
std::string UnpackKudosId(absl::string_view packed);

// The bucket, 0..buckets-1, of an id whose record is a field of one of
// `buckets` hashes instead of a key of its own (issue 15: a key costs Redis
// about 100 B of its own): h = (h * 31 + byte) mod 65521 over the id's
// bytes, mod `buckets`. Every step is exact in a double, so a Lua script
// computes the same (the ledger's tx_bucket; the kudos scripts are given
// the bucket's key). Stored records are placed by it: never change it.
inline int BucketOfId(absl::string_view id, int buckets) {
  uint32_t h = 0;
  for (unsigned char c : id) h = (h * 31 + c) % 65521;
  return static_cast<int>(h % static_cast<uint32_t>(buckets));
}

}  // namespace common::ids
