// The webhooks worker: reads the orgs' event streams through the consumer
// group `webhooks`, records one delivery per matching subscription (then
// acknowledges the entries, in the same script), and POSTs due deliveries
// through libcurl's multi interface on this one thread — many in flight, a
// timeout each, at most `max_in_flight` overall and one per subscription
// (its deliveries go out in order). A delivery is attempted by one replica
// at a time (a lease that expires); only the lease's owner records the
// outcome, so nothing is marked delivered twice.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/integrations/webhooks_http.h"
#include "services/integrations/webhooks_store.h"

namespace integrations::webhooks {

struct DispatcherOptions {
  absl::Duration request_timeout = absl::Seconds(10);
  // A lease lasts the request's timeout plus this, then another replica may
  // take the delivery (its holder died mid-request).
  absl::Duration lease_margin = absl::Seconds(5);
  // Failed deliveries are retried until this long after they were queued,
  // then dead-lettered.
  absl::Duration retry_window = absl::Hours(24);
  // Backoff before retry n: uniform in [0, min(max, base * 2^(n-1))] (full jitter).
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Hours(1);
  // Consecutive failed attempts after which a subscription pauses itself.
  int pause_after_failures = 20;
  // Requests in flight on this replica, all subscriptions together.
  int max_in_flight = 64;
  // Requests in flight on this replica for one org: one org's slow
  // receivers never hold every slot while other orgs wait.
  int max_in_flight_per_org = 16;
  // Deliveries started per org per round: one org's backlog cannot fill
  // every slot ahead of the others.
  int max_starts_per_org_per_round = 8;
  // The longest wait for network activity between rounds.
  absl::Duration poll = absl::Milliseconds(100);
  // How often the list of orgs with subscriptions is re-read.
  absl::Duration org_refresh = absl::Seconds(1);
  // Entries another consumer read but never acknowledged (it died) are
  // taken over after this idle time.
  absl::Duration claim_idle = absl::Seconds(30);
  // Stream entries read per stream and round.
  int read_batch = 100;
  bool allow_insecure_http = false;
  // Development: connect to loopback and private addresses too.
  bool allow_private_addresses = false;
};

class Dispatcher {
 public:
  // `now` is the clock for every decision (tests may inject one).
  Dispatcher(WebhookStore& store, DispatcherOptions options,
             std::function<absl::Time()> now = [] { return absl::Now(); });

  // Rounds until `stop` is notified.
  void Run(const absl::Notification& stop);
  // One round: orgs (when due), new entries, due deliveries, network.
  void RunOnce();

  const std::string& owner() const { return owner_; }
  size_t in_flight() const { return in_flight_.size(); }

  // Retry n's delay for a uniform `unit` in [0, 1].
  static absl::Duration Backoff(int64_t attempts, absl::Duration base, absl::Duration max,
                                double unit);

 private:
  struct Org {
    std::string id;
    std::vector<std::string> streams;
    // As last read: Enqueue's hint of the keys it touches.
    std::vector<std::string> subscriptions;
  };
  struct InFlight {
    std::string org;
    std::string subscription;
    std::string delivery_id;
    int64_t attempts = 0;
    // Claimed::finish_touches: Finish's hint of the keys it touches.
    std::vector<std::string> finish_touches;
  };

  void RefreshOrgs(absl::Time now);
  void Ingest(const Org& org, absl::Time now);
  void TakeOverIdle(const Org& org, absl::Time now);
  void DropGoneConsumers(const std::string& stream);
  void EnqueueEntries(const Org& org, const std::string& stream,
                      const common::redis::Reply& entries, absl::Time now);
  void StartDue(absl::Time now);
  void StartOne(const std::string& org, const DueSubscription& subscription, absl::Time now);
  void Complete(const std::vector<HttpResult>& results);
  void Record(const InFlight& flight, const Outcome& outcome);

  WebhookStore& store_;
  DispatcherOptions options_;
  std::function<absl::Time()> now_;
  // Before owner_: the owner's name draws from it.
  absl::BitGen random_;
  std::string owner_;
  HttpSender http_;
  std::vector<Org> orgs_;
  absl::Time orgs_read_at_ = absl::InfinitePast();
  absl::Time idle_taken_at_ = absl::InfinitePast();
  size_t next_org_ = 0;
  uint64_t next_tag_ = 1;
  absl::flat_hash_map<uint64_t, InFlight> in_flight_;
  // "org/subscription" with a request in flight from this replica.
  absl::flat_hash_set<std::string> busy_;
  // org -> requests in flight from this replica.
  absl::flat_hash_map<std::string, int> org_in_flight_;
};

}  // namespace integrations::webhooks
