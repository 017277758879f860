// Bounded ledger history: transfers older than the org's
// RetentionPolicy.transfers_live_days fold into an archived checkpoint, so
// the transfer buckets (`txb:<bucket>`), `acct:<account>` and `journal` hold
// only the live tail while balances, ListTransfers and VerifyLedger stay exact
// (docs/retention-ledger.md has the policy and the format).
//
// Keys, all in the org's slot (P = "ledger:{org}:"):
//   P..'retention'            common.v1.RetentionPolicy (defaults filled in)
//   P..'ckpt'                 HASH through_seq, count, chunks, bytes, chain
//   P..'ckpt:bal'             HASH account -> net movement of archived transfers
//   P..'arch:dir'             ZSET chunk id -> first sequence in the chunk
//   P..'arch:meta'            HASH chunk id -> "last_seq,count,sha256,raw_bytes"
//   P..'arch:c:'..chunk id    STRING zstd(ledger.v1.TransfersPosted{transfers})
//   P..'arch:a:'..account     STRING the account's archived sequences, 5 bytes
//                             big-endian each, ascending (ListTransfers' index)
//   P..'arch:lock'            STRING the replica running the org's archive
// A chunk id is "<YYYY-MM>:<first sequence>": chunks never span a UTC month.
// The archive is always a sequence prefix 1..through_seq of the journal.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "ledger/v1/ledger.pb.h"

namespace ledger {

struct ArchiveOptions {
  // Work bound of one RunOnce for one org (each chunk is one atomic script).
  int max_transfers_per_run = 5000;
  int max_transfers_per_chunk = 1000;
  // A chunk closes once its serialized transfers pass this.
  int64_t max_chunk_raw_bytes = 1 << 20;
  // How long a replica owns an org's run; the script's compare-and-set on
  // the checkpoint keeps concurrent runs safe even after it expires.
  absl::Duration lock_ttl = absl::Seconds(60);
  int zstd_level = 9;
  // Orgs visited per RunRound (from the org registry, common/redis/org_registry.h).
  int max_orgs_per_round = 100000;
};

struct ArchiveStats {
  int64_t transfers_archived = 0;  // folded into the checkpoint by this run
  int64_t chunks = 0;
  // Compressed chunks plus the accounts' index entries (5 bytes per
  // sequence per account) this run wrote.
  int64_t bytes_written = 0;
  int64_t raw_bytes = 0;  // the chunks' serialized transfers before zstd
  bool lock_busy = false;  // another replica was running this org
  bool raced = false;      // another run moved the checkpoint first; this one stopped
};

struct RoundStats {
  int orgs = 0;
  int failed = 0;
  int64_t archived = 0;
};

// zstd(TransfersPosted) and back; the decompressed size is bounded.
absl::StatusOr<std::string> CompressChunk(const ledger::v1::TransfersPosted& chunk, int level);
absl::StatusOr<ledger::v1::TransfersPosted> DecompressChunk(absl::string_view compressed);
// SHA-256 (hex) of a compressed chunk, recorded when it is archived.
std::string ChunkDigest(absl::string_view compressed);
// The checkpoint's chain after one more chunk: sha256(chain || chunk sha).
std::string ChainAfter(absl::string_view chain, absl::string_view chunk_sha);

class Archiver {
 public:
  explicit Archiver(common::redis::Pool& pool, ArchiveOptions options = {});

  // Archives the org's transfers posted before now - transfers_live_days,
  // oldest first, at most options.max_transfers_per_run. A no-op when
  // another replica holds the org's lock or nothing is old enough.
  absl::StatusOr<ArchiveStats> RunOnce(const std::string& org, absl::Time now);

  // RunOnce for every registered org (common/redis/org_registry.h: every
  // cluster slot's registry, each read on its own node), each on its own: one org's
  // failure is logged and counted, the others still run. `stop` is polled
  // between orgs.
  RoundStats RunRound(absl::Time now, const std::function<bool()>& stop = [] { return false; });

  // The two steps of each chunk of a run (public so that a test can
  // interleave two runs): the oldest archivable transfers read from a
  // snapshot of the checkpoint and the journal head, then committed by one
  // script only if the checkpoint has not moved since.
  struct ChunkPlan {
    int64_t through_seq = 0;  // the checkpoint the plan continues
    std::string chain;
    std::vector<ledger::v1::Transfer> transfers;  // sequence order; empty: nothing to do
  };
  absl::StatusOr<ChunkPlan> PlanChunk(const std::string& org, absl::Time now);
  // False (nothing written) when another run moved the checkpoint first.
  absl::StatusOr<bool> Commit(const std::string& org, const ChunkPlan& plan,
                              ArchiveStats& stats);

 private:
  absl::StatusOr<int32_t> LiveDays(const std::string& org);
  absl::StatusOr<ChunkPlan> Plan(const std::string& org, absl::Time cutoff, int budget);
  // Plans and commits chunks until the run's budget is spent, nothing is
  // old enough, or another run moved the checkpoint.
  absl::Status ArchiveChunks(const std::string& org, absl::Time cutoff, ArchiveStats& stats);

  common::redis::Pool& pool_;
  ArchiveOptions options_;
  common::redis::OrgRegistry org_registry_;
  common::redis::Script archive_;
  common::redis::Script bodies_;  // live transfers' bodies, either stored form (lib.lua read_tx)
  common::redis::Script unlock_;
};

}  // namespace ledger
