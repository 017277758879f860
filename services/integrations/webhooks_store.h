// Redis access of the webhooks area: subscriptions, deliveries, their queue
// and log, under `integrations:{org}:wh:` (scripts/webhooks_lib.lua describes
// the keys). Every write is one script in the org's slot, and every key a
// script touches is passed in KEYS (named by the functions below), so a slot
// migration routes the whole script by its real keys.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/webhooks.pb.h"
#include "services/integrations/webhooks_events.h"

namespace integrations::webhooks {

struct StoreLimits {
  // Subscriptions per org.
  int max_subscriptions = 50;
  // Pending deliveries per subscription; past it a new one is logged dead.
  int max_pending = 1000;
  // Finished deliveries kept in a subscription's log.
  int log_size = 200;
  // Keys one script call may declare (every subscription's three, each
  // delivery it touches): past it the call is refused, RESOURCE_EXHAUSTED.
  int max_script_keys = 20000;
};

// The most keys a call may need with these limits and stream batches of
// `read_batch` entries (webhooks_module raises max_script_keys to it, so
// only data past the configured limits meets the bound): the fixed ones,
// every subscription's three, and an enqueue's subscriptions x events plus
// the log tails its refusals trim (or a delete's queue and log).
int ScriptKeysNeeded(const StoreLimits& limits, int read_batch);

// The keys of an org's webhooks; every key name is built here only.
std::string SubscriptionsKey(absl::string_view org);            // SET of ids
std::string GroupStreamsKey(absl::string_view org);             // SET of streams with the group
std::string DueKey(absl::string_view org);                      // ZSET id -> due ms
std::string SubscriptionKey(absl::string_view org, absl::string_view id);  // HASH
std::string QueueKey(absl::string_view org, absl::string_view id);         // LIST pending
std::string LogKey(absl::string_view org, absl::string_view id);           // LIST finished
std::string DeliveryKey(absl::string_view org, absl::string_view delivery_id);  // HASH

// A subscription whose head delivery is due, with that head as read then
// (a hint for Claim: the key it declares).
struct DueSubscription {
  std::string id;
  std::string head;
};

// Per org: the streams carrying the group `webhooks` (empty: no
// subscription) and its subscriptions (a hint for Enqueue).
struct OrgWebhooks {
  std::vector<std::string> streams;
  std::vector<std::string> subscriptions;
};

// A delivery taken for one attempt (webhooks_claim.lua).
struct Claimed {
  std::string delivery_id;
  std::string event_id;
  std::string event_type;
  std::string body;
  std::string url;
  std::string secret;
  int64_t attempts = 0;
  // The other deliveries Finish touches (the next head, the log's tail it
  // trims), as they were at the claim: Finish's hint.
  std::vector<std::string> finish_touches;
};

struct Outcome {
  bool ok = false;
  int http_status = 0;
  std::string error;
};

class WebhookStore {
 public:
  WebhookStore(common::redis::Pool& pool, StoreLimits limits);

  const StoreLimits& limits() const { return limits_; }
  common::redis::Pool& pool() { return pool_; }
  static std::string Prefix(absl::string_view org);

  // op "create" or "update"; `fields` are the hash fields to write (url,
  // types, format, description, secret, paused).
  absl::StatusOr<v1::WebhookSubscription> PutSubscription(
      absl::string_view org, absl::string_view op, absl::string_view id,
      const std::vector<std::pair<std::string, std::string>>& fields, absl::Time now);
  absl::StatusOr<v1::WebhookSubscription> GetSubscription(absl::string_view org,
                                                          absl::string_view id);
  absl::StatusOr<std::vector<v1::WebhookSubscription>> ListSubscriptions(absl::string_view org);
  absl::Status DeleteSubscription(absl::string_view org, absl::string_view id);
  absl::Status RotateSecret(absl::string_view org, absl::string_view id, absl::string_view secret);
  // Pending (oldest first) then finished (newest first), from `offset`;
  // the next offset, or -1 at the end.
  absl::StatusOr<std::pair<std::vector<v1::Delivery>, int64_t>> ListDeliveries(
      absl::string_view org, absl::string_view id, int64_t offset, int page_size);
  absl::StatusOr<v1::Delivery> Redeliver(absl::string_view org, absl::string_view id,
                                         absl::string_view delivery_id, absl::Time now);

