#include "services/kudos/kudos_archive.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "lua/kArchiveBatchLua.h"
#include "lua/kReleaseLockLua.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {
namespace {

using common::redis::Reply;

absl::Time CreateTime(const kudos::v1::Kudos& kudos) {
  return absl::FromUnixNanos(
      google::protobuf::util::TimeUtil::TimestampToNanoseconds(kudos.create_time()));
}

std::string LockToken() {
  static thread_local absl::BitGen bits;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(bits));
}

// The archive's highest seq and its top chunk's name ("" when empty).
struct ArchiveTop {
  std::string name;
  std::string score;
  int64_t seq = 0;
};

absl::StatusOr<ArchiveTop> ReadTop(common::redis::Pool& pool, const std::string& org) {
  absl::StatusOr<Reply> top =
      pool.Run({"ZRANGE", KudosStore::ArchiveChunks(org), "-1", "-1", "WITHSCORES"});
  if (!top.ok()) return top.status();
  ArchiveTop result;
  if (top->elements.size() != 2) return result;
  result.name = top->elements[0].str;
  result.score = top->elements[1].str;
  if (!absl::SimpleAtoi(result.score, &result.seq) || result.seq <= 0) {
    return absl::InternalError("archive:chunks holds a score that is not a seq");
  }
  return result;
}

}  // namespace

Archiver::Archiver(common::redis::Pool& pool, KudosStore& store, ArchiverOptions options)
    : pool_(pool),
      store_(store),
      options_(options),
      archive_batch_("archive_batch", kArchiveBatchLua),
      release_lock_("release_lock", kReleaseLockLua) {
  KUDOS_CHECK(options_.batch_kudos >= 1 && options_.chunk_kudos >= 1 &&
                  options_.chunk_kudos <= kMaxChunkKudos &&
                  options_.max_batches_per_run >= 1,
              "a sweep archives bounded, non-empty batches");
}

absl::StatusOr<ArchiveStats> Archiver::RunOnce(const std::string& org, absl::Time now) {
  ArchiveStats stats;
  absl::StatusOr<kudos::v1::OrgSettings> settings = store_.GetSettings(org);
  if (!settings.ok()) return settings.status();
  const common::v1::RetentionPolicy retention = RetentionWithDefaults(settings->retention());
  const std::string lock = KudosStore::ArchiveLock(org);
  const std::string token = LockToken();
  absl::StatusOr<Reply> locked =
      pool_.Run({"SET", lock, token, "NX", "PX",
                 std::to_string(absl::ToInt64Milliseconds(options_.lock_ttl))});
  if (!locked.ok()) return locked.status();
  if (locked->is_nil()) {
    stats.lock_busy = true;
    return stats;
  }
  absl::Status result = [&]() -> absl::Status {
    const absl::Time cutoff = now - absl::Hours(24) * retention.kudos_live_days();
    for (int batch_number = 0; batch_number < options_.max_batches_per_run; ++batch_number) {
      auto batch = OldCandidates(org, cutoff);
      if (!batch.ok()) return batch.status();
      if (batch->empty()) return absl::OkStatus();
      // Split by month of creation, keeping seq order.
      size_t begin = 0;
      while (begin < batch->size()) {
        const int month = MonthNumber(CreateTime((*batch)[begin].kudos));
        size_t end = begin;
        while (end < batch->size() && MonthNumber(CreateTime((*batch)[end].kudos)) == month) ++end;
        std::vector<ArchivedKudos> part(std::make_move_iterator(batch->begin() + begin),
                                        std::make_move_iterator(batch->begin() + end));
        auto archived = ArchiveMonth(org, MonthName(month), part, stats);
        if (!archived.ok()) return archived.status();
        if (!*archived) {  // another replica moved first: the next run starts over
          ++stats.conflicts;
          return absl::OkStatus();
        }
        begin = end;
      }
      if (batch->size() < static_cast<size_t>(options_.batch_kudos)) return absl::OkStatus();
    }
    stats.more = true;
    return absl::OkStatus();
  }();
  if (result.ok()) {
    auto trimmed = TrimAudit(org, now - absl::Hours(24) * retention.audit_days());
    if (trimmed.ok()) stats.audit_entries_trimmed = *trimmed;
    result = trimmed.status();
  }
  // Released either way; if this fails the lock expires after lock_ttl.
  (void)pool_.Eval(release_lock_, {lock}, {token});
  if (!result.ok()) return result;
  return stats;
}

