// Consumes every org's ledger outbox and kudos event stream through a
// consumer group (at least once) and applies each entry exactly once through
// the Projector (dedupe inside the apply script). Also replays whole streams
// for RebuildProjections.
//
// Orgs are isolated from each other (issue 12, finding 2): an org whose
// entries fail waits alone, with backoff, and re-reads its own pending
// entries when due (OrgRetries); the other orgs are applied, acknowledged
// and read on. An entry that keeps failing goes to the org's dead-letter
// stream. The isolation (OrgRetries, Consumer) knows nothing of how entries
// are applied (Projector), so either can change without the other.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/leaderboard_events.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/projection_image.h"

namespace leaderboard {

enum class StreamKind { kLedger, kKudos };

struct RebuildOptions {
  // One rebuild per org per interval (kept in Redis, shared by replicas);
  // 0 = unlimited (tests).
  std::chrono::milliseconds min_interval{60000};
  // The rebuild lock lapses this long after its last refresh, so a crashed
  // rebuild pauses its org's consumption only that long.
  std::chrono::milliseconds lock_ttl{30000};
  // What a rebuild staged but never swapped in (it crashed) lives this long.
  std::chrono::milliseconds staging_ttl{600000};
  // A compaction removes at most this many entries per stream (XTRIM ~
  // LIMIT), so a first trim of a long stream does not block Redis; the next
  // compaction continues it.
  int64_t trim_limit = 10000;
};

// The org's projection snapshot (zstd-compressed ProjectionImage) and the
// lock of its compaction; outside lb:{org}:*, which a rebuild replaces.
std::string SnapshotKey(const std::string& org);
std::string CompactLockKey(const std::string& org);
// The marks the stored snapshot covers (hash k, l): a snapshot is replaced
// only by one covering at least these.
std::string SnapshotMarksKey(const std::string& org);

// "k:" for the kudos stream, "l:" for the ledger's: the stream of an
// ApplyPlan's entry id (its marks field).
std::string StreamPrefix(StreamKind kind);

// Turns one stream entry into projection updates.
class Projector {
 public:
  explicit Projector(Store& store, RebuildOptions rebuild = {})
      : store_(store), rebuild_(rebuild), trim_script_("leaderboard_trim_stream", TrimStreamLua()),
        store_snapshot_script_("leaderboard_store_snapshot", StoreSnapshotLua()) {}

  struct Result {
    bool applied = false;  // false: seen before, or not a usable event
    std::vector<std::string> touched_boards;
  };
  // Applies entries (of any orgs, in the given order) with a few pipelined
  // round trips instead of several per entry: the directory (settings and
  // people) in one per run, the apply scripts and the givers' streak days in
  // one pipeline, badge awards in one more when due. A run ends
  // after an entry that changes the directory (settings, people), so the
  // entries after it are planned with the directory it leaves, exactly as
  // one at a time. Results are per entry, in order. On error nothing needs
  // undoing: running the same entries again is a no-op for applied ones.
  struct BatchItem {
    const std::string* org;
    StreamKind kind;
    const StreamEntry* entry;
  };
  absl::StatusOr<std::vector<Result>> ApplyBatch(const std::vector<BatchItem>& items);
  // Issue 17: ApplyBatch appends the badge and streak events its scripts
  // cause to lb:{org}:events (leaderboard_events.h) when `events.enabled`;
  // off until set (the Consumer sets its options'). Rebuilds, compactions
  // and skips never append any. Set before any thread applies.
  void set_events(const EventsOptions& events) { events_ = events; }
  // Moves the entry's stream mark past it without applying it (a
  // dead-lettered entry), so the entries after it can follow. False when it
  // was applied before; ABORTED while entries before it are not applied.
  absl::StatusOr<bool> Skip(const std::string& org, StreamKind kind, const std::string& entry_id);

  struct RebuildResult {
    int64_t events_applied = 0;
    int64_t events_read = 0;
  };
  // Takes the org's rebuild lock and its rebuild budget in Redis (ABORTED
  // if another rebuild runs, RESOURCE_EXHAUSTED "retry after N ms" within
  // RebuildOptions::min_interval of the last one; both change nothing), so
  // every replica's apply script refuses to write the org meanwhile (its
  // entries wait, other orgs carry on). Replays both streams from the start,
  // merged in stream-id order, into an image in memory, stages it under
  // temporary keys, then swaps it in with one atomic script: readers see the
  // old boards or the new ones, never a mix or none, and a rebuild that dies
  // before the swap leaves the old boards (its staged keys expire).
  // DATA_LOSS (boards kept) if a stream lost entries after the snapshot's mark.
  absl::StatusOr<RebuildResult> Rebuild(const std::string& org);

