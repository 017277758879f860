#include "services/kudos/feed_hub.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "common/redis/cluster_slots.h"
#include "services/kudos/kudos_store.h"

namespace kudos {

// One org's reader and its subscribers. `state`, `start_status` and
// `thread` are guarded by the hub's mutex; `sinks` by `mu`.
class FeedHub::OrgFeed {
 public:
  enum class State { kStarting, kRunning, kEnded };
  explicit OrgFeed(std::string org_id)
      : org(std::move(org_id)),
        stream(KudosStore::EventStream(org)),
        invitations(InvitationStream(org)) {}

  const std::string org;
  const std::string stream;
  const std::string invitations;
  State state = State::kStarting;
  absl::Status start_status;
  std::condition_variable started;  // with the hub's mutex
  std::thread thread;

  struct Subscriber {
    std::shared_ptr<FeedSink> sink;
    InvitationAudience audience;
  };
  std::mutex mu;
  std::vector<Subscriber> sinks;
};

// The polling Watcher's bounded queue.
class FeedHub::Watcher::Queue : public FeedSink {
 public:
  explicit Queue(size_t bound) : bound_(bound) {}

  void Deliver(const std::vector<SharedEvent>& events) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ended_.ok()) return;
    if (queue_.size() + events.size() > bound_) {
      // Dropped rather than waited for: the reader serves every subscriber.
      ended_ = absl::AbortedError(absl::StrCat(
          "this feed watcher fell more than ", bound_,
          " kudos behind; reconnect and read what was missed with ListKudos"));
      queue_.clear();
    } else {
      queue_.insert(queue_.end(), events.begin(), events.end());
    }
    KUDOS_CHECK(queue_.size() <= bound_, "a watcher's queue stays bounded");
    ready_.notify_all();
  }

  void End(const absl::Status& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_.ok()) ended_ = why;
    ready_.notify_all();
  }

  absl::StatusOr<std::vector<SharedEvent>> Next(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait_for(lock, timeout, [&] { return !queue_.empty() || !ended_.ok(); });
    if (!ended_.ok()) return ended_;
    std::vector<SharedEvent> events(std::make_move_iterator(queue_.begin()),
                                    std::make_move_iterator(queue_.end()));
    queue_.clear();
    return events;
  }

 private:
  const size_t bound_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<SharedEvent> queue_;
  absl::Status ended_;  // not OK once nothing more can come
};

namespace {

// A stream entry id "ms-seq" as a comparable pair; {0, 0} when malformed.
std::pair<uint64_t, uint64_t> ParseEntryId(const std::string& id) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(id, '-');
  uint64_t ms = 0, seq = 0;
  if (!absl::SimpleAtoi(parts.first, &ms) || !absl::SimpleAtoi(parts.second, &seq)) return {0, 0};
  return {ms, seq};
}

absl::Status Exhausted(absl::string_view what, int limit, int retry_after_ms) {
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " (at most ", limit, " on this replica); retry after ", retry_after_ms, " ms"));
}

// Calls `visit` with the value of each `field` of the entries of an XREAD
// reply's `stream`, in order, and leaves the id of its last entry in
// `last_id`. One walk for both streams a feed reads.
template <typename Visit>
void VisitStreamField(const common::redis::Reply& reply, const std::string& name,
                      absl::string_view field, std::string* last_id, Visit visit) {
  for (const common::redis::Reply& stream : reply.elements) {
    if (stream.elements.size() < 2 || stream.elements[0].str != name) continue;
    for (const common::redis::Reply& entry : stream.elements[1].elements) {
      if (entry.elements.size() < 2) continue;
      const std::string& id = entry.elements[0].str;
      // Redis hands entries in id order after the id asked for.
      KUDOS_CHECK(ParseEntryId(*last_id) < ParseEntryId(id), "stream entries move forward");
      *last_id = id;
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == field) visit(fields[i + 1].str);
      }
    }
  }
}