ArchiveStats Archiver::RunAllOrgs(absl::Time now, const std::function<bool()>& stop) {
  ArchiveStats total;
  absl::StatusOr<std::vector<std::string>> orgs = store_.Orgs();
  if (!orgs.ok()) {
    common::log::Warning(absl::StrCat("archiver: orgs not listed: ", orgs.status().message()));
    return total;
  }
  for (const std::string& org : *orgs) {
    if (stop()) break;
    absl::StatusOr<ArchiveStats> stats = RunOnce(org, now);
    if (!stats.ok()) {
      common::log::Warning(absl::StrCat("archiver: org ", org, " skipped this run: ",
                                        stats.status().message()));
      continue;
    }
    total.kudos_archived += stats->kudos_archived;
    total.bytes_written += stats->bytes_written;
    total.chunks_written += stats->chunks_written;
    total.audit_entries_trimmed += stats->audit_entries_trimmed;
    total.conflicts += stats->conflicts;
    total.more = total.more || stats->more;
  }
  return total;
}

absl::StatusOr<std::vector<ArchivedKudos>> Archiver::OldCandidates(const std::string& org,
                                                                   absl::Time cutoff) {
  auto top = ReadTop(pool_, org);
  if (!top.ok()) return top.status();
  // Oldest first, above everything archived (chunks never overlap; a kudos
  // committed below the archive's top, i.e. more than the live window after
  // it began, stays live).
  // feed:all's head and sealed chunks (KudosStore::LiveFeedRange).
  absl::StatusOr<std::vector<KudosStore::FeedEntry>> ids =
      store_.LiveFeedRange(org, "feed:all", top->seq, options_.batch_kudos, /*newest_first=*/false);
  if (!ids.ok()) return ids.status();
  std::vector<common::redis::Command> commands;
  std::vector<int64_t> seqs;
  for (const KudosStore::FeedEntry& entry : *ids) {
    seqs.push_back(entry.seq);
    KudosStore::AddRecordReads(commands, org, entry.id);
    commands.push_back({"LRANGE", KudosStore::BoostsKey(org, entry.id), "0", "-1"});
  }
  std::vector<ArchivedKudos> batch;
  if (commands.empty()) return batch;
  auto replies = pool_.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& record = KudosStore::RecordReply((*replies)[3 * i], (*replies)[3 * i + 1]);
    const auto& boosts = (*replies)[3 * i + 2];
    if (!boosts.ok()) return boosts.status();
    auto live = KudosStore::ReadLiveRecord(pool_, org, (*ids)[i].id, record);
    if (!live.ok()) return live.status();
    // Only committed kudos are in feeds; a missing one was just archived by
    // another replica: stop here, the script would refuse anyway.
    if (!live->committed.has_value()) break;
    ArchivedKudos entry;
    entry.seq = seqs[i];
    entry.kudos = std::move(live->committed->kudos);
    if (CreateTime(entry.kudos) >= cutoff) break;  // still live, and so is everything after
    for (const Reply& boost : boosts->elements) {
      if (!entry.kudos.add_boosts()->ParseFromString(boost.str)) {
        return absl::InternalError("stored boost cannot be parsed");
      }
    }
    entry.teams = std::move(live->committed->teams);
    batch.push_back(std::move(entry));
  }
  return batch;
}

