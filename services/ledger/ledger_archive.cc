#include "services/ledger/ledger_archive.h"

#include <openssl/evp.h>
#include <zstd.h>

#include <algorithm>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "kLedgerArchiveLua.h"
#include "services/ledger/ledger_rules.h"
#include "services/ledger/ledger_store.h"

namespace ledger {
namespace {

using common::redis::Reply;

// A chunk holds at most max_chunk_raw_bytes plus one transfer (< 1 MB
// each), so anything claiming more than this is not a chunk we wrote.
constexpr unsigned long long kMaxDecompressedChunkBytes = 64ull << 20;
// Journal lines read per planning step.
constexpr int kPlanReadBatch = 1000;

// The archive writes no transfer (WRITE_TX_KEYS only matters to apply()).
std::string WithLib(const char* script) { return LedgerStore::WithLib(script, false); }

constexpr char kUnlockLua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0";

std::string RandomToken() {
  std::random_device device;
  return absl::StrCat(absl::Hex(device(), absl::kZeroPad8), absl::Hex(device(), absl::kZeroPad8));
}

// "2026-11": the UTC month of a transfer's post time.
std::string MonthOf(const Transfer& transfer) {
  return absl::FormatTime("%Y-%m", FromTimestamp(transfer.post_time()), absl::UTCTimeZone());
}

absl::Status Malformed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("archive: Redis returned a malformed ", what));
}

// Every key archive.lua touches for a chunk: the checkpoint, the journal,
// the archive's directory, record and chunk, and per transfer its live key
// and both accounts' live and archived indexes.
std::vector<std::string> CommitKeys(const std::string& org, const std::string& chunk_id,
                                    const Archiver::ChunkPlan& plan) {
  keys::KeyList keys;
  keys.Add(keys::Checkpoint(org))
      .Add(keys::CheckpointBalances(org))
      .Add(keys::Journal(org))
      .Add(keys::ArchiveDirectory(org))
      .Add(keys::ArchiveMeta(org))
      .Add(keys::ArchiveChunk(org, chunk_id));
  for (const Transfer& transfer : plan.transfers) {
    keys::AddTransfer(keys, org, transfer.transfer_id());
    for (const Account* account : {&transfer.debit_account(), &transfer.credit_account()}) {
      keys.Add(keys::AccountIndex(org, AccountKey(*account)))
          .Add(keys::ArchiveIndex(org, AccountKey(*account)));
    }
  }
  return std::move(keys).Take();
}

}  // namespace

absl::StatusOr<std::string> CompressChunk(const ledger::v1::TransfersPosted& chunk, int level) {
  std::string raw = chunk.SerializeAsString();
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t written = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(written)) {
    return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(written)));
  }
  out.resize(written);
  return out;
}

absl::StatusOr<ledger::v1::TransfersPosted> DecompressChunk(absl::string_view compressed) {
  unsigned long long size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::DataLossError("is not a zstd frame with a known size");
  }
  if (size > kMaxDecompressedChunkBytes) {
    return absl::DataLossError(absl::StrCat("claims ", size, " bytes, more than a chunk holds"));
  }
  std::string raw(size, '\0');
  size_t read = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(read) || read != size) {
    return absl::DataLossError(absl::StrCat(
        "does not decompress: ", ZSTD_isError(read) ? ZSTD_getErrorName(read) : "short"));
  }
  ledger::v1::TransfersPosted chunk;
  if (!chunk.ParseFromString(raw)) return absl::DataLossError("does not parse");
  return chunk;
}

