// Live boards: one hub per watched board, fed by the consumer after it
// applies an event (no Redis polling per watcher). A single notifier thread
// refreshes a dirty hub at most every 200 ms (coalescing: at most 5 snapshots a
// second, and a change waits at most 200 ms plus one read), reads the top N
// once for all of the hub's watchers and hands each watcher a snapshot when
// its top N changed. Watchers are gRPC callback reactors: no thread each.
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

#include "leaderboard/v1/leaderboard.pb.h"
#include "services/leaderboard/leaderboard_store.h"

namespace leaderboard {

class Watchers;

// Owned by shared pointers: the hub and the reactor itself (until OnDone),
// so the notifier can offer snapshots without holding any lock while gRPC
// runs callbacks (which may run inline in StartWrite / Finish).
class WatchReactor : public grpc::ServerWriteReactor<v1::WatchLeaderboardResponse> {
 public:
  static std::shared_ptr<WatchReactor> Create(Watchers& watchers, std::string hub_id, int top_n);

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
  WatchReactor(Watchers& watchers, std::string hub_id, int top_n)
      : watchers_(watchers), hub_id_(std::move(hub_id)), top_n_(top_n) {}
  void PrepareLocked(v1::WatchLeaderboardResponse snapshot);

  Watchers& watchers_;
  std::string hub_id_;
  int top_n_;
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
  Watchers(Store& store, std::chrono::milliseconds min_interval = std::chrono::milliseconds(200));
  ~Watchers();

  void Start();
  // Ends every stream (server shutdown) and stops the notifier.
  void Shutdown();

  // Registers a reactor on the hub of (org, board); the first snapshot
  // follows at once.
  void Register(const std::string& org, const v1::Board& board,
                std::shared_ptr<WatchReactor> reactor);
  void Unregister(WatchReactor* reactor);
  // Called by the consumer after an event changed these board keys.
  void Touched(const std::string& org, const std::vector<std::string>& board_keys);
  // Every hub of the org (after a rebuild).
  void TouchOrg(const std::string& org);

  static std::string HubId(const std::string& org, const v1::Board& board);
  size_t watcher_count();

 private:
  struct Hub {
    std::string org;
    v1::Board board;
    std::string key;     // resolved board key
    std::string period;  // resolved period key
    std::map<WatchReactor*, std::shared_ptr<WatchReactor>> reactors;
    bool dirty = true;
    bool urgent = true;  // a new watcher waits for its first snapshot
    std::chrono::steady_clock::time_point last_refresh{};
  };

  void Run();
  void Refresh(const std::string& hub_id);

  Store& store_;
  std::chrono::milliseconds min_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Hub> hubs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace leaderboard
