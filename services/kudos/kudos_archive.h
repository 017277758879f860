// Kudos older than the org's `retention.kudos_live_days` leave their live
// records and feed indexes for the org's compact archive (docs/retention-kudos.md):
//   kudos:{org}:archive:<YYYY-MM>:<n>   STRING, one zstd frame of up to
//                                       kMaxChunkKudos entries (seq, Kudos pb
//                                       with its boosts, team ids), seq ascending
//   kudos:{org}:archive:chunks          ZSET "<YYYY-MM>:<n>" by the chunk's
//                                       highest seq (chunks never overlap)
//   kudos:{org}:archive:index           HASH <3 hex of the id's digest> ->
//                                       12-byte records (8-byte digest, month,
//                                       chunk), so GetKudos finds a chunk by id
//   kudos:{org}:archive:lock            one sweep of the org at a time
// Archived kudos stay readable through KudosStore::GetKudos / ListFeed.
// The same sweep trims `audit:{org}` below `retention.audit_days`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "services/kudos/archive_chunk.h"
#include "services/kudos/kudos_store.h"

namespace kudos {

struct ArchiverOptions {
  int batch_kudos = 256;       // kudos read and archived per script call
  int chunk_kudos = kMaxChunkKudos;  // entries per chunk (smaller in tests: many chunks)
  int max_batches_per_run = 8;  // bounds one RunOnce of one org
  absl::Duration lock_ttl = absl::Seconds(60);
  int zstd_level = 12;
};

struct ArchiveStats {
  int64_t kudos_archived = 0;
  int64_t bytes_written = 0;  // compressed chunk bytes written (rewrites included)
  int64_t chunks_written = 0;
  int64_t audit_entries_trimmed = 0;
  int64_t conflicts = 0;  // batches another replica moved first (nothing written; next run)
  bool lock_busy = false;  // another replica was sweeping this org: nothing done
  bool more = false;       // the run stopped at its bound with old kudos left
};

class Archiver {
 public:
  Archiver(common::redis::Pool& pool, KudosStore& store, ArchiverOptions options = {});

  // One bounded sweep of `org` as of `now`: archives committed kudos created
  // before now - kudos_live_days (oldest first, never PENDING ones), trims
  // the audit stream below now - audit_days. Safe to run on several
  // replicas at once: each kudos is archived exactly once.
  absl::StatusOr<ArchiveStats> RunOnce(const std::string& org, absl::Time now);

  // Every registered org (KudosStore::Orgs), each on its own (one org's failure is
  // logged and skipped), until `stop` says so (checked between orgs, so a
  // shutdown waits for one org's bounded run at most). Returns the summed stats.
  ArchiveStats RunAllOrgs(absl::Time now, const std::function<bool()>& stop = [] { return false; });

 private:
  // The oldest live committed kudos after the archive's last seq, up to a
  // batch, stopping at the first one still within the live window.
  absl::StatusOr<std::vector<ArchivedKudos>> OldCandidates(const std::string& org, absl::Time cutoff);
  // Appends `batch` (one month, seq ascending) to the month's open chunk or
  // a new one, atomically with removing the live records. Returns false on a
  // conflict with another replica (nothing written).
  absl::StatusOr<bool> ArchiveMonth(const std::string& org, const std::string& month,
                                    const std::vector<ArchivedKudos>& batch, ArchiveStats& stats);
  absl::StatusOr<int64_t> TrimAudit(const std::string& org, absl::Time cutoff);
  // archive_batch.lua on `batch` (the new entries of chunk `ref`, named
  // `chunk_name`) with `head_args` (its arguments before the entries): the
  // script's answer, OK or CONFLICT.
  absl::StatusOr<std::string> RunArchiveBatch(const std::string& org, const std::string& chunk_name,
                                              const ChunkRef& ref,
                                              const std::vector<std::string>& head_args,
                                              const std::vector<ArchivedKudos>& batch);

  common::redis::Pool& pool_;
  KudosStore& store_;
  const ArchiverOptions options_;
  common::redis::Script archive_batch_;
  common::redis::Script release_lock_;
};

}  // namespace kudos