std::string ChunkDigest(absl::string_view compressed) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(compressed.data(), compressed.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string ChainAfter(absl::string_view chain, absl::string_view chunk_sha) {
  return ChunkDigest(absl::StrCat(chain, chunk_sha));
}

Archiver::Archiver(common::redis::Pool& pool, ArchiveOptions options)
    : pool_(pool),
      options_(options),
      org_registry_(pool),
      archive_("ledger_archive", WithLib(kLedgerArchiveLua)),
      bodies_("ledger_tx_bodies",
              WithLib("local out = {}\n"
                      "for i, id in ipairs(ARGV) do\n"
                      "  local tx = read_tx(id)\n"
                      "  out[i] = tx and tx.body or false\n"
                      "end\n"
                      "return out\n")),
      unlock_("ledger_archive_unlock", kUnlockLua) {
  KUDOS_CHECK(options_.max_transfers_per_chunk >= 1 && options_.max_transfers_per_run >= 1,
              "archive bounds are positive");
}

absl::StatusOr<int32_t> Archiver::LiveDays(const std::string& org) {
  absl::StatusOr<Reply> reply = pool_.Run({"GET", keys::Retention(org)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return kDefaultTransfersLiveDays;
  RetentionPolicy retention;
  if (!retention.ParseFromString(reply->str)) {
    return absl::DataLossError(absl::StrCat("org '", org, "': stored retention does not parse"));
  }
  absl::StatusOr<RetentionPolicy> normalized = NormalizeRetention(retention);
  if (!normalized.ok()) return normalized.status();
  return normalized->transfers_live_days();
}

absl::StatusOr<Archiver::ChunkPlan> Archiver::PlanChunk(const std::string& org, absl::Time now) {
  if (absl::Status s = ValidateOrg(org); !s.ok()) return s;
  absl::StatusOr<int32_t> live_days = LiveDays(org);
  if (!live_days.ok()) return live_days.status();
  return Plan(org, now - absl::Hours(24) * *live_days, options_.max_transfers_per_chunk);
}

absl::StatusOr<Archiver::ChunkPlan> Archiver::Plan(const std::string& org, absl::Time cutoff,
                                                 int budget) {
  int want = std::min({budget, options_.max_transfers_per_chunk, kPlanReadBatch});
  // The checkpoint and the journal head it continues from, together.
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> snapshot = pool_.Pipeline(
      {{"MULTI"},
       {"HMGET", keys::Checkpoint(org), "through_seq", "chain"},
       {"LRANGE", keys::Journal(org), "0", absl::StrCat(want - 1)},
       {"EXEC"}});
  if (!snapshot.ok()) return snapshot.status();
  if (snapshot->size() != 4 || !(*snapshot)[3].ok()) {
    return snapshot->size() == 4 ? (*snapshot)[3].status() : Malformed("snapshot");
  }
  const Reply& exec = *(*snapshot)[3];
  if (exec.type != Reply::Type::kArray || exec.elements.size() != 2 ||
      exec.elements[0].elements.size() != 2) {
    return Malformed("snapshot");
  }
  ChunkPlan plan;
  const Reply& through = exec.elements[0].elements[0];
  if (!through.is_nil() && !absl::SimpleAtoi(through.str, &plan.through_seq)) {
    return absl::DataLossError(absl::StrCat("org '", org, "': checkpoint through_seq '",
                                            through.str, "' is not a number"));
  }
  plan.chain = exec.elements[0].elements[1].str;
  std::vector<std::string> ids;
  for (const Reply& line : exec.elements[1].elements) {
    absl::StatusOr<JournalEntry> entry = ParseJournalEntry(line.str);
    if (!entry.ok()) return entry.status();
    ids.push_back(entry->transfer_id);
  }
  int64_t raw_bytes = 0;
  // Bodies in growing batches (1, 4, 16, ...): an org with nothing old
  // enough costs one read per round, not a chunk's worth. A transfer is a
  // bucket's field, or a key written before the buckets: one script reads all.
  for (size_t begin = 0; begin < ids.size();) {
    size_t end = std::min(ids.size(), std::max<size_t>(1, begin * 4));
    std::vector<std::string> batch(ids.begin() + begin, ids.begin() + end);
    keys::KeyList tx_keys;
    for (const std::string& id : batch) keys::AddTransfer(tx_keys, org, id);
    absl::StatusOr<Reply> bodies = pool_.Eval(bodies_, std::move(tx_keys).Take(), batch);
    if (!bodies.ok()) return bodies.status();
    if (bodies->elements.size() != end - begin) return Malformed("transfer bodies");
    for (size_t i = 0; i < bodies->elements.size(); ++i) {
      const Reply& body = bodies->elements[i];
      // Gone since the snapshot: another run archived it; the commit's
      // compare-and-set would refuse this plan anyway.
      if (body.is_nil()) return plan;
      Transfer transfer;
      if (!transfer.ParseFromString(body.str)) {
        return absl::DataLossError(absl::StrCat("org '", org, "': stored transfer '",
                                                ids[begin + i], "' does not parse"));
      }
      // Oldest first: the first transfer still inside the live window ends
      // the plan, so the archive stays a sequence prefix.
      if (FromTimestamp(transfer.post_time()) >= cutoff) return plan;
      if (!plan.transfers.empty() && MonthOf(transfer) != MonthOf(plan.transfers.front())) {
        return plan;
      }
      raw_bytes += static_cast<int64_t>(body.str.size());
      plan.transfers.push_back(std::move(transfer));
      if (raw_bytes >= options_.max_chunk_raw_bytes) return plan;
    }
    begin = end;
  }
  return plan;
}

absl::StatusOr<bool> Archiver::Commit(const std::string& org, const ChunkPlan& plan,
                                      ArchiveStats& stats) {
  if (plan.transfers.empty()) {
    return absl::InvalidArgumentError("archive: an empty plan has nothing to commit");
  }
  ledger::v1::TransfersPosted chunk;
  chunk.set_org_id(org);
  std::vector<const Transfer*> moved;
  for (const Transfer& transfer : plan.transfers) {
    *chunk.add_transfers() = transfer;
    moved.push_back(&transfer);
  }
  KUDOS_CHECK(SumOfMovements(NetMovements(moved)) == 0,
              "what a chunk adds to the checkpoint totals sums to zero (double entry)");
  absl::StatusOr<std::string> compressed = CompressChunk(chunk, options_.zstd_level);
  if (!compressed.ok()) return compressed.status();
  std::string sha = ChunkDigest(*compressed);
  int64_t first_seq = plan.through_seq + 1;
  std::string chunk_id = absl::StrCat(MonthOf(plan.transfers.front()), ":", first_seq);
  int64_t raw_bytes = static_cast<int64_t>(chunk.ByteSizeLong());
  std::vector<std::string> args = {absl::StrCat(plan.through_seq),
                                   absl::StrCat(plan.transfers.size()),
                                   chunk_id,
                                   *compressed,
                                   sha,
                                   ChainAfter(plan.chain, sha),
                                   absl::StrCat(raw_bytes)};
  for (size_t i = 0; i < plan.transfers.size(); ++i) {
    const Transfer& transfer = plan.transfers[i];
    // The journal is the sequence order: the i-th line after the checkpoint
    // is sequence through_seq + 1 + i (the script checks it against Redis).
    if (transfer.sequence() != first_seq + static_cast<int64_t>(i)) {
      return absl::DataLossError(absl::StrCat("org '", org, "': transfer '",
                                              transfer.transfer_id(), "' has sequence ",
                                              transfer.sequence(), " at journal position ",
                                              first_seq + static_cast<int64_t>(i)));
    }
    args.push_back(transfer.transfer_id());
    args.push_back(AccountKey(transfer.debit_account()));
    args.push_back(AccountKey(transfer.credit_account()));
    args.push_back(absl::StrCat(transfer.amount()));
  }
  absl::StatusOr<Reply> reply = pool_.Eval(archive_, CommitKeys(org, chunk_id, plan), args);
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kArray || reply->elements.size() != 2) {
    return Malformed("archive reply");
  }
  absl::StatusOr<long long> through = reply->elements[1].AsInteger();
  if (!through.ok()) return Malformed("archive reply");
  if (reply->elements[0].str == "RACED") return false;
  KUDOS_CHECK(reply->elements[0].str == "OK", "the archive script answers OK or RACED");
  KUDOS_CHECK(*through == plan.through_seq + static_cast<int64_t>(plan.transfers.size()),
              "a committed chunk moves the checkpoint by exactly its transfers");
  stats.transfers_archived += static_cast<int64_t>(plan.transfers.size());
  stats.chunks += 1;
  stats.bytes_written +=
      static_cast<int64_t>(compressed->size()) + 2 * 5 * static_cast<int64_t>(plan.transfers.size());
  stats.raw_bytes += raw_bytes;
  return true;
}

absl::StatusOr<ArchiveStats> Archiver::RunOnce(const std::string& org, absl::Time now) {
  if (absl::Status s = ValidateOrg(org); !s.ok()) return s;
  absl::StatusOr<int32_t> live_days = LiveDays(org);
  if (!live_days.ok()) return live_days.status();
  ArchiveStats stats;
  std::string lock = keys::ArchiveLock(org);
  std::string token = RandomToken();
  int64_t ttl_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.lock_ttl));
  absl::StatusOr<Reply> locked =
      pool_.Run({"SET", lock, token, "NX", "PX", absl::StrCat(ttl_ms)});
  if (!locked.ok()) return locked.status();
  if (locked->is_nil()) {
    stats.lock_busy = true;
    return stats;
  }
  absl::Status status = ArchiveChunks(org, now - absl::Hours(24) * *live_days, stats);
  // Released only if still ours (it may have expired and been taken).
  absl::StatusOr<Reply> unlocked = pool_.Eval(unlock_, {lock}, {token});
  if (!status.ok()) return status;
  if (!unlocked.ok()) return unlocked.status();
  return stats;
}

