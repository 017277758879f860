// Live feed fan-out for WatchFeed: one reader per org with watchers on this
// replica (one thread, one Redis connection, one blocking XREAD at a time on
// kudos:{org}:events), handing each KudosSent to that org's watchers through
// bounded queues. Redis connections are bounded by the cap on orgs, threads
// and queues by the cap on watchers; a slow watcher never delays the reader
// nor any other watcher (it is dropped once its queue is full).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"

namespace kudos {

struct FeedHubOptions {
  common::redis::Endpoint redis;
  int max_watchers = 256;         // open watchers on this replica
  int max_orgs = 100;             // orgs with a reader (= Redis connections)
  int max_queued_per_watcher = 256;  // kudos a watcher may fall behind by
  std::chrono::milliseconds block{1000};  // each XREAD's BLOCK
  // How long a first watcher waits for its org's reader to pin its position.
  std::chrono::milliseconds start_timeout{5000};
  // How long a refused watcher is told to wait before trying again.
  int retry_after_ms = 1000;
};

using SharedEvent = std::shared_ptr<const kudos::v1::KudosEvent>;

class FeedHub {
 public:
  class OrgFeed;

  // One watcher's subscription; unsubscribes when destroyed.
  class Watcher {
   public:
    ~Watcher();
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;
    // The KudosSent events committed since the last call, waiting up to
    // `timeout` for one (empty when none came). ABORTED once the watcher fell
    // more than max_queued_per_watcher behind; UNAVAILABLE when the org's
    // reader failed or the hub stopped.
    absl::StatusOr<std::vector<SharedEvent>> Next(std::chrono::milliseconds timeout);

   private:
    friend class FeedHub;
    friend class OrgFeed;
    Watcher(FeedHub* hub, std::shared_ptr<OrgFeed> feed) : hub_(hub), feed_(std::move(feed)) {}
    // Called by the org's reader; never blocks on the watcher's consumer.
    void Push(const std::vector<SharedEvent>& events);
    void End(absl::Status why);

    FeedHub* hub_;
    std::shared_ptr<OrgFeed> feed_;
    std::mutex mu_;
    std::condition_variable ready_;
    std::deque<SharedEvent> queue_;
    absl::Status ended_;  // not OK once the watcher can get nothing more
  };

  explicit FeedHub(FeedHubOptions options);
  ~FeedHub();  // stops and joins every reader
  FeedHub(const FeedHub&) = delete;
  FeedHub& operator=(const FeedHub&) = delete;

  // Subscribes to `org`'s feed. Returns once the position is pinned: every
  // kudos committed after this returns is delivered. RESOURCE_EXHAUSTED
  // (with "retry after N ms") past max_watchers or, for an org without a
  // reader, past max_orgs; UNAVAILABLE when Redis cannot be read.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(const std::string& org);
  // Ends every watcher with UNAVAILABLE and stops the readers (no wait).
  void Shutdown();

  const FeedHubOptions& options() const { return options_; }
  int watchers() const;
  int orgs() const;

 private:
  void Unsubscribe(Watcher* watcher);
  // The reader thread of one org.
  void Run(std::shared_ptr<OrgFeed> feed);
  // Removes `feed` from the map if it has no watchers; true if removed.
  bool RetireIfIdle(const std::shared_ptr<OrgFeed>& feed);
  // Marks `feed` ended and takes it out of the map; with mu_ held.
  void RetireLocked(const std::shared_ptr<OrgFeed>& feed);
  void EndFeed(const std::shared_ptr<OrgFeed>& feed, const absl::Status& why);
  void JoinFinished();

  const FeedHubOptions options_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  int watchers_ = 0;
  std::map<std::string, std::shared_ptr<OrgFeed>> feeds_;
  std::vector<std::thread> finished_;  // exited readers, joined later
};

}  // namespace kudos
