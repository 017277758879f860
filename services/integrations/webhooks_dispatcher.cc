#include "services/integrations/webhooks_dispatcher.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "services/integrations/webhooks_signature.h"

namespace integrations::webhooks {
namespace {

using common::redis::Reply;

constexpr char kGroup[] = "webhooks";

std::string NewOwner(absl::BitGen& random) {
  char host[64] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid(), "-", absl::Hex(absl::Uniform<uint32_t>(random)));
}

std::string BusyKey(absl::string_view org, absl::string_view subscription) {
  return absl::StrCat(org, "/", subscription);
}

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

Dispatcher::Dispatcher(WebhookStore& store, DispatcherOptions options,
                       std::function<absl::Time()> now)
    : store_(store), options_(options), now_(std::move(now)), owner_(NewOwner(random_)) {
  KUDOS_CHECK(options_.max_in_flight > 0 && options_.max_in_flight_per_org > 0 &&
                  options_.read_batch > 0 &&
                  options_.max_starts_per_org_per_round > 0 && options_.pause_after_failures > 0,
              "every dispatcher bound is positive");
}

absl::Duration Dispatcher::Backoff(int64_t attempts, absl::Duration base, absl::Duration max,
                                   double unit) {
  absl::Duration ceiling = base;
  for (int64_t i = 1; i < attempts && ceiling < max; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  absl::Duration delay = ceiling * std::clamp(unit, 0.0, 1.0);
  return std::max(delay, absl::Milliseconds(1));
}

void Dispatcher::Run(const absl::Notification& stop) {
  common::log::Info(absl::StrCat("webhooks: dispatcher ", owner_, " running"));
  while (!stop.HasBeenNotified()) RunOnce();
}

void Dispatcher::RunOnce() {
  absl::Time now = now_();
  if (now - orgs_read_at_ >= options_.org_refresh) RefreshOrgs(now);
  bool take_over = now - idle_taken_at_ >= options_.claim_idle / 2;
  for (const Org& org : orgs_) {
    if (take_over) TakeOverIdle(org, now);
    Ingest(org, now);
  }
  if (take_over) idle_taken_at_ = now;
  StartDue(now_());
  Complete(http_.Poll(ToChrono(options_.poll)));
}

void Dispatcher::RefreshOrgs(absl::Time now) {
  absl::StatusOr<std::vector<std::string>> ids = store_.ReadOrgIds();
  if (!ids.ok()) {
    common::log::Warning(absl::StrCat("webhooks: reading the orgs: ", ids.status().ToString()));
    return;
  }
  absl::StatusOr<std::vector<OrgWebhooks>> streams = store_.GroupStreams(*ids);
  if (!streams.ok()) {
    common::log::Warning(absl::StrCat("webhooks: reading the orgs' streams: ",
                                      streams.status().ToString()));
    return;
  }
  std::vector<Org> orgs;
  for (size_t i = 0; i < ids->size(); ++i) {
    OrgWebhooks& webhooks = (*streams)[i];
    if (webhooks.streams.empty()) continue;
    orgs.push_back({(*ids)[i], std::move(webhooks.streams), std::move(webhooks.subscriptions)});
  }
  orgs_ = std::move(orgs);
  orgs_read_at_ = now;
}

void Dispatcher::Ingest(const Org& org, absl::Time now) {
  common::redis::Command read = {"XREADGROUP", "GROUP", kGroup, owner_, "COUNT",
                                 absl::StrCat(options_.read_batch), "STREAMS"};
  for (const std::string& stream : org.streams) read.push_back(stream);
  for (size_t i = 0; i < org.streams.size(); ++i) read.push_back(">");
  absl::StatusOr<Reply> reply = store_.pool().Run(read);
  if (!reply.ok()) {
    // NOGROUP: a subscription change dropped a group since the last refresh.
    common::log::Warning(absl::StrCat("webhooks: org '", org.id, "': ", reply.status().ToString()));
    orgs_read_at_ = absl::InfinitePast();
    return;
  }
  for (const Reply& stream : reply->elements) {
    if (stream.elements.size() < 2) continue;
    EnqueueEntries(org, stream.elements[0].str, stream.elements[1], now);
  }
}

void Dispatcher::TakeOverIdle(const Org& org, absl::Time now) {
  for (const std::string& stream : org.streams) {
    absl::StatusOr<Reply> reply = store_.pool().Run(
        {"XAUTOCLAIM", stream, kGroup, owner_,
         absl::StrCat(absl::ToInt64Milliseconds(options_.claim_idle)), "0-0", "COUNT",
         absl::StrCat(options_.read_batch)});
    if (!reply.ok()) {
      common::log::Warning(absl::StrCat("webhooks: XAUTOCLAIM ", stream, ": ",
                                        reply.status().ToString()));
      continue;
    }
    if (reply->elements.size() >= 2) EnqueueEntries(org, stream, reply->elements[1], now);
    DropGoneConsumers(stream);
  }
}

// Each process reads under a name of its own, so a restarted or removed
// replica leaves a consumer behind; once it has nothing pending and has
// been idle well past the takeover time it is deleted (the group stays
// bounded by the replicas alive). A live one deleted by mistake is simply
// created again by its next read, with nothing pending to lose.
void Dispatcher::DropGoneConsumers(const std::string& stream) {
  absl::StatusOr<Reply> consumers = store_.pool().Run({"XINFO", "CONSUMERS", stream, kGroup});
  if (!consumers.ok()) return;
  const int64_t gone_after_ms = 4 * absl::ToInt64Milliseconds(options_.claim_idle);
  for (const Reply& consumer : consumers->elements) {
    std::string name;
    int64_t pending = -1, idle_ms = 0;
    for (size_t i = 0; i + 1 < consumer.elements.size(); i += 2) {
      const std::string& field = consumer.elements[i].str;
      const Reply& value = consumer.elements[i + 1];
      if (field == "name") name = value.str;
      if (field == "pending") pending = value.integer;
      if (field == "idle") idle_ms = value.integer;
    }
    if (name.empty() || name == owner_ || pending != 0 || idle_ms < gone_after_ms) continue;
    absl::StatusOr<Reply> dropped = store_.pool().Run({"XGROUP", "DELCONSUMER", stream, kGroup, name});
    if (!dropped.ok()) {
      common::log::Warning(absl::StrCat("webhooks: XGROUP DELCONSUMER ", stream, " ", name, ": ",
                                        dropped.status().ToString()));
    }
  }
}

void Dispatcher::EnqueueEntries(const Org& org_webhooks, const std::string& stream,
                                const Reply& entries, absl::Time now) {
  const std::string& org = org_webhooks.id;
  Source source;
  if (!SourceOfStream(org, stream, &source)) return;
  std::vector<std::string> entry_ids;
  std::vector<OutboundEvent> events;
  for (const Reply& entry : entries.elements) {
    if (entry.elements.size() < 2) continue;
    StreamEntry parsed;
    parsed.id = entry.elements[0].str;
    const Reply& fields = entry.elements[1];
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      parsed.fields.emplace_back(fields.elements[i].str, fields.elements[i + 1].str);
    }
    entry_ids.push_back(parsed.id);
    // An entry no webhook can read is acknowledged and logged, never retried forever.
    absl::Status translated = Translate(source, org, parsed, events);
    if (!translated.ok()) common::log::Error(translated.ToString());
  }
  if (entry_ids.empty()) return;
  absl::StatusOr<std::pair<int64_t, int64_t>> queued =
      store_.Enqueue(org, stream, entry_ids, events, now, org_webhooks.subscriptions);
  if (!queued.ok()) {
    // Not acknowledged: the entries stay pending and are taken over later.
    common::log::Warning(absl::StrCat("webhooks: org '", org, "': enqueue: ",
                                      queued.status().ToString()));
  } else if (queued->second > 0) {
    common::log::Warning(absl::StrCat("webhooks: org '", org, "': ", queued->second,
                                      " deliveries not queued (a subscription's pending cap)"));
  }
}

void Dispatcher::StartDue(absl::Time now) {
  if (orgs_.empty()) return;
  // Round-robin over orgs, so the first org's backlog never starves the rest.
  size_t first = next_org_++ % orgs_.size();
  for (size_t k = 0; k < orgs_.size(); ++k) {
    int free = options_.max_in_flight - static_cast<int>(in_flight_.size());
    if (free <= 0) return;
    const std::string& org = orgs_[(first + k) % orgs_.size()].id;
    auto busy_in_org = org_in_flight_.find(org);
    int org_free = options_.max_in_flight_per_org -
                   (busy_in_org == org_in_flight_.end() ? 0 : busy_in_org->second);
    int limit = std::min({free, org_free, options_.max_starts_per_org_per_round});
    if (limit <= 0) continue;
    // A few more than may start: some are in flight from here already.
    absl::StatusOr<std::vector<DueSubscription>> due =
        store_.DueSubscriptions(org, now, limit + static_cast<int>(busy_.size()));
    if (!due.ok()) {
      common::log::Warning(absl::StrCat("webhooks: org '", org, "': ", due.status().ToString()));
      continue;
    }
    int started = 0;
    for (const DueSubscription& subscription : *due) {
      if (started >= limit) break;
      if (busy_.contains(BusyKey(org, subscription.id))) continue;
      size_t before = in_flight_.size();
      StartOne(org, subscription, now);
      if (in_flight_.size() > before) ++started;
    }
  }
}

void Dispatcher::StartOne(const std::string& org, const DueSubscription& due, absl::Time now) {
  const std::string& subscription = due.id;
  absl::StatusOr<std::optional<Claimed>> claimed = store_.Claim(
      org, subscription, owner_, now, options_.request_timeout + options_.lease_margin, due.head);
  if (!claimed.ok()) {
    common::log::Warning(absl::StrCat("webhooks: claim: ", claimed.status().ToString()));
    return;
  }
  if (!claimed->has_value()) return;
  const Claimed& delivery = **claimed;
  InFlight flight{org, subscription, delivery.delivery_id, delivery.attempts,
                  delivery.finish_touches};
  int64_t timestamp_s = absl::ToUnixSeconds(now);
  absl::StatusOr<std::string> signature =
      Sign(delivery.secret, delivery.event_id, timestamp_s, delivery.body);
  if (!signature.ok()) {
    Record(flight, {false, 0, std::string(signature.status().message())});
    return;
  }
  HttpPost post;
  post.url = delivery.url;
  post.body = delivery.body;
  post.headers = {"content-type: application/json",
                  absl::StrCat("webhook-id: ", delivery.event_id),
                  absl::StrCat("webhook-timestamp: ", timestamp_s),
                  absl::StrCat("webhook-signature: ", *signature),
                  // curl would otherwise wait for "100 Continue" on bodies over 1 KiB.
                  "expect:"};
  post.timeout = ToChrono(options_.request_timeout);
  post.allow_http = options_.allow_insecure_http;
  post.allow_private_addresses = options_.allow_private_addresses;
  post.tag = next_tag_++;
  if (absl::Status started = http_.Start(std::move(post)); !started.ok()) {
    Record(flight, {false, 0, std::string(started.message())});
    return;
  }
  busy_.insert(BusyKey(org, subscription));
  ++org_in_flight_[org];
  in_flight_.emplace(next_tag_ - 1, std::move(flight));
}

void Dispatcher::Complete(const std::vector<HttpResult>& results) {
  for (const HttpResult& result : results) {
    auto it = in_flight_.find(result.tag);
    KUDOS_CHECK(it != in_flight_.end(), "every finished request was started by this dispatcher");
    InFlight flight = std::move(it->second);
    in_flight_.erase(it);
    busy_.erase(BusyKey(flight.org, flight.subscription));
    auto count = org_in_flight_.find(flight.org);
    KUDOS_CHECK(count != org_in_flight_.end() && count->second > 0,
                "an org's in-flight count covers each of its requests");
    if (--count->second == 0) org_in_flight_.erase(count);
    Record(flight, {result.ok, result.http_status, result.error});
  }
}

void Dispatcher::Record(const InFlight& flight, const Outcome& outcome) {
  absl::Time now = now_();
  absl::Time retry_at =
      now + Backoff(flight.attempts, options_.backoff_base, options_.backoff_max,
                    absl::Uniform<double>(absl::IntervalClosed, random_, 0.0, 1.0));
  absl::StatusOr<bool> recorded =
      store_.Finish(flight.org, flight.subscription, flight.delivery_id, owner_, now, outcome,
                    retry_at, options_.retry_window, options_.pause_after_failures,
                    flight.finish_touches);
  if (!recorded.ok()) {
    // The lease lapses and the delivery is attempted again: at least once.
    common::log::Warning(absl::StrCat("webhooks: recording ", flight.delivery_id, ": ",
                                      recorded.status().ToString()));
  } else if (!*recorded) {
    common::log::Warning(absl::StrCat("webhooks: ", flight.delivery_id,
                                      ": lease lapsed to another replica; outcome not recorded"));
  }
}

}  // namespace integrations::webhooks