// The KudosSent events of an XREAD reply's `stream`, and the id of its last
// entry.
std::vector<SharedEvent> ParseEntries(const common::redis::Reply& reply, const std::string& name,
                                      std::string* last_id) {
  std::vector<SharedEvent> events;
  VisitStreamField(reply, name, "event", last_id, [&](const std::string& bytes) {
    auto event = std::make_shared<kudos::v1::KudosEvent>();
    if (event->ParseFromString(bytes) && event->has_kudos_sent()) events.push_back(std::move(event));
  });
  return events;
}

// The invitations of an XREAD reply's `stream`, and the id of its last entry.
std::vector<SharedInvitation> ParseInvitations(const common::redis::Reply& reply,
                                               const std::string& name, std::string* last_id) {
  std::vector<SharedInvitation> invitations;
  VisitStreamField(reply, name, "invitation", last_id, [&](const std::string& bytes) {
    auto invitation = std::make_shared<feedback::v1::Invitation>();
    if (invitation->ParseFromString(bytes) && !invitation->person_id().empty()) {
      invitations.push_back(std::move(invitation));
    }
  });
  return invitations;
}

// The id of the newest entry of `stream` ("0-0" when empty).
absl::StatusOr<std::string> LatestId(common::redis::Connection& connection,
                                     const std::string& stream) {
  absl::StatusOr<common::redis::Reply> latest =
      connection.Run({"XREVRANGE", stream, "+", "-", "COUNT", "1"});
  if (!latest.ok()) return latest.status();
  if (!latest->elements.empty() && !latest->elements[0].elements.empty()) {
    return latest->elements[0].elements[0].str;
  }
  return std::string("0-0");
}

}  // namespace

std::string InvitationStream(const std::string& org) {
  return "feedback:{" + org + "}:invitations";
}

FeedHub::Subscription::~Subscription() { hub_->Unsubscribe(feed_, sink_); }

absl::StatusOr<std::vector<SharedEvent>> FeedHub::Watcher::Next(
    std::chrono::milliseconds timeout) {
  return queue_->Next(timeout);
}

absl::StatusOr<std::unique_ptr<FeedHub::Watcher>> FeedHub::Watch(const std::string& org) {
  auto queue = std::make_shared<Watcher::Queue>(options_.max_queued_per_watcher);
  absl::StatusOr<std::unique_ptr<Subscription>> subscription = Subscribe(org, queue);
  if (!subscription.ok()) return subscription.status();
  std::unique_ptr<Watcher> watcher(new Watcher());
  watcher->queue_ = std::move(queue);
  watcher->subscription_ = *std::move(subscription);
  return watcher;
}

FeedHub::FeedHub(FeedHubOptions options) : options_(std::move(options)) {}

FeedHub::~FeedHub() {
  Shutdown();
  // Readers notice within one XREAD BLOCK; join them all.
  for (;;) {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(finished_);
      for (auto& [org, feed] : feeds_) {
        if (feed->thread.joinable()) threads.push_back(std::move(feed->thread));
      }
    }
    if (threads.empty()) break;
    for (std::thread& thread : threads) {
      if (thread.joinable()) thread.join();
    }
  }
}

int FeedHub::watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watchers_;
}

int FeedHub::orgs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(feeds_.size());
}

