#include "services/kudos/archive_chunk.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <zstd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"

namespace kudos {
namespace {

constexpr uint8_t kFormatVersion = 1;

absl::Status Corrupt(absl::string_view why) {
  return absl::InternalError(absl::StrCat("archived chunk cannot be read: ", why));
}

std::string Serialize(const std::vector<ArchivedKudos>& entries) {
  std::string raw;
  google::protobuf::io::StringOutputStream stream(&raw);
  google::protobuf::io::CodedOutputStream out(&stream);
  out.WriteRaw(&kFormatVersion, 1);
  for (const ArchivedKudos& entry : entries) {
    KUDOS_CHECK(entry.seq > 0, "archived kudos carry their feed position");
    out.WriteVarint64(static_cast<uint64_t>(entry.seq));
    const std::string pb = entry.kudos.SerializeAsString();
    out.WriteVarint32(static_cast<uint32_t>(pb.size()));
    out.WriteString(pb);
    out.WriteVarint32(static_cast<uint32_t>(entry.teams.size()));
    for (const std::string& team : entry.teams) {
      out.WriteVarint32(static_cast<uint32_t>(team.size()));
      out.WriteString(team);
    }
  }
  out.Trim();
  return raw;
}

absl::StatusOr<std::vector<ArchivedKudos>> Parse(absl::string_view raw) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(raw.data()),
                                            static_cast<int>(raw.size()));
  uint8_t version = 0;
  if (!in.ReadRaw(&version, 1) || version != kFormatVersion) return Corrupt("unknown version");
  std::vector<ArchivedKudos> entries;
  while (static_cast<size_t>(in.CurrentPosition()) < raw.size()) {
    if (entries.size() >= static_cast<size_t>(kMaxChunkKudos) * 4) return Corrupt("too many entries");
    ArchivedKudos entry;
    uint64_t seq = 0;
    uint32_t length = 0, teams = 0;
    std::string pb;
    if (!in.ReadVarint64(&seq) || !in.ReadVarint32(&length) || !in.ReadString(&pb, length) ||
        !entry.kudos.ParseFromString(pb) || !in.ReadVarint32(&teams) || teams > 64) {
      return Corrupt("truncated entry");
    }
    entry.seq = static_cast<int64_t>(seq);
    if (entry.seq <= 0 || (!entries.empty() && entry.seq <= entries.back().seq)) {
      return Corrupt("entries out of seq order");
    }
    for (uint32_t i = 0; i < teams; ++i) {
      std::string team;
      if (!in.ReadVarint32(&length) || !in.ReadString(&team, length)) return Corrupt("bad team");
      entry.teams.push_back(std::move(team));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

absl::StatusOr<std::string> EncodeChunk(const std::vector<ArchivedKudos>& entries,
                                        int zstd_level) {
  const std::string raw = Serialize(entries);
  if (raw.size() > kMaxChunkRawBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("an archive chunk of ", raw.size(), " bytes exceeds ", kMaxChunkRawBytes));
  }
  std::string compressed(ZSTD_compressBound(raw.size()), '\0');
  const size_t size =
      ZSTD_compress(compressed.data(), compressed.size(), raw.data(), raw.size(), zstd_level);
  if (ZSTD_isError(size)) {
    return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(size)));
  }
  compressed.resize(size);
  return compressed;
}

absl::StatusOr<std::vector<ArchivedKudos>> DecodeChunk(absl::string_view compressed) {
  const unsigned long long raw_size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (raw_size == ZSTD_CONTENTSIZE_ERROR || raw_size == ZSTD_CONTENTSIZE_UNKNOWN ||
      raw_size > kMaxChunkRawBytes) {
    return Corrupt("not a zstd frame of a known, bounded size");
  }
  std::string raw(static_cast<size_t>(raw_size), '\0');
  const size_t size = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(size) || size != raw.size()) return Corrupt("zstd frame does not decode");
  return Parse(raw);
}

