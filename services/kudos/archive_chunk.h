// The archived kudos format (docs/retention-kudos.md): a chunk is one zstd
// frame holding a version byte and entries, each
//   varint seq | varint len | kudos.v1.Kudos (state COMMITTED, boosts included)
//   | varint team count | (varint len | team id)*
// in ascending seq. Plus the id index records that lead GetKudos to a chunk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kudos/v1/kudos.pb.h"

namespace kudos {

inline constexpr int kMaxChunkKudos = 256;
inline constexpr size_t kMaxChunkRawBytes = 4 << 20;  // a decoded chunk, at most
inline constexpr size_t kIndexRecordBytes = 12;     // 8-byte digest, 2-byte month, 2-byte chunk

struct ArchivedKudos {
  int64_t seq = 0;
  kudos::v1::Kudos kudos;
  std::vector<std::string> teams;  // the giver's and recipients' teams when it was sent
};

absl::StatusOr<std::string> EncodeChunk(const std::vector<ArchivedKudos>& entries, int zstd_level);
absl::StatusOr<std::vector<ArchivedKudos>> DecodeChunk(absl::string_view compressed);

// A chunk's name: "<YYYY-MM>:<n>", its key kudos:{org}:archive:<name>.
struct ChunkRef {
  int month_number = 0;  // year * 12 + month - 1
  int chunk = 0;
};
int MonthNumber(absl::Time time);  // in UTC
std::string MonthName(int month_number);
std::string ChunkName(const ChunkRef& ref);
absl::StatusOr<ChunkRef> ParseChunkName(absl::string_view name);

// The id index: a stable 64-bit digest of the kudos id (FNV-1a), the hash
// field it lives under (its top 12 bits, 3 hex digits) and its record.
uint64_t IdDigest(absl::string_view kudos_id);
std::string IndexField(uint64_t digest);
std::string IndexRecord(uint64_t digest, const ChunkRef& ref);
// The chunks whose record in `field_value` carries `digest` (usually one;
// a digest collision adds another, told apart by the id in the chunk).
std::vector<ChunkRef> FindInIndex(absl::string_view field_value, uint64_t digest);

// The feed keys (relative to kudos:{org}:) a committed kudos is indexed
// under: feed:all, its giver, recipients, teams and values (a private kudos:
// its giver and recipients only). The write path
// and the archive share it, so what is indexed is what is removed.
std::vector<std::string> FeedKeysOf(const kudos::v1::Kudos& kudos,
                                    const std::vector<std::string>& teams);

}  // namespace kudos
