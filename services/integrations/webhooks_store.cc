#include "services/integrations/webhooks_store.h"

#include <algorithm>
#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/redis/org_registry.h"
#include "kWebhooksClaimLua.h"
#include "kWebhooksDeleteSubscriptionLua.h"
#include "kWebhooksEnqueueLua.h"
#include "kWebhooksFinishLua.h"
#include "kWebhooksLibLua.h"
#include "kWebhooksPutSubscriptionLua.h"
#include "kWebhooksRedeliverLua.h"
#include "kWebhooksRotateSecretLua.h"

namespace integrations::webhooks {
namespace {

using common::redis::Reply;
using Hash = absl::flat_hash_map<std::string, std::string>;

common::redis::Script WithLib(std::string name, const char* body) {
  return common::redis::Script(std::move(name), absl::StrCat(kWebhooksLibLua, "\n", body), common::redis::ScriptKeys::kPrefixOnly);
}

Hash HashOf(const Reply& reply) {
  Hash hash;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    hash[reply.elements[i].str] = reply.elements[i + 1].str;
  }
  return hash;
}

int64_t IntOf(const Hash& hash, absl::string_view field) {
  auto it = hash.find(field);
  int64_t value = 0;
  if (it == hash.end() || !absl::SimpleAtoi(it->second, &value)) return 0;
  return value;
}

std::string StrOf(const Hash& hash, absl::string_view field) {
  auto it = hash.find(field);
  return it == hash.end() ? "" : it->second;
}

void SetMillis(google::protobuf::Timestamp* time, int64_t ms) {
  time->set_seconds(ms / 1000);
  time->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
}

v1::WebhookSubscription SubscriptionOf(absl::string_view id, const Hash& hash) {
  v1::WebhookSubscription sub;
  sub.set_subscription_id(std::string(id));
  sub.set_url(StrOf(hash, "url"));
  for (absl::string_view type : absl::StrSplit(StrOf(hash, "types"), ',', absl::SkipEmpty())) {
    sub.add_event_types(std::string(type));
  }
  sub.set_format(StrOf(hash, "format") == "slack" ? v1::WEBHOOK_FORMAT_SLACK
                                                   : v1::WEBHOOK_FORMAT_JSON);
  sub.set_paused(StrOf(hash, "paused") == "1");
  sub.set_paused_reason(StrOf(hash, "paused_reason"));
  sub.set_consecutive_failures(IntOf(hash, "failures"));
  SetMillis(sub.mutable_create_time(), IntOf(hash, "created_ms"));
  sub.set_description(StrOf(hash, "description"));
  // The secret never leaves through a read.
  return sub;
}

v1::DeliveryState StateOf(absl::string_view state) {
  if (state == "pending") return v1::DELIVERY_STATE_PENDING;
  if (state == "failed") return v1::DELIVERY_STATE_FAILED;
  if (state == "delivered") return v1::DELIVERY_STATE_DELIVERED;
  if (state == "dead") return v1::DELIVERY_STATE_DEAD;
  return v1::DELIVERY_STATE_UNSPECIFIED;
}

v1::Delivery DeliveryOf(absl::string_view id, const Hash& hash) {
  v1::Delivery delivery;
  delivery.set_delivery_id(std::string(id));
  delivery.set_event_id(StrOf(hash, "event"));
  delivery.set_event_type(StrOf(hash, "type"));
  delivery.set_state(StateOf(StrOf(hash, "state")));
  delivery.set_attempts(IntOf(hash, "attempts"));
  delivery.set_last_http_status(static_cast<int32_t>(IntOf(hash, "http")));
  delivery.set_last_error(StrOf(hash, "error"));
  SetMillis(delivery.mutable_create_time(), IntOf(hash, "queued_ms"));
  if (IntOf(hash, "last_ms") > 0) SetMillis(delivery.mutable_last_attempt_time(), IntOf(hash, "last_ms"));
  if (delivery.state() == v1::DELIVERY_STATE_PENDING || delivery.state() == v1::DELIVERY_STATE_FAILED) {
    SetMillis(delivery.mutable_next_attempt_time(), IntOf(hash, "next_ms"));
  }
  return delivery;
}

int64_t Ms(absl::Time time) { return absl::ToUnixMillis(time); }

}  // namespace