  // Compacts the org's history (docs/retention-leaderboard.md): under the
  // org's compaction lock (ABORTED while another replica compacts), replays
  // the previous snapshot + both streams up to the consumer's marks into an
  // image, stores it zstd-compressed as the org's snapshot (it covers the
  // image's marks; refused if they are older than the stored snapshot's, or
  // if the lock lapsed to another replica), then trims each stream
  // (XTRIM MINID ~ LIMIT trim_limit: bounded, never past the id) to at most the
  // snapshot's mark and every consumer group's last-delivered and oldest
  // pending id, so no group loses an undelivered or unacknowledged entry.
  // RebuildProjections then replays the snapshot + the streams' tails.
  struct CompactResult {
    int64_t events_read = 0;
    int64_t trimmed = 0;  // entries removed from both streams
  };
  absl::StatusOr<CompactResult> Compact(const std::string& org);

  // The pieces of Compact that guard against a compaction whose lock lapsed
  // to another replica (public for tests). Refreshing: ABORTED unless the
  // lock holds `token`. Storing: ABORTED unless the lock holds `token`,
  // FAILED_PRECONDITION if the marks (stream ids, "0-0" for none) are older
  // than the stored snapshot's.
  absl::Status RefreshCompactLock(const std::string& org, const std::string& token);
  absl::Status StoreSnapshot(const std::string& org, const std::string& token,
                             const std::string& bytes, const std::string& kudos_mark,
                             const std::string& ledger_mark);

  // Held while the consumer applies entries and for a rebuild's final swap
  // only (never for the replay). Rebuild takes it itself.
  std::mutex& apply_mutex() { return apply_mu_; }

 private:
  absl::StatusOr<RebuildResult> Replay(const std::string& org, const std::string& token);
  // Both streams after the image's marks (up to `until` k, l; "" = the end)
  // into the image: planned on a thread of its own, applied on this one.
  absl::Status ReplayInto(ProjectionImage& image, const std::string& org,
                          const std::string& token, const std::function<absl::Status()>& refresh,
                          const std::pair<std::string, std::string>& until,
                          RebuildResult& result);
  // The org's snapshot as an image (nullopt: none yet).
  absl::StatusOr<std::optional<ProjectionImage>> LoadSnapshot(const std::string& org);
  // XTRIM of one stream to at most `covered` and every group's positions.
  absl::StatusOr<int64_t> TrimStream(const std::string& org, const std::string& stream,
                                     const std::string& covered);

  // DATA_LOSS when a stream lost entries after the image's mark (trimmed
  // above it): replaying the tail would silently miss them.
  absl::Status CheckTailsIntact(const std::string& org, const ProjectionImage& image);

  static const char* TrimStreamLua();
  static const char* StoreSnapshotLua();

  Store& store_;
  RebuildOptions rebuild_;
  common::redis::Script trim_script_;
  common::redis::Script store_snapshot_script_;
  std::mutex apply_mu_;
  EventsOptions events_ = [] {
    EventsOptions off;
    off.enabled = false;
    return off;
  }();
};

// What the compactor weighs per org, read with one pipeline of O(1)
// commands (XLEN, MEMORY USAGE, STRLEN, HMGET).
struct CompactionSizes {
  int64_t stream_entries = 0;  // both streams
  int64_t stream_bytes = 0;    // both streams, MEMORY USAGE (sampled)
  int64_t snapshot_bytes = 0;  // the stored snapshot, 0 = none
  // The consumer applied entries the stored snapshot does not cover.
  bool marks_past_snapshot = false;
};

// Compacts orgs in the background (issue 15): every `interval`, each org
// that CompactionDue says is due gets Projector::Compact (its lock makes
// replicas take turns). On its own thread: one org's compaction never holds
// up the consumer.
class Compactor {
 public:
  struct Options {
    std::chrono::milliseconds interval{600000};
    // Due at this many entries in the org's two streams, whatever their bytes.
    int64_t min_entries = 100000;
    // Due once the streams hold more than this many bytes and more than the
    // org's snapshot (and entries the snapshot does not cover).
    int64_t min_bytes = int64_t{1} << 20;
  };
  Compactor(Store& store, Projector& projector, Options options);
  ~Compactor();
  void Start();
  void Stop();
  // One pass over the orgs; how many were compacted.
  int RunOnce();
  // Compacts `org` when CompactionDue says it is due; nullopt when it is not.
  // Errors: Redis's, or Projector::Compact's (ABORTED while another replica
  // compacts the org).
  absl::StatusOr<std::optional<Projector::CompactResult>> CompactIfDue(const std::string& org);

