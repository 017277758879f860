// Redis access of the webhooks area: subscriptions, deliveries, their queue
// and log, under `integrations:{org}:wh:` (scripts/webhooks_*.lua describe
// the keys). Every write is one script in the org's slot.
#pragma once

#include <cstdint>
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
  // subscription), read in pipelines of a bounded size.
  absl::StatusOr<std::vector<std::vector<std::string>>> GroupStreams(
      const std::vector<std::string>& orgs);
  // Records the events of `entry_ids` (one stream) and acknowledges them;
  // returns {deliveries queued, deliveries refused at the pending cap}.
  absl::StatusOr<std::pair<int64_t, int64_t>> Enqueue(absl::string_view org,
                                                      absl::string_view stream,
                                                      const std::vector<std::string>& entry_ids,
                                                      const std::vector<OutboundEvent>& events,
                                                      absl::Time now);
  // Subscriptions whose head delivery is due at `now`, at most `limit`.
  absl::StatusOr<std::vector<std::string>> DueSubscriptions(absl::string_view org, absl::Time now,
                                                            int limit);
  absl::StatusOr<std::optional<Claimed>> Claim(absl::string_view org, absl::string_view id,
                                               absl::string_view owner, absl::Time now,
                                               absl::Duration lease);
  // False when the lease was no longer `owner`'s (nothing changed).
  absl::StatusOr<bool> Finish(absl::string_view org, absl::string_view id,
                              absl::string_view delivery_id, absl::string_view owner,
                              absl::Time now, const Outcome& outcome, absl::Time retry_at,
                              absl::Duration retry_window, int pause_after_failures);

 private:
  std::vector<std::string> ScriptKeys(absl::string_view org) const;

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
