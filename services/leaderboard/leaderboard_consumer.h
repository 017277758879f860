// Consumes every org's ledger outbox and kudos event stream through a
// consumer group (at least once) and applies each entry exactly once through
// the Projector (dedupe inside the apply script). Also replays whole streams
// for RebuildProjections.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard {

enum class StreamKind { kLedger, kKudos };

// Turns one stream entry into projection updates.
class Projector {
 public:
  explicit Projector(Store& store) : store_(store) {}

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

  struct RebuildResult {
    int64_t events_applied = 0;
    int64_t events_read = 0;
  };
  // Takes the org's rebuild lock in Redis (ABORTED if another rebuild runs),
  // so every replica's apply script refuses to write meanwhile; drops every
  // lb:{org}:* key and replays both streams from the start, merged in
  // stream-id order; releases the lock. The caller also holds apply_mutex()
  // so this replica's consumer simply waits.
  absl::StatusOr<RebuildResult> Rebuild(const std::string& org);

  // Held while applying an entry; Rebuild's caller takes it for the whole
  // rebuild so the live consumer pauses.
  std::mutex& apply_mutex() { return apply_mu_; }

 private:
  absl::StatusOr<RebuildResult> Replay(const std::string& org, const std::string& token);

  Store& store_;
  std::mutex apply_mu_;
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
};

class Consumer {
 public:
  using OnApplied =
      std::function<void(const std::string& org, const std::vector<std::string>& touched)>;

  Consumer(Store& store, Projector& projector, ConsumerOptions options, OnApplied on_applied);
  ~Consumer();

  void Start();
  void Stop();

 private:
  struct StreamRef {
    std::string org;
    StreamKind kind;
    std::string key;
  };

  void Run();
  absl::Status DiscoverOrgs();
  absl::Status Recover(const StreamRef& stream);
  // Applies (retrying while Redis is unavailable) and acknowledges; false
  // only when stopping.
  bool HandleAll(const StreamRef& stream, std::vector<StreamEntry> entries);
  bool HandleBatch(const std::vector<std::pair<const StreamRef*, StreamEntry>>& batch);
  const StreamRef* Find(const std::string& key) const;

  Store& store_;
  Projector& projector_;
  ConsumerOptions options_;
  OnApplied on_applied_;
  common::redis::Connection reader_;
  std::vector<StreamRef> streams_;
  std::set<std::string> known_orgs_;
  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point next_claim_{};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// "1700000000000-3" -> (ms, seq); (0, 0) when malformed.
std::pair<uint64_t, uint64_t> ParseStreamId(const std::string& id);

}  // namespace leaderboard