 private:
  Store& store_;
  Projector& projector_;
  Options options_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Whether an org is due for compaction. A compaction costs about the
// snapshot's size (load it, replay the tail, compress it again), so doing one
// once the streams outweigh the snapshot keeps an org's streams near its
// snapshot's size (or `min_bytes`) while each compaction is paid for by at
// least as many bytes of new entries. `min_entries` bounds the streams of an
// org whose snapshot is large. Nothing new to cover (a consumer group that
// lags holds the trim back): not due by bytes, so no compaction repeats the
// same work every interval.
bool CompactionDue(const CompactionSizes& sizes, const Compactor::Options& options);

// Per-org failure bookkeeping of the consumer, without Redis: which orgs
// read new entries ("live") and which wait to retry their pending entries,
// when, and how often the entry an org's failures are pinned on has failed.
// Not thread-safe (the consumer thread owns it).
class OrgRetries {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
    // Failures of one entry before it is dead-lettered.
    int max_attempts = 5;
  };
  explicit OrgRetries(Options options);

  // True unless the org waits or catches up on its pending entries.
  bool Live(const std::string& org) const;
  // Orgs whose pending entries are due at `now`, and the earliest due time.
  std::vector<std::string> Due(Clock::time_point now) const;
  std::optional<Clock::time_point> NextDue() const;
  // Orgs not live.
  size_t waiting() const { return orgs_.size(); }

  // The org's pending entries come before new ones (start-up, claimed
  // entries, a lost acknowledgement): due now.
  void CatchUp(const std::string& org, Clock::time_point now);
  // Some of its pending entries were handled: due again now, so it drains.
  void Progressed(const std::string& org, Clock::time_point now);
  // No pending entries left: live again, its failures forgotten.
  void Drained(const std::string& org);
  // Applying the org's entries failed. `entry_id`: the one entry that was
  // tried, or "" for a batch (the next try is of its oldest entry alone, so
  // a failure is pinned on one entry). `counts`: false when waiting is the
  // cure (a rebuild holds the org, Redis is unavailable); those never
  // dead-letter. Schedules the retry with backoff and returns true when
  // `entry_id` has failed max_attempts times: dead-letter it.
  bool Failed(const std::string& org, const std::string& entry_id, bool counts,
              Clock::time_point now);
  // How many pending entries the next try of the org should apply: one
  // while a failure is being pinned on an entry, else `batch`.
  int NextCount(const std::string& org, int batch) const;
  int attempts(const std::string& org) const;

 private:
  struct State {
    Clock::time_point due;
    int failures = 0;       // in a row, for the backoff
    bool isolate = false;   // try the oldest entry alone
    std::string entry_id;   // the entry `attempts` counts
    int attempts = 0;
  };
  Options options_;
  std::map<std::string, State> orgs_;  // orgs not live
};

struct ConsumerOptions {
  common::redis::Endpoint endpoint;
  std::string group = "leaderboard";
  std::string consumer_name = "leaderboard-1";
  std::chrono::milliseconds block{1000};
  // Pending entries idle this long are taken from other (dead) consumers.
  std::chrono::milliseconds claim_min_idle{30000};
  std::chrono::milliseconds org_refresh{1000};
  // Entries read per stream at a time (each batch costs a fixed number of
  // round trips; 1,000 measured no better than 200 in bench/).
  int batch = 200;
  OrgRetries::Options retries;
  // Entries kept in each org's dead-letter stream (XADD MAXLEN ~).
  int dead_letter_max_len = 10000;
  // Issue 17: the leaderboard's events (badges, streaks, period closes),
  // from the --lb_events* flags unless set.
  EventsOptions events = EventsOptionsFromFlags();
  // Issue 18: closes ended seasons in the period sweep (nullptr: none).
  SeasonCloser* seasons = nullptr;
  // Called with true before this replica applies a batch of the org, and with
  // false once the apply returned, whatever its outcome: main.cc brackets the
  // page cache's writes with it (ReadCache::BeginWrite), so no GetLeaderboard
  // of this replica that starts after a batch took effect is served a page
  // from before it. Empty: nothing to tell.
  std::function<void(const std::string& org, bool begin)> on_writes;
};

// The org's dead-letter stream: entries given up on after
// OrgRetries::Options::max_attempts, with fields stream, id, event, reason,
// attempts, time (unix ms). In the org's slot, outside lb:{org}:* (a rebuild
// replaces those).
std::string DeadLetterStream(const std::string& org);

class Consumer {
 public:
  using OnApplied =
      std::function<void(const std::string& org, const std::vector<std::string>& touched)>;