absl::Status Archiver::ArchiveChunks(const std::string& org, absl::Time cutoff,
                                     ArchiveStats& stats) {
  while (stats.transfers_archived < options_.max_transfers_per_run) {
    int budget = static_cast<int>(options_.max_transfers_per_run - stats.transfers_archived);
    absl::StatusOr<ChunkPlan> plan = Plan(org, cutoff, budget);
    if (!plan.ok()) return plan.status();
    if (plan->transfers.empty()) return absl::OkStatus();
    absl::StatusOr<bool> committed = Commit(org, *plan, stats);
    if (!committed.ok()) return committed.status();
    if (!*committed) {
      stats.raced = true;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

RoundStats Archiver::RunRound(absl::Time now, const std::function<bool()>& stop) {
  RoundStats round;
  absl::StatusOr<std::vector<std::string>> orgs = org_registry_.Orgs();
  if (!orgs.ok()) {
    common::log::Error(absl::StrCat("archive: reading the org registry: ", orgs.status().ToString()));
    ++round.failed;
    return round;
  }
  for (const std::string& org : *orgs) {
    if (stop() || round.orgs >= options_.max_orgs_per_round) return round;
    ++round.orgs;
    absl::StatusOr<ArchiveStats> stats = RunOnce(org, now);
    if (!stats.ok()) {
      ++round.failed;
      common::log::Error(absl::StrCat("archive: org '", absl::CHexEscape(org),
                                      "': ", stats.status().ToString()));
      continue;
    }
    round.archived += stats->transfers_archived;
  }
  return round;
}

}  // namespace ledger