  // For the dispatcher.
  // The orgs to look at: the platform's registry (issue 14 replaces it with
  // a registry per slot; this is the one place that reads it).
  absl::StatusOr<std::vector<std::string>> ReadOrgIds();
  // Of each org, the streams that carry the group `webhooks` (empty: no
  // subscription) and its subscriptions, read in pipelines of a bounded size.
  absl::StatusOr<std::vector<OrgWebhooks>> GroupStreams(const std::vector<std::string>& orgs);
  // Records the events of `entry_ids` (one stream) and acknowledges them;
  // returns {deliveries queued, deliveries refused at the pending cap}.
  // `subscriptions`: the org's, as last read (GroupStreams); with them the
  // call is one round trip unless they changed since.
  absl::StatusOr<std::pair<int64_t, int64_t>> Enqueue(
      absl::string_view org, absl::string_view stream, const std::vector<std::string>& entry_ids,
      const std::vector<OutboundEvent>& events, absl::Time now,
      const std::vector<std::string>& subscriptions = {});
  // Subscriptions whose head delivery is due at `now`, at most `limit`,
  // with their heads.
  absl::StatusOr<std::vector<DueSubscription>> DueSubscriptions(absl::string_view org,
                                                                absl::Time now, int limit);
  // `head`: the queue's head as last read (DueSubscriptions); with it the
  // call is one round trip unless it changed since.
  absl::StatusOr<std::optional<Claimed>> Claim(absl::string_view org, absl::string_view id,
                                               absl::string_view owner, absl::Time now,
                                               absl::Duration lease, absl::string_view head = {});
  // False when the lease was no longer `owner`'s (nothing changed).
  // `touches`: Claimed::finish_touches of the claim (one round trip unless
  // they changed since).
  absl::StatusOr<bool> Finish(absl::string_view org, absl::string_view id,
                              absl::string_view delivery_id, absl::string_view owner,
                              absl::Time now, const Outcome& outcome, absl::Time retry_at,
                              absl::Duration retry_window, int pause_after_failures,
                              const std::vector<std::string>& touches = {});

  // The subscriptions and deliveries a script call declares the keys of.
  struct KeyPlan {
    std::vector<std::string> subscriptions;
    std::vector<std::string> deliveries;
    // Adds what is not there yet; the number added.
    size_t AddSubscriptions(const std::vector<std::string>& ids);
    size_t AddDeliveries(const std::vector<std::string>& ids);
  };
  // A webhooks script's KEYS and its ARGV header (scripts/webhooks_lib.lua).
  static std::vector<std::string> PlanKeys(absl::string_view org, const KeyPlan& plan);
  static std::vector<std::string> PlanArgs(const KeyPlan& plan,
                                           const std::vector<std::string>& args);

 private:
  // Runs `script` with the keys of `plan`; while it answers NEED_KEYS (the
  // data named other subscriptions or deliveries), declares them too and
  // runs it again, at most kMaxKeyRounds times. `also` may add to the plan
  // for the subscriptions a NEED_KEYS named (e.g. their deliveries).
  absl::StatusOr<common::redis::Reply> EvalPlanned(
      const common::redis::Script& script, absl::string_view org, KeyPlan plan,
      const std::vector<std::string>& args,
      const std::function<void(const std::vector<std::string>& new_subscriptions, KeyPlan&)>&
          also = nullptr);

  common::redis::Pool& pool_;
  // The dispatcher's org discovery (ReadOrgIds): one registry, so after its
  // first full read it reads only the slots known or hinted to hold orgs.
  common::redis::OrgRegistry org_registry_;
  StoreLimits limits_;
  common::redis::Script put_subscription_;
  common::redis::Script delete_subscription_;
  common::redis::Script rotate_secret_;
  common::redis::Script enqueue_;
  common::redis::Script claim_;
  common::redis::Script finish_;
  common::redis::Script redeliver_;
};

}  // namespace integrations::webhooks