absl::StatusOr<std::unique_ptr<FeedHub::Subscription>> FeedHub::Subscribe(
    const std::string& org, std::shared_ptr<FeedSink> sink, InvitationAudience invitations) {
  JoinFinished();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return absl::UnavailableError("server shutting down; reconnect");
  if (watchers_ >= options_.max_watchers) {
    return Exhausted("too many live feed watchers", options_.max_watchers,
                     options_.retry_after_ms);
  }
  std::shared_ptr<OrgFeed>& slot = feeds_[org];
  if (slot == nullptr) {
    if (static_cast<int>(feeds_.size()) > options_.max_orgs) {
      feeds_.erase(org);
      return Exhausted("too many orgs with live feed watchers", options_.max_orgs,
                       options_.retry_after_ms);
    }
    slot = std::make_shared<OrgFeed>(org);
    slot->thread = std::thread([this, feed = slot] { Run(feed); });
  }
  std::shared_ptr<OrgFeed> feed = slot;
  const FeedSink* raw = sink.get();
  {
    std::lock_guard<std::mutex> feed_lock(feed->mu);
    feed->sinks.push_back({std::move(sink), std::move(invitations)});
  }
  ++watchers_;
  KUDOS_CHECK(watchers_ <= options_.max_watchers, "watchers stay within the replica's cap");
  std::unique_ptr<Subscription> subscription(new Subscription(this, feed, raw));
  // Wait until the reader has pinned its position (or failed).
  feed->started.wait_for(lock, options_.start_timeout,
                         [&] { return feed->state != OrgFeed::State::kStarting; });
  absl::Status failed;
  if (feed->state == OrgFeed::State::kStarting) {
    failed = absl::UnavailableError("the feed reader did not start in time; retry");
  } else if (feed->state == OrgFeed::State::kEnded) {
    failed = feed->start_status.ok() ? absl::UnavailableError("the feed reader stopped; retry")
                                     : feed->start_status;
  }
  lock.unlock();
  if (!failed.ok()) return failed;  // `subscription` unsubscribes as it goes
  return subscription;
}

void FeedHub::Unsubscribe(const std::shared_ptr<OrgFeed>& feed, const FeedSink* sink) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> feed_lock(feed->mu);
    auto& list = feed->sinks;
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const OrgFeed::Subscriber& s) { return s.sink.get() == sink; }),
               list.end());
  }
  --watchers_;
  KUDOS_CHECK(watchers_ >= 0, "every unsubscribe matches a subscribe");
}

void FeedHub::Shutdown() {
  std::vector<std::shared_ptr<FeedSink>> sinks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [org, feed] : feeds_) {
      std::lock_guard<std::mutex> feed_lock(feed->mu);
      for (const auto& subscriber : feed->sinks) sinks.push_back(subscriber.sink);
    }
  }
  // Outside the locks: a sink may finish its stream inline.
  for (const auto& sink : sinks) sink->End(absl::UnavailableError("server shutting down; reconnect"));
}

void FeedHub::JoinFinished() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(finished_);
  }
  for (std::thread& thread : threads) {
    if (thread.joinable()) thread.join();
  }
}

bool FeedHub::RetireIfIdle(const std::shared_ptr<OrgFeed>& feed) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> feed_lock(feed->mu);
    if (!feed->sinks.empty() && !stopping_) return false;
  }
  RetireLocked(feed);
  return true;
}

void FeedHub::RetireLocked(const std::shared_ptr<OrgFeed>& feed) {
  feed->state = OrgFeed::State::kEnded;
  feed->started.notify_all();
  auto it = feeds_.find(feed->org);
  if (it != feeds_.end() && it->second == feed) feeds_.erase(it);
  // Joined by the next Watch or the destructor (a thread cannot join itself).
  if (feed->thread.joinable()) finished_.push_back(std::move(feed->thread));
}

void FeedHub::EndFeed(const std::shared_ptr<OrgFeed>& feed, const absl::Status& why) {
  common::log::Warning(absl::StrCat("feed reader of org ", feed->org, " stopped: ", why.message()));
  std::vector<OrgFeed::Subscriber> sinks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    feed->start_status = why;
    {
      std::lock_guard<std::mutex> feed_lock(feed->mu);
      sinks.swap(feed->sinks);  // their subscriptions still unsubscribe (a no-op)
    }
    // In the same critical section, so no new subscriber joins an ended feed.
    RetireLocked(feed);
  }
  for (const auto& subscriber : sinks) subscriber.sink->End(why);
}

// The node to read an org's streams from: on a cluster, the one serving the
// org's slot as the pool's slot map says now (credentials kept).
common::redis::Endpoint FeedHub::ReaderEndpoint(const std::string& stream) const {
  if (options_.pool == nullptr) return options_.redis;
  return WithAddress(options_.pool->NodeForSlot(common::redis::KeySlot(stream)));
}

common::redis::Endpoint FeedHub::WithAddress(absl::string_view address) const {
  absl::StatusOr<common::redis::Endpoint> node = common::redis::ParseEndpoint(address);
  if (!node.ok()) return options_.redis;
  node->credentials = options_.redis.credentials;
  return *node;
}