WebhookStore::WebhookStore(common::redis::Pool& pool, StoreLimits limits)
    : pool_(pool),
      org_registry_(pool),
      limits_(limits),
      put_subscription_(WithLib("webhooks_put_subscription", kWebhooksPutSubscriptionLua)),
      delete_subscription_(WithLib("webhooks_delete_subscription", kWebhooksDeleteSubscriptionLua)),
      rotate_secret_(WithLib("webhooks_rotate_secret", kWebhooksRotateSecretLua)),
      enqueue_(WithLib("webhooks_enqueue", kWebhooksEnqueueLua)),
      claim_(WithLib("webhooks_claim", kWebhooksClaimLua)),
      finish_(WithLib("webhooks_finish", kWebhooksFinishLua)),
      redeliver_(WithLib("webhooks_redeliver", kWebhooksRedeliverLua)) {
  KUDOS_CHECK(limits_.max_pending > 0 && limits_.log_size > 0 && limits_.max_subscriptions > 0,
              "every webhooks bound is positive");
}

std::string WebhookStore::Prefix(absl::string_view org) {
  return absl::StrCat("integrations:{", org, "}:wh:");
}

std::vector<std::string> WebhookStore::ScriptKeys(absl::string_view org) const {
  std::vector<std::string> keys = {Prefix(org)};
  for (int i = 0; i < kSourceCount; ++i) keys.push_back(StreamKey(static_cast<Source>(i), org));
  return keys;
}

absl::StatusOr<v1::WebhookSubscription> WebhookStore::PutSubscription(
    absl::string_view org, absl::string_view op, absl::string_view id,
    const std::vector<std::pair<std::string, std::string>>& fields, absl::Time now) {
  std::vector<std::string> args = {std::string(op), std::string(id), absl::StrCat(Ms(now)),
                                   absl::StrCat(limits_.max_subscriptions)};
  for (const auto& [field, value] : fields) {
    args.push_back(field);
    args.push_back(value);
  }
  absl::StatusOr<Reply> reply = pool_.Eval(put_subscription_, ScriptKeys(org), args);
  if (!reply.ok()) return reply.status();
  return SubscriptionOf(id, HashOf(*reply));
}

absl::StatusOr<v1::WebhookSubscription> WebhookStore::GetSubscription(absl::string_view org,
                                                                      absl::string_view id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGETALL", absl::StrCat(Prefix(org), "sub:", id)});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) {
    return absl::NotFoundError(absl::StrCat("subscription_id: no subscription ", id));
  }
  return SubscriptionOf(id, HashOf(*reply));
}

absl::StatusOr<std::vector<v1::WebhookSubscription>> WebhookStore::ListSubscriptions(
    absl::string_view org) {
  absl::StatusOr<Reply> ids = pool_.Run({"SMEMBERS", absl::StrCat(Prefix(org), "subs")});
  if (!ids.ok()) return ids.status();
  std::vector<common::redis::Command> reads;
  for (const Reply& id : ids->elements) {
    reads.push_back({"HGETALL", absl::StrCat(Prefix(org), "sub:", id.str)});
  }
  std::vector<v1::WebhookSubscription> out;
  if (reads.empty()) return out;
  auto replies = pool_.Pipeline(reads);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    if (!(*replies)[i].ok()) return (*replies)[i].status();
    if ((*replies)[i]->elements.empty()) continue;  // deleted meanwhile
    out.push_back(SubscriptionOf(ids->elements[i].str, HashOf(*(*replies)[i])));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.create_time().seconds() != b.create_time().seconds()
               ? a.create_time().seconds() < b.create_time().seconds()
               : a.subscription_id() < b.subscription_id();
  });
  return out;
}

absl::Status WebhookStore::DeleteSubscription(absl::string_view org, absl::string_view id) {
  return pool_.Eval(delete_subscription_, ScriptKeys(org), {std::string(id)}).status();
}

