// Issue 17, area "webhooks": registers this area with the host (modules.h):
// the WebhookService and the dispatcher worker, with their flags.
#include <algorithm>
#include <memory>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/strings/str_cat.h"
#include "common/config/env.h"
#include "services/integrations/modules.h"
#include "services/integrations/webhooks_dispatcher.h"
#include "services/integrations/webhooks_service.h"
#include "services/integrations/webhooks_store.h"

using common::config::IntEnvOr;

ABSL_FLAG(int, webhook_max_subscriptions,
          static_cast<int>(IntEnvOr("WEBHOOK_MAX_SUBSCRIPTIONS", 50, 1)),
          "webhook subscriptions per org; past it CreateSubscription is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, webhook_max_pending, static_cast<int>(IntEnvOr("WEBHOOK_MAX_PENDING", 1000, 1)),
          "pending deliveries per subscription; past it a new delivery is logged dead "
          "(\"not queued\") and can be redelivered later");
ABSL_FLAG(int, webhook_log_size, static_cast<int>(IntEnvOr("WEBHOOK_LOG_SIZE", 200, 1)),
          "finished deliveries kept in each subscription's log (ListDeliveries)");
ABSL_FLAG(int, webhook_request_timeout_ms,
          static_cast<int>(IntEnvOr("WEBHOOK_REQUEST_TIMEOUT_MS", 10000, 1)),
          "timeout of one webhook POST");
ABSL_FLAG(int, webhook_lease_margin_ms,
          static_cast<int>(IntEnvOr("WEBHOOK_LEASE_MARGIN_MS", 5000, 1)),
          "a delivery's lease is the request timeout plus this; then another replica may retry it");
ABSL_FLAG(int64_t, webhook_retry_window_ms,
          IntEnvOr("WEBHOOK_RETRY_WINDOW_MS", 24LL * 3600 * 1000, 1),
          "failed deliveries are retried for this long after being queued, then dead-lettered");
ABSL_FLAG(int, webhook_backoff_base_ms,
          static_cast<int>(IntEnvOr("WEBHOOK_BACKOFF_BASE_MS", 1000, 1)),
          "first retry's backoff ceiling; doubles per attempt (full jitter)");
ABSL_FLAG(int, webhook_backoff_max_ms,
          static_cast<int>(IntEnvOr("WEBHOOK_BACKOFF_MAX_MS", 3600 * 1000, 1)),
          "largest backoff ceiling between two attempts");
ABSL_FLAG(int, webhook_pause_after_failures,
          static_cast<int>(IntEnvOr("WEBHOOK_PAUSE_AFTER_FAILURES", 20, 1)),
          "consecutive failed attempts after which a subscription pauses itself");
ABSL_FLAG(int, webhook_max_in_flight, static_cast<int>(IntEnvOr("WEBHOOK_MAX_IN_FLIGHT", 64, 1)),
          "webhook requests in flight per replica (one per subscription: ordered)");
ABSL_FLAG(int, webhook_max_in_flight_per_org,
          static_cast<int>(IntEnvOr("WEBHOOK_MAX_IN_FLIGHT_PER_ORG", 16, 1)),
          "webhook requests in flight per replica for one org, so one org's slow receivers "
          "never hold every slot");
ABSL_FLAG(int, webhook_claim_idle_ms,
          static_cast<int>(IntEnvOr("WEBHOOK_CLAIM_IDLE_MS", 30000, 1)),
          "stream entries read but not acknowledged by a dead replica are taken over after this");
ABSL_FLAG(int, webhook_poll_ms, static_cast<int>(IntEnvOr("WEBHOOK_POLL_MS", 100, 1)),
          "the dispatcher's longest wait between rounds");
// Unset: follows --allow_insecure_http (tests' loopback receivers); in production off.
ABSL_FLAG(std::optional<bool>, webhook_allow_private_addresses, std::nullopt,
          "development/operator: =true lets webhooks reach loopback, private, link-local "
          "addresses (unset: on only with --allow_insecure_http)");

namespace integrations {
namespace {

// Explicit flag wins; otherwise a development (insecure http) server allows them.
bool AllowPrivateAddresses(const Host& host) {
  std::optional<bool> allow = absl::GetFlag(FLAGS_webhook_allow_private_addresses);
  return allow.value_or(host.options().allow_insecure_http);
}

}  // namespace

absl::Status AddWebhooks(Host& host) {
  webhooks::StoreLimits limits;
  limits.max_subscriptions = absl::GetFlag(FLAGS_webhook_max_subscriptions);
  limits.max_pending = absl::GetFlag(FLAGS_webhook_max_pending);
  limits.log_size = absl::GetFlag(FLAGS_webhook_log_size);
  if (limits.max_subscriptions < 1 || limits.max_pending < 1 || limits.log_size < 1) {
    return absl::InvalidArgumentError(
        "--webhook_max_subscriptions, --webhook_max_pending, --webhook_log_size: at least 1");
  }
  limits.max_script_keys = std::max(
      limits.max_script_keys,
      webhooks::ScriptKeysNeeded(limits, webhooks::DispatcherOptions{}.read_batch));
  auto store = std::make_shared<webhooks::WebhookStore>(host.pool(), limits);
  host.Keep(store);

  webhooks::ServiceLimits service_limits;
  service_limits.allow_insecure_http = host.options().allow_insecure_http;
  service_limits.allow_private_addresses = AllowPrivateAddresses(host);
  host.AddService(
      std::make_unique<webhooks::WebhookServiceImpl>(host.guard(), *store, service_limits));

  webhooks::DispatcherOptions options;
  options.request_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_request_timeout_ms));
  options.lease_margin = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_lease_margin_ms));
  options.retry_window = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_retry_window_ms));
  options.backoff_base = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_backoff_base_ms));
  options.backoff_max = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_backoff_max_ms));
  options.pause_after_failures = absl::GetFlag(FLAGS_webhook_pause_after_failures);
  options.max_in_flight = absl::GetFlag(FLAGS_webhook_max_in_flight);
  options.max_in_flight_per_org = absl::GetFlag(FLAGS_webhook_max_in_flight_per_org);
  options.claim_idle = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_claim_idle_ms));
  options.poll = absl::Milliseconds(absl::GetFlag(FLAGS_webhook_poll_ms));
  options.allow_insecure_http = host.options().allow_insecure_http;
  options.allow_private_addresses = service_limits.allow_private_addresses;
  if (options.pause_after_failures < 1 || options.max_in_flight < 1 ||
      options.max_in_flight_per_org < 1 ||
      options.request_timeout <= absl::ZeroDuration() || options.poll <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("webhook flags: every bound and duration is positive");
  }
  auto dispatcher = std::make_shared<webhooks::Dispatcher>(*store, options);
  host.Keep(dispatcher);
  host.AddWorker("webhooks", [dispatcher](const absl::Notification& stop) { dispatcher->Run(stop); });
  return absl::OkStatus();
}

}  // namespace integrations