absl::StatusOr<bool> Archiver::ArchiveMonth(const std::string& org, const std::string& month,
                                            const std::vector<ArchivedKudos>& batch,
                                            ArchiveStats& stats) {
  size_t done = 0;
  while (done < batch.size()) {
    auto top = ReadTop(pool_, org);
    if (!top.ok()) return top.status();
    // The month's open chunk takes the batch while it has room.
    std::vector<ArchivedKudos> entries;
    ChunkRef ref;
    std::string expected_score;
    const bool open = absl::StartsWith(top->name, month + ":");
    if (open) {
      auto parsed = ParseChunkName(top->name);
      if (!parsed.ok()) return parsed.status();
      absl::StatusOr<Reply> bytes = pool_.Run({"GET", KudosStore::ArchiveChunk(org, top->name)});
      if (!bytes.ok()) return bytes.status();
      auto decoded = DecodeChunk(bytes->str);
      if (!decoded.ok()) return decoded.status();
      if (decoded->size() < static_cast<size_t>(options_.chunk_kudos)) {
        entries = *std::move(decoded);
        ref = *parsed;
        expected_score = top->score;
      }
    }
    if (expected_score.empty()) {
      absl::StatusOr<Reply> count =
          pool_.Run({"HGET", KudosStore::ArchiveMonths(org), month});
      if (!count.ok()) return count.status();
      auto parsed = ParseChunkName(month + ":0");
      if (!parsed.ok()) return parsed.status();
      ref = *parsed;
      if (!count->is_nil() && !absl::SimpleAtoi(count->str, &ref.chunk)) {
        return absl::InternalError("archive:months holds a count that is not a number");
      }
      if (ref.chunk > 0xffff) {  // an index record holds the chunk number in 16 bits
        return absl::ResourceExhaustedError(absl::StrCat(
            "archive month ", month, " is full (65536 chunks of up to ", kMaxChunkKudos, " kudos)"));
      }
    }
    // Another replica archived past this batch since it was read.
    if (top->seq >= batch[done].seq) return false;
    const size_t room = static_cast<size_t>(options_.chunk_kudos) - entries.size();
    const size_t take = std::min(room, batch.size() - done);
    const size_t first_new = entries.size();
    entries.insert(entries.end(), batch.begin() + done, batch.begin() + done + take);
    KUDOS_CHECK(top->seq < entries[first_new].seq,
                "archived chunks never overlap: new entries lie above the archive");
    absl::StatusOr<std::string> bytes = EncodeChunk(entries, options_.zstd_level);
    if (!bytes.ok()) return bytes.status();
    std::vector<ArchivedKudos> taken(entries.begin() + first_new, entries.end());
    std::vector<std::string> head = {month,
                                     std::to_string(ref.chunk),
                                     *bytes,
                                     std::to_string(entries.back().seq),
                                     std::to_string(entries[first_new].seq),
                                     expected_score,
                                     std::to_string(take)};
    absl::StatusOr<std::string> outcome = RunArchiveBatch(org, ChunkName(ref), ref, head, taken);
    if (!outcome.ok()) return outcome.status();
    if (*outcome == "CONFLICT") return false;
    KUDOS_CHECK(*outcome == "OK", "archive_batch answers OK or CONFLICT");
    stats.kudos_archived += static_cast<int64_t>(take);
    stats.bytes_written += static_cast<int64_t>(bytes->size());
    stats.chunks_written += 1;
    done += take;
  }
  return true;
}