int MonthNumber(absl::Time time) {
  const absl::CivilMonth month = absl::ToCivilMonth(time, absl::UTCTimeZone());
  return static_cast<int>(month.year() * 12 + month.month() - 1);
}

std::string MonthName(int month_number) {
  return absl::StrFormat("%04d-%02d", month_number / 12, month_number % 12 + 1);
}

std::string ChunkName(const ChunkRef& ref) {
  return absl::StrCat(MonthName(ref.month_number), ":", ref.chunk);
}

absl::StatusOr<ChunkRef> ParseChunkName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, absl::ByAnyChar("-:"));
  int year = 0, month = 0;
  ChunkRef ref;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &year) ||
      !absl::SimpleAtoi(parts[1], &month) || !absl::SimpleAtoi(parts[2], &ref.chunk) ||
      month < 1 || month > 12 || year < 1970 || year > 5000 || ref.chunk < 0 || ref.chunk > 0xffff) {
    return Corrupt(absl::StrCat("bad chunk name '", name, "'"));
  }
  ref.month_number = year * 12 + month - 1;
  return ref;
}

uint64_t IdDigest(absl::string_view kudos_id) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a: stable across builds and hosts
  for (unsigned char c : kudos_id) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string IndexField(uint64_t digest) { return absl::StrFormat("%03x", digest >> 52); }

std::string IndexRecord(uint64_t digest, const ChunkRef& ref) {
  KUDOS_CHECK(ref.month_number >= 0 && ref.month_number <= 0xffff && ref.chunk >= 0 &&
                  ref.chunk <= 0xffff,
              "an index record holds the month and chunk in 16 bits each");
  std::string record(kIndexRecordBytes, '\0');
  for (int i = 0; i < 8; ++i) record[i] = static_cast<char>(digest >> (56 - 8 * i));
  record[8] = static_cast<char>(ref.month_number >> 8);
  record[9] = static_cast<char>(ref.month_number);
  record[10] = static_cast<char>(ref.chunk >> 8);
  record[11] = static_cast<char>(ref.chunk);
  return record;
}

std::vector<ChunkRef> FindInIndex(absl::string_view field_value, uint64_t digest) {
  const std::string wanted = IndexRecord(digest, {}).substr(0, 8);
  std::vector<ChunkRef> refs;
  for (size_t at = 0; at + kIndexRecordBytes <= field_value.size(); at += kIndexRecordBytes) {
    if (field_value.substr(at, 8) != wanted) continue;
    auto byte = [&](size_t i) { return static_cast<uint8_t>(field_value[at + i]); };
    ChunkRef ref{byte(8) << 8 | byte(9), byte(10) << 8 | byte(11)};
    if (std::find_if(refs.begin(), refs.end(), [&](const ChunkRef& r) {
          return r.month_number == ref.month_number && r.chunk == ref.chunk;
        }) == refs.end()) {
      refs.push_back(ref);
    }
  }
  return refs;
}

std::vector<std::string> FeedKeysOf(const kudos::v1::Kudos& kudos,
                                    const std::vector<std::string>& teams) {
  std::vector<std::string> feeds;
  // A kudos from the company (issue 18) has no giver, so no giver's feed.
  if (!kudos.giver_id().empty()) feeds.push_back("feed:giver:" + kudos.giver_id());
  for (const std::string& recipient : kudos.recipient_ids()) feeds.push_back("feed:recipient:" + recipient);
  // A private kudos (issue 18) is in no public listing: only the feeds of
  // the people it concerns, whose readers are checked one by one.
  if (kudos.visibility() != kudos::v1::KUDOS_VISIBILITY_PRIVATE) {
    feeds.push_back("feed:all");
    for (const std::string& team : teams) {
      if (!team.empty()) feeds.push_back("feed:team:" + team);
    }
    for (const std::string& value : kudos.values()) feeds.push_back("feed:value:" + value);
  }
  std::sort(feeds.begin(), feeds.end());
  feeds.erase(std::unique(feeds.begin(), feeds.end()), feeds.end());
  return feeds;
}

}  // namespace kudos
