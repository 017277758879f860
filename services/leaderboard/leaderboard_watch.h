// Live boards: one hub per watched board, fed by the consumer after it
// applies an event (no Redis polling per watcher). A single notifier thread
// refreshes a dirty hub at most every 200 ms (coalescing: at most 5 snapshots a
// second, and a change waits at most 200 ms plus one read), reads the top N
// once for all of the hub's watchers and hands each watcher a snapshot when
// its top N changed. Watchers are gRPC callback reactors: no thread each.
//
// Bounds (issue 12, finding 4): streams per person (the Guard's slots, held by
// the reactor), distinct boards watched per org, watchers per replica. The
// notifier serves orgs round-robin, one hub per org per round, so one org's
// many busy boards cannot delay another org's update. A hub is validated on
// its first refresh with the org's calendar and directory (the period is the
// current or the previous one; an empty board's team or value exists); an
// invalid hub's watchers end with that status.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/grpc/read_cache.h"
#include "common/ratelimit/rate_limit.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard {

class Watchers;

// The most entries a watcher may ask for (WatchLeaderboardRequest.top_n).
inline constexpr int kMaxWatchTopN = 100;

struct WatchLimits {
  int max_boards_per_org = 256;  // distinct boards one org has watched at once
  int max_watchers = 20000;      // open watch streams on this replica, services included
  std::chrono::milliseconds retry_after{5000};  // advised to a refused client
};
// From --max_watched_boards_per_org (env LEADERBOARD_MAX_WATCHED_BOARDS_PER_ORG,
// 256) and --max_board_watchers (env LEADERBOARD_MAX_BOARD_WATCHERS, 20000).
WatchLimits WatchLimitsFromFlags();

// GetLeaderboard's first pages, per replica (issue 13): the page and its
// display names. Concurrent reads of one page share one Redis read
// (single-flight: a read arriving while it is in flight gets its answer).
// With --board_page_cache_ms (env LEADERBOARD_PAGE_CACHE_MS; default
// kDefaultPageCacheMs = 100; 0 = nothing kept after the answer) a page is
// also served for at most that long after its read started (at most 200,
// the watch's coalescing, so a reader is never further behind than a
// watcher), and never after this replica's consumer (or a rebuild) changed
// any board of its org: Watchers::Touched/TouchOrg invalidate the org's
// pages, and this replica's consumer brackets each apply with
// pages().BeginWrite/EndWrite (ConsumerOptions::on_writes), so a read that
// starts after a batch took effect in Redis is never served a page from
// before it. Another replica's consumer does not tell this one: there the ttl
// is the bound. At most --board_page_cache_entries (env
// LEADERBOARD_PAGE_CACHE_ENTRIES, 4096) pages.
//
// Why on by default: a board screen up to 100 ms behind is what users see
// anyway (boards trail the events by the consumer's batch; live screens use
// WatchLeaderboard, which coalesces for 200 ms), and hot first pages (many
// screens on one org's board) then cost no Redis read each. The price: in a
// Redis stall a page read in the last 100 ms is still served; calls after
// that fail on time like every other read (leaderboard_async_test).
inline constexpr int kDefaultPageCacheMs = 100;
struct CachedPage {
  BoardPage page;
  std::map<std::string, std::string> names;  // subject id -> display name
};
using PageCache = common::grpc_util::ReadCache<CachedPage>;
common::grpc_util::ReadCacheOptions PageCacheOptionsFromFlags();

// For reads and watches of an empty board: NOT_FOUND when its SCOPE_TEAM /
// SCOPE_VALUE names no team of the org's directory / no value of its catalog
// (CheckScopeKnown); UNAVAILABLE when the directory cannot be read.
absl::Status CheckEmptyBoardScope(Store& store, const std::string& org,
                                  const v1::Board& board, const OrgCalendar& calendar);

// A hub that may be refreshed now. FairRound picks one notifier round: at
// most one hub per org (a new watcher's hub first, then the least recently
// refreshed), urgent and stalest first across orgs.
struct RefreshCandidate {
  std::string hub_id;
  std::string org;
  bool urgent = false;
  std::chrono::steady_clock::time_point last_refresh;
};
std::vector<std::string> FairRound(std::vector<RefreshCandidate> due);

// Owned by shared pointers: the hub and the reactor itself (until OnDone),
// so the notifier can offer snapshots without holding any lock while gRPC
// runs callbacks (which may run inline in StartWrite / Finish).
class WatchReactor : public grpc::ServerWriteReactor<v1::WatchLeaderboardResponse> {
 public:
  // `slot` is the person's stream slot, held until the stream is done.
  static std::shared_ptr<WatchReactor> Create(Watchers& watchers, std::string hub_id, int top_n,
                                              common::ratelimit::StreamSlots::Slot slot = {});

