// Live feed fan-out for WatchFeed: one reader per org with subscribers on
// this replica (one thread, one Redis connection, one blocking XREAD at a
// time on kudos:{org}:events and feedback:{org}:invitations), handing each
// KudosSent to that org's subscribers, and each new feedback invitation to
// the subscribers allowed to see it (the invitee's own streams, services). Redis connections are bounded by the cap on orgs, subscribers
// by the cap on watchers; subscribers must not block (each keeps its own
// bounded queue), so a slow one never delays the reader nor any other.
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
#include "feedback/v1/feedback.pb.h"
#include "kudos/v1/kudos.pb.h"

namespace kudos {

struct FeedHubOptions {
  common::redis::Endpoint redis;
  // When set, each org's reader connects to the node serving the org's slot
  // (a Redis Cluster; the one server when standalone) instead of `redis`.
  common::redis::Pool* pool = nullptr;
  int max_watchers = 1000;        // subscribers on this replica
  int max_orgs = 100;             // orgs with a reader (= Redis connections)
  int max_queued_per_watcher = 256;  // kudos a subscriber may fall behind by
  std::chrono::milliseconds block{1000};  // each XREAD's BLOCK
  // How long a first subscriber waits for its org's reader to pin its position.
  std::chrono::milliseconds start_timeout{5000};
  // How long a refused subscriber is told to wait before trying again.
  int retry_after_ms = 1000;
};

using SharedEvent = std::shared_ptr<const kudos::v1::KudosEvent>;
using SharedInvitation = std::shared_ptr<const feedback::v1::Invitation>;

// Which feedback invitations a subscriber gets: none (the default: screens,
// polling watchers), one person's own (person_id), or every invitee's
// (`all`: services such as the gateway, which route by Invitation.person_id).
struct InvitationAudience {
  bool all = false;
  std::string person_id;
  bool Sees(const feedback::v1::Invitation& invitation) const {
    return all || (!person_id.empty() && invitation.person_id() == person_id);
  }
};

// The stream the feedback sweep appends each new invitation to (field
// "invitation" = serialized feedback.v1.Invitation), capped; read only by
// the feed readers.
std::string InvitationStream(const std::string& org);

// What a subscriber implements. Called by the org's reader thread with no
// hub lock held; must not block.
class FeedSink {
 public:
  virtual ~FeedSink() = default;
  // KudosSent events committed since the last delivery, in order.
  virtual void Deliver(const std::vector<SharedEvent>& events) = 0;
  // Feedback invitations created since the last delivery, only those the
  // subscription's InvitationAudience sees. Default: dropped.
  virtual void DeliverInvitations(const std::vector<SharedInvitation>& invitations) {
    (void)invitations;
  }
  // Nothing more will come: the org's reader failed or the hub is stopping.
  virtual void End(const absl::Status& why) = 0;
};

class FeedHub {
 public:
  class OrgFeed;

  // A subscription; unsubscribes when destroyed. After that the sink may
  // still get one delivery that was already under way.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class FeedHub;
    Subscription(FeedHub* hub, std::shared_ptr<OrgFeed> feed, const FeedSink* sink)
        : hub_(hub), feed_(std::move(feed)), sink_(sink) {}
    FeedHub* hub_;
    std::shared_ptr<OrgFeed> feed_;
    const FeedSink* sink_;
  };

  // A subscriber that is read by polling (tests, simple consumers).
  class Watcher {
   public:
    // The KudosSent events committed since the last call, waiting up to
    // `timeout` for one (empty when none came). ABORTED once it fell more
    // than max_queued_per_watcher behind; UNAVAILABLE when the org's reader
    // failed or the hub stopped.
    absl::StatusOr<std::vector<SharedEvent>> Next(std::chrono::milliseconds timeout);

   private:
    friend class FeedHub;
    class Queue;
    std::shared_ptr<Queue> queue_;
    std::unique_ptr<Subscription> subscription_;  // destroyed first
  };

  explicit FeedHub(FeedHubOptions options);
  ~FeedHub();  // stops and joins every reader
  FeedHub(const FeedHub&) = delete;
  FeedHub& operator=(const FeedHub&) = delete;

  // Subscribes `sink` to `org`'s feed. Returns once the position is pinned:
  // every kudos committed after this returns is delivered. RESOURCE_EXHAUSTED
  // (with "retry after N ms") past max_watchers or, for an org without a
  // reader, past max_orgs; UNAVAILABLE when Redis cannot be read.
  // `invitations`: which feedback invitations the sink gets (none by default).
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(const std::string& org,
                                                          std::shared_ptr<FeedSink> sink,
                                                          InvitationAudience invitations = {});
  // Subscribe with a polling Watcher.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(const std::string& org);
  // Ends every subscriber with UNAVAILABLE and stops the readers (no wait).
  void Shutdown();

  const FeedHubOptions& options() const { return options_; }
  int watchers() const;
  int orgs() const;

 private:
  void Unsubscribe(const std::shared_ptr<OrgFeed>& feed, const FeedSink* sink);
  // The reader thread of one org.
  void Run(std::shared_ptr<OrgFeed> feed);
  common::redis::Endpoint ReaderEndpoint(const std::string& stream) const;
  common::redis::Endpoint WithAddress(absl::string_view address) const;
  // Removes `feed` from the map if it has no subscribers; true if removed.
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