namespace {

// For each kudos of `batch` and each of its feeds, the sealed chunk whose
// range holds the kudos's seq ('' = none): the chunk archive_batch.lua
// removes it from unless it is still in the feed's head.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadHoldingChunks(
    common::redis::Pool& pool, const std::string& org, const std::vector<ArchivedKudos>& batch,
    const std::vector<std::vector<std::string>>& feeds) {
  std::vector<common::redis::Command> commands;
  for (size_t i = 0; i < batch.size(); ++i) {
    for (const std::string& feed : feeds[i]) {
      commands.push_back({"ZRANGE", KudosStore::FeedChunksKey(org, feed),
                          std::to_string(batch[i].seq), "+inf", "BYSCORE", "LIMIT", "0", "1"});
    }
  }
  auto replies = pool.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  std::vector<std::vector<std::string>> chunks(batch.size());
  size_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    for (size_t f = 0; f < feeds[i].size(); ++f) {
      const absl::StatusOr<Reply>& reply = (*replies)[next++];
      if (!reply.ok()) return reply.status();
      chunks[i].push_back(reply->elements.empty() ? "" : reply->elements[0].str);
    }
  }
  return chunks;
}

}  // namespace

absl::StatusOr<std::string> Archiver::RunArchiveBatch(const std::string& org,
                                                      const std::string& chunk_name,
                                                      const ChunkRef& ref,
                                                      const std::vector<std::string>& head_args,
                                                      const std::vector<ArchivedKudos>& batch) {
  std::vector<std::vector<std::string>> feeds;
  for (const ArchivedKudos& entry : batch) feeds.push_back(FeedKeysOf(entry.kudos, entry.teams));
  // A seal between the read of the chunks and the script moves a kudos out
  // of the head into a chunk not declared: the script says 'NEED', read again.
  for (int attempt = 0; attempt <= KudosStore::kMaxNeedRetries; ++attempt) {
    auto chunks = ReadHoldingChunks(pool_, org, batch, feeds);
    if (!chunks.ok()) return chunks.status();
    std::vector<std::string> keys = {KudosStore::ArchiveChunks(org), KudosStore::ArchiveMonths(org),
                                     KudosStore::ArchiveIndex(org),
                                     KudosStore::ArchiveChunk(org, chunk_name)};
    std::vector<std::string> args = head_args;
    for (size_t i = 0; i < batch.size(); ++i) {
      const ArchivedKudos& entry = batch[i];
      const std::string& id = entry.kudos.kudos_id();
      const uint64_t digest = IdDigest(id);
      keys.push_back(KudosStore::RecordKey(org, RecordKind::kKudos, id));
      keys.push_back(KudosStore::BoostsKey(org, id));
      keys.push_back(KudosStore::RecordBucketKey(org, id));
      args.insert(args.end(), {id, KudosStore::FeedMember(id), std::to_string(entry.seq),
                               std::to_string(entry.kudos.boosts_size()),
                               IndexField(digest), IndexRecord(digest, ref),
                               std::to_string(feeds[i].size())});
      for (size_t f = 0; f < feeds[i].size(); ++f) {
        const std::string& feed = feeds[i][f];
        const std::string& chunk = (*chunks)[i][f];
        keys.push_back(KudosStore::FeedHeadKey(org, feed));
        keys.push_back(KudosStore::FeedChunksKey(org, feed));
        keys.push_back(chunk.empty() ? KudosStore::FeedHeadKey(org, feed)
                                     : KudosStore::FeedChunkKey(org, feed, chunk));
        args.push_back(feed);
        args.push_back(chunk);
      }
    }
    absl::StatusOr<Reply> reply = pool_.Eval(archive_batch_, keys, args);
    if (!reply.ok()) return reply.status();
    if (reply->str != "NEED") return reply->str;
  }
  return std::string("CONFLICT");  // the feeds kept moving: the next run starts over
}

absl::StatusOr<int64_t> Archiver::TrimAudit(const std::string& org, absl::Time cutoff) {
  // Audit entry ids are XADD's time-based "<ms>-<n>": MINID drops those older.
  absl::StatusOr<Reply> trimmed =
      pool_.Run({"XTRIM", common::audit::StreamKey(org), "MINID", "=",
                 std::to_string(std::max<int64_t>(0, absl::ToUnixMillis(cutoff)))});
  if (!trimmed.ok()) return trimmed.status();
  return trimmed->integer;
}

}  // namespace kudos