void FeedHub::Run(std::shared_ptr<OrgFeed> feed) {
  const std::chrono::milliseconds io_timeout = options_.block + std::chrono::milliseconds(2000);
  common::redis::Endpoint reader = ReaderEndpoint(feed->stream);
  std::optional<common::redis::Connection> connection;
  connection.emplace(reader, io_timeout);
  // Pin the position before the first read: everything appended after a
  // watcher is told it is subscribed comes after this id.
  absl::StatusOr<std::string> latest = LatestId(*connection, feed->stream);
  absl::StatusOr<std::string> latest_invitation =
      latest.ok() ? LatestId(*connection, feed->invitations) : latest;
  if (!latest_invitation.ok()) {
    EndFeed(feed, absl::UnavailableError(absl::StrCat("the feed cannot be read: ",
                                                      latest_invitation.status().message())));
    return;
  }
  std::string last_id = *latest;
  std::string last_invitation_id = *latest_invitation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    feed->state = OrgFeed::State::kRunning;
    feed->started.notify_all();
  }
  const std::string block_ms = std::to_string(options_.block.count());
  // Bounded: a slot moves rarely; past this many moves without a read in
  // between, the feed ends and its watchers re-subscribe.
  constexpr int kMovesInARowMax = 16;
  int moves_in_a_row = 0;
  int unavailable_in_a_row = 0;
  while (!RetireIfIdle(feed)) {
    // Both streams carry {org}: one slot, one blocking read.
    absl::StatusOr<common::redis::Reply> reply =
        connection->Run({"XREAD", "COUNT", "100", "BLOCK", block_ms, "STREAMS", feed->stream,
                        feed->invitations, last_id, last_invitation_id});
    const common::redis::Redirect redirect = common::redis::RedirectOf(reply, reader.host);
    if (!reply.ok() && (reply.status().code() == absl::StatusCode::kUnavailable ||
                        redirect.kind == common::redis::Redirect::Kind::kAsk)) {
      // Redis is away, or the slot is half-migrated (ASK): back off, the
      // position is kept. Now and then ask the pool where the org's slot is
      // (after a failover the old node may never answer again).
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (options_.pool != nullptr && ++unavailable_in_a_row % 10 == 0) {
        reader = ReaderEndpoint(feed->stream);
        connection.emplace(reader, io_timeout);
      }
      continue;
    }
    if (redirect.kind == common::redis::Redirect::Kind::kMoved && options_.pool != nullptr &&
        moves_in_a_row < kMovesInARowMax) {
      // The org's slot moved (a reshard, a failover): read from the node the
      // reply names, position kept.
      ++moves_in_a_row;
      reader = WithAddress(redirect.address);
      connection.emplace(reader, io_timeout);
      continue;
    }
    if (!reply.ok()) {
      EndFeed(feed, reply.status());  // this org only
      return;
    }
    moves_in_a_row = 0;
    unavailable_in_a_row = 0;
    if (reply->is_nil()) continue;
    std::vector<SharedEvent> events = ParseEntries(*reply, feed->stream, &last_id);
    std::vector<SharedInvitation> invitations =
        ParseInvitations(*reply, feed->invitations, &last_invitation_id);
    if (events.empty() && invitations.empty()) continue;
    std::vector<OrgFeed::Subscriber> sinks;
    {
      std::lock_guard<std::mutex> feed_lock(feed->mu);
      sinks = feed->sinks;
    }
    // Outside the locks: a sink may write (or finish) its stream inline.
    for (const auto& subscriber : sinks) {
      if (!events.empty()) subscriber.sink->Deliver(events);
      if (invitations.empty()) continue;
      std::vector<SharedInvitation> seen;
      for (const SharedInvitation& invitation : invitations) {
        if (subscriber.audience.Sees(*invitation)) seen.push_back(invitation);
      }
      if (!seen.empty()) subscriber.sink->DeliverInvitations(seen);
    }
  }
}

}  // namespace kudos