  Consumer(Store& store, Projector& projector, ConsumerOptions options, OnApplied on_applied);
  ~Consumer();

  void Start();
  void Stop();

  // How long since the consumer last made progress: acknowledged entries or
  // found nothing to do. Grows while entries wait and none can be applied,
  // or while the consumer's thread is stuck.
  std::chrono::milliseconds SinceProgress() const;

 private:
  struct StreamRef {
    std::string org;
    StreamKind kind;
    std::string key;
  };
  using Batch = std::vector<std::pair<const StreamRef*, StreamEntry>>;

  void Run();
  absl::Status DiscoverOrgs();
  // Takes entries idle at other (dead) consumers into ours (ids only); the
  // org then catches up on them.
  absl::Status ClaimIdle(const StreamRef& stream);
  void ClaimAll();
  // One try of each org whose pending entries are due.
  void RetryDue();
  void RetryPending(const std::string& org);
  // New entries of the live orgs, applied; false when nothing came.
  bool ReadLive();
  // ReadLive on a Redis Cluster: one XREADGROUP per live org; false (after
  // a short pause) when nothing came.
  bool ReadLivePerOrg(std::chrono::milliseconds block, std::vector<common::redis::Reply>& per_streams);
  // The entries a live read held back, for the live orgs (see held_).
  Batch TakeHeld();
  // Moves into held_ each entry past its org's horizon: the smallest last id
  // among the org's streams that returned a full `batch` (`full`).
  void HoldPastHorizon(Batch& batch, const std::set<const StreamRef*>& full);
  // Applies entries of one or more orgs (each org's in order), acknowledges
  // what was applied and defers each org that failed, alone.
  void Apply(const Batch& batch);
  // Applies, acknowledges and notifies; the status of the apply.
  absl::Status ApplyAndAck(const Batch& batch);
  void Defer(const std::string& org, const Batch& entries, const absl::Status& status);
  // Pending entries (our own, claimed ones) may skip stream entries other
  // consumers hold; the apply script takes a stream's entries only without
  // a gap, so the batch ends, per stream, before the first entry that is
  // not the stream's next one (one XRANGE per stream).
  absl::Status CutAtGaps(Batch& batch);
  absl::Status DeadLetter(const StreamRef& stream, const StreamEntry& entry,
                          const absl::Status& reason, int attempts);
  void MarkProgress();
  // Issue 17: closes the known orgs' due periods (PeriodSweep), a round
  // every events.sweep_interval, in turns of about events.sweep_turn_budget
  // (one per loop pass) so entries keep being applied meanwhile; true when
  // the round is done.
  bool SweepPeriods();
  // True (and everything is set up again) when a stream lost its group.
  bool ResetOnNoGroup(const absl::Status& status);
  const StreamRef* Find(const std::string& key) const;

  Store& store_;
  Projector& projector_;
  ConsumerOptions options_;
  OnApplied on_applied_;
  common::redis::Connection reader_;
  std::vector<StreamRef> streams_;
  std::set<std::string> known_orgs_;
  OrgRetries retries_;
  // Live-read entries past their org's horizon, by stream key, oldest
  // first: applied with the next read, so an org's entries are applied in
  // stream-id order across its streams (as a rebuild replays them) even
  // when one stream returns a full batch and the other has more to come.
  // At most `batch` per stream; pending in the group meanwhile.
  std::map<std::string, std::vector<StreamEntry>> held_;
  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point next_claim_{};
  std::chrono::steady_clock::time_point next_sweep_{};
  PeriodCloser closer_;
  PeriodSweep sweep_;  // after closer_ (holds it)
  bool sweep_in_round_ = false;
  std::atomic<int64_t> progress_ms_{0};  // steady clock, ms
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// "1700000000000-3" -> (ms, seq); (0, 0) when malformed.
std::pair<uint64_t, uint64_t> ParseStreamId(const std::string& id);

}  // namespace leaderboard