  int top_n() const { return top_n_; }
  const std::string& hub_id() const { return hub_id_; }

  // Sends the snapshot unless its entries equal the last one sent; while a
  // write is in flight only the newest snapshot is kept.
  void Offer(const v1::WatchLeaderboardResponse& snapshot);
  // Ends the stream (after the write in flight, if any).
  void Close(const grpc::Status& status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  WatchReactor(Watchers& watchers, std::string hub_id, int top_n,
               common::ratelimit::StreamSlots::Slot slot)
      : watchers_(watchers), hub_id_(std::move(hub_id)), top_n_(top_n), slot_(std::move(slot)) {}
  void PrepareLocked(v1::WatchLeaderboardResponse snapshot);

  Watchers& watchers_;
  std::string hub_id_;
  int top_n_;
  common::ratelimit::StreamSlots::Slot slot_;  // released when the reactor is freed
  std::shared_ptr<WatchReactor> self_;
  std::mutex mu_;
  bool writing_ = false;
  bool finish_called_ = false;
  bool close_requested_ = false;
  grpc::Status close_status_;
  bool has_sent_ = false;
  v1::WatchLeaderboardResponse in_flight_;
  std::optional<v1::WatchLeaderboardResponse> pending_;
  std::string last_entries_;  // the last snapshot sent, as comparable text
};

class Watchers {
 public:
  explicit Watchers(Store& store, WatchLimits limits = WatchLimitsFromFlags(),
                    std::chrono::milliseconds min_interval = std::chrono::milliseconds(200),
                    common::grpc_util::ReadCacheOptions page_cache = PageCacheOptionsFromFlags());
  ~Watchers();

  void Start();
  // Ends every stream (server shutdown) and stops the notifier.
  void Shutdown();

  // Registers a reactor on the hub of (org, board); the first snapshot
  // follows at once. RESOURCE_EXHAUSTED (retry after limits().retry_after)
  // past the org's boards or the replica's watchers, UNAVAILABLE while
  // shutting down: the caller then closes the reactor with that status.
  absl::Status Register(const std::string& org, const v1::Board& board,
                        std::shared_ptr<WatchReactor> reactor);
  void Unregister(WatchReactor* reactor);
  // GetLeaderboard's first pages (invalidated per org by Touched/TouchOrg).
  PageCache& pages() { return pages_; }
  // Called by the consumer after an event changed these board keys.
  void Touched(const std::string& org, const std::vector<std::string>& board_keys);
  // Every hub of the org (after a rebuild).
  void TouchOrg(const std::string& org);

  static std::string HubId(const std::string& org, const v1::Board& board);
  size_t watcher_count();
  const WatchLimits& limits() const { return limits_; }

 private:
  struct Hub {
    std::string org;
    v1::Board board;
    std::string key;     // resolved board key
    std::string period;  // resolved period key
    std::map<WatchReactor*, std::shared_ptr<WatchReactor>> reactors;
    bool dirty = true;
    bool urgent = true;      // a new watcher waits for its first snapshot
    bool validated = false;  // period and scope checked on the first refresh
    absl::Time period_end = absl::InfiniteFuture();  // of the resolved period
    std::chrono::steady_clock::time_point last_refresh{};
  };

  void Run();
  // Marks hubs due for a re-read: current-period hubs whose period ended,
  // and every hub at each directory re-check (names, calendar changes).
  void MarkStaleLocked(std::chrono::steady_clock::time_point now,
                       std::chrono::steady_clock::time_point& next_recheck);
  std::vector<RefreshCandidate> DueLocked(std::chrono::steady_clock::time_point now,
                                          std::chrono::steady_clock::time_point& wake);
  void Refresh(const std::string& hub_id);
  // The first refresh's checks: the period, and the scope of an empty board.
  absl::Status Validate(const std::string& org, const v1::Board& board,
                        const OrgCalendar& calendar, const BoardPage& page);
  // Ends every watcher of the hub with `status` and drops the hub.
  void Reject(const std::string& hub_id, const absl::Status& status);
  void EraseHubLocked(std::map<std::string, Hub>::iterator it);
  Hub& IndexedHubLocked(const std::string& hub_id);  // a hub id from hubs_of_org_

  Store& store_;
  WatchLimits limits_;
  std::chrono::milliseconds min_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Hub> hubs_;
  std::map<std::string, std::set<std::string>> hubs_of_org_;  // org -> hub ids
  size_t watcher_total_ = 0;                                    // reactors in hubs_
  bool stopping_ = false;
  std::thread thread_;
  PageCache pages_;
};

}  // namespace leaderboard