absl::Status WebhookStore::RotateSecret(absl::string_view org, absl::string_view id,
                                        absl::string_view secret) {
  return pool_.Eval(rotate_secret_, {Prefix(org)}, {std::string(id), std::string(secret)}).status();
}

absl::StatusOr<std::pair<std::vector<v1::Delivery>, int64_t>> WebhookStore::ListDeliveries(
    absl::string_view org, absl::string_view id, int64_t offset, int page_size) {
  std::string prefix = Prefix(org);
  std::string queue = absl::StrCat(prefix, "q:", id);
  std::string done = absl::StrCat(prefix, "done:", id);
  auto lengths = pool_.Pipeline({{"EXISTS", absl::StrCat(prefix, "sub:", id)}, {"LLEN", queue}});
  if (!lengths.ok()) return lengths.status();
  for (const auto& r : *lengths) {
    if (!r.ok()) return r.status();
  }
  if ((*lengths)[0]->integer == 0) {
    return absl::NotFoundError(absl::StrCat("subscription_id: no subscription ", id));
  }
  int64_t pending = (*lengths)[1]->integer;
  int64_t end = offset + page_size;  // exclusive, over pending ++ finished
  std::vector<common::redis::Command> ranges;
  if (offset < pending) {
    ranges.push_back({"LRANGE", queue, absl::StrCat(offset), absl::StrCat(std::min(end, pending) - 1)});
  }
  if (end > pending) {
    ranges.push_back({"LRANGE", done, absl::StrCat(std::max<int64_t>(0, offset - pending)),
                      absl::StrCat(end - pending - 1)});
  }
  auto listed = pool_.Pipeline(ranges);
  if (!listed.ok()) return listed.status();
  std::vector<std::string> ids;
  for (const auto& r : *listed) {
    if (!r.ok()) return r.status();
    for (const Reply& e : r->elements) ids.push_back(e.str);
  }
  std::vector<v1::Delivery> out;
  if (ids.empty()) return std::make_pair(out, int64_t{-1});
  std::vector<common::redis::Command> reads;
  for (const std::string& did : ids) reads.push_back({"HGETALL", absl::StrCat(prefix, "d:", did)});
  auto hashes = pool_.Pipeline(reads);
  if (!hashes.ok()) return hashes.status();
  for (size_t i = 0; i < hashes->size(); ++i) {
    if (!(*hashes)[i].ok()) return (*hashes)[i].status();
    if ((*hashes)[i]->elements.empty()) continue;  // trimmed meanwhile
    out.push_back(DeliveryOf(ids[i], HashOf(*(*hashes)[i])));
  }
  int64_t next = static_cast<int64_t>(ids.size()) < page_size ? -1 : end;
  return std::make_pair(std::move(out), next);
}

absl::StatusOr<v1::Delivery> WebhookStore::Redeliver(absl::string_view org, absl::string_view id,
                                                     absl::string_view delivery_id,
                                                     absl::Time now) {
  absl::StatusOr<Reply> reply =
      pool_.Eval(redeliver_, {Prefix(org)},
                 {std::string(id), std::string(delivery_id), absl::StrCat(Ms(now)),
                  absl::StrCat(limits_.max_pending)});
  if (!reply.ok()) return reply.status();
  return DeliveryOf(delivery_id, HashOf(*reply));
}

absl::StatusOr<std::vector<std::string>> WebhookStore::ReadOrgIds() {
  // Every cluster slot's org registry, each read on its own node.
  return org_registry_.Orgs();
}

absl::StatusOr<std::vector<std::vector<std::string>>> WebhookStore::GroupStreams(
    const std::vector<std::string>& orgs) {
  // One round trip per node and chunk instead of one per org; each org's
  // read goes to the node of its slot (a pipeline, not one multi-slot command).
  std::vector<common::redis::Command> reads;
  reads.reserve(orgs.size());
  for (const std::string& org : orgs) reads.push_back({"SMEMBERS", absl::StrCat(Prefix(org), "streams")});
  auto replies = common::redis::PipelineByNode(pool_, reads, /*chunk=*/500);
  if (!replies.ok()) return replies.status();
  std::vector<std::vector<std::string>> out;
  out.reserve(orgs.size());
  for (const auto& reply : *replies) {
    if (!reply.ok()) return reply.status();
    std::vector<std::string> streams;
    for (const Reply& stream : reply->elements) streams.push_back(stream.str);
    std::sort(streams.begin(), streams.end());
    out.push_back(std::move(streams));
  }
  KUDOS_CHECK(out.size() == orgs.size(), "one list of streams per org");
  return out;
}

absl::StatusOr<std::pair<int64_t, int64_t>> WebhookStore::Enqueue(
    absl::string_view org, absl::string_view stream, const std::vector<std::string>& entry_ids,
    const std::vector<OutboundEvent>& events, absl::Time now) {
  std::vector<std::string> args = {absl::StrCat(limits_.max_pending), absl::StrCat(limits_.log_size),
                                   absl::StrCat(Ms(now)), absl::StrCat(entry_ids.size()),
                                   absl::StrCat(events.size())};
  args.insert(args.end(), entry_ids.begin(), entry_ids.end());
  for (const OutboundEvent& event : events) {
    args.insert(args.end(), {event.id, event.type, absl::StrCat(event.created_ms), event.json_body,
                             event.slack_body});
  }
  absl::StatusOr<Reply> reply = pool_.Eval(enqueue_, {Prefix(org), std::string(stream)}, args);
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->elements.size() == 2, "enqueue answers {queued, refused}");
  return std::make_pair(reply->elements[0].integer, reply->elements[1].integer);
}

absl::StatusOr<std::vector<std::string>> WebhookStore::DueSubscriptions(absl::string_view org,
                                                                        absl::Time now, int limit) {
  absl::StatusOr<Reply> reply =
      pool_.Run({"ZRANGE", absl::StrCat(Prefix(org), "due"), "-inf", absl::StrCat(Ms(now)),
                 "BYSCORE", "LIMIT", "0", absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> subs;
  for (const Reply& sub : reply->elements) subs.push_back(sub.str);
  return subs;
}

absl::StatusOr<std::optional<Claimed>> WebhookStore::Claim(absl::string_view org,
                                                           absl::string_view id,
                                                           absl::string_view owner, absl::Time now,
                                                           absl::Duration lease) {
  absl::StatusOr<Reply> reply =
      pool_.Eval(claim_, {Prefix(org)},
                 {std::string(id), std::string(owner), absl::StrCat(Ms(now)),
                  absl::StrCat(absl::ToInt64Milliseconds(lease))});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<Claimed>();
  KUDOS_CHECK(reply->elements.size() == 7, "claim answers seven fields");
  Claimed claimed;
  claimed.delivery_id = reply->elements[0].str;
  claimed.event_id = reply->elements[1].str;
  claimed.event_type = reply->elements[2].str;
  claimed.body = reply->elements[3].str;
  claimed.url = reply->elements[4].str;
  claimed.secret = reply->elements[5].str;
  claimed.attempts = reply->elements[6].integer;
  return std::optional<Claimed>(std::move(claimed));
}

absl::StatusOr<bool> WebhookStore::Finish(absl::string_view org, absl::string_view id,
                                          absl::string_view delivery_id, absl::string_view owner,
                                          absl::Time now, const Outcome& outcome,
                                          absl::Time retry_at, absl::Duration retry_window,
                                          int pause_after_failures) {
  absl::StatusOr<Reply> reply = pool_.Eval(
      finish_, {Prefix(org)},
      {std::string(id), std::string(delivery_id), std::string(owner), absl::StrCat(Ms(now)),
       outcome.ok ? "1" : "0", absl::StrCat(outcome.http_status), outcome.error,
       absl::StrCat(Ms(retry_at)), absl::StrCat(absl::ToInt64Milliseconds(retry_window)),
       absl::StrCat(pause_after_failures), absl::StrCat(limits_.log_size)});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

}  // namespace integrations::webhooks
