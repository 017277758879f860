#include "services/integrations/webhooks_store.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
  return common::redis::Script(std::move(name), absl::StrCat(kWebhooksLibLua, "\n", body));
}

// NEED_KEYS rounds one call runs at most: a round adds what the data named,
// so three cover a subscription added meanwhile, then its deliveries.
constexpr int kMaxKeyRounds = 3;
// The keys before the subscriptions' (webhooks_lib.lua): subs, streams, due,
// the four event streams.
constexpr int kFixedKeys = 3 + kSourceCount;

// A script's NEED_KEYS answer: {{'NEED_KEYS'}, {subscription ids}, {delivery ids}}.
bool IsNeedKeys(const Reply& reply) {
  return reply.type == Reply::Type::kArray && reply.elements.size() == 3 &&
         reply.elements[0].type == Reply::Type::kArray &&
         reply.elements[0].elements.size() == 1 &&
         reply.elements[0].elements[0].str == "NEED_KEYS";
}

std::vector<std::string> Strings(const Reply& reply) {
  std::vector<std::string> out;
  out.reserve(reply.elements.size());
  for (const Reply& element : reply.elements) out.push_back(element.str);
  return out;
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

std::string SubscriptionsKey(absl::string_view org) {
  return absl::StrCat(WebhookStore::Prefix(org), "subs");
}
std::string GroupStreamsKey(absl::string_view org) {
  return absl::StrCat(WebhookStore::Prefix(org), "streams");
}
std::string DueKey(absl::string_view org) { return absl::StrCat(WebhookStore::Prefix(org), "due"); }
std::string SubscriptionKey(absl::string_view org, absl::string_view id) {
  return absl::StrCat(WebhookStore::Prefix(org), "sub:", id);
}
std::string QueueKey(absl::string_view org, absl::string_view id) {
  return absl::StrCat(WebhookStore::Prefix(org), "q:", id);
}
std::string LogKey(absl::string_view org, absl::string_view id) {
  return absl::StrCat(WebhookStore::Prefix(org), "done:", id);
}
std::string DeliveryKey(absl::string_view org, absl::string_view delivery_id) {
  return absl::StrCat(WebhookStore::Prefix(org), "d:", delivery_id);
}

int ScriptKeysNeeded(const StoreLimits& limits, int read_batch) {
  const int64_t subscriptions = int64_t{limits.max_subscriptions} + 1;  // + one created meanwhile
  const int64_t deliveries =
      std::max<int64_t>(int64_t{limits.max_pending} + limits.log_size + 1,
                        subscriptions * (int64_t{read_batch} + limits.log_size));
  const int64_t keys = kFixedKeys + 3 * subscriptions + deliveries;
  return static_cast<int>(std::min<int64_t>(keys, std::numeric_limits<int>::max()));
}

size_t WebhookStore::KeyPlan::AddSubscriptions(const std::vector<std::string>& ids) {
  size_t added = 0;
  for (const std::string& id : ids) {
    if (absl::c_linear_search(subscriptions, id)) continue;
    subscriptions.push_back(id);
    ++added;
  }
  return added;
}

size_t WebhookStore::KeyPlan::AddDeliveries(const std::vector<std::string>& ids) {
  absl::flat_hash_set<std::string> known(deliveries.begin(), deliveries.end());
  size_t added = 0;
  for (const std::string& id : ids) {
    if (!known.insert(id).second) continue;
    deliveries.push_back(id);
    ++added;
  }
  return added;
}

std::vector<std::string> WebhookStore::PlanKeys(absl::string_view org, const KeyPlan& plan) {
  std::vector<std::string> keys = {SubscriptionsKey(org), GroupStreamsKey(org), DueKey(org)};
  for (int i = 0; i < kSourceCount; ++i) keys.push_back(StreamKey(static_cast<Source>(i), org));
  for (const std::string& id : plan.subscriptions) {
    keys.insert(keys.end(), {SubscriptionKey(org, id), QueueKey(org, id), LogKey(org, id)});
  }
  for (const std::string& id : plan.deliveries) keys.push_back(DeliveryKey(org, id));
  KUDOS_CHECK(keys.size() == kFixedKeys + 3 * plan.subscriptions.size() + plan.deliveries.size(),
              "the KEYS layout webhooks_lib.lua reads");
  return keys;
}

std::vector<std::string> WebhookStore::PlanArgs(const KeyPlan& plan,
                                                const std::vector<std::string>& args) {
  std::vector<std::string> argv = {absl::StrCat(plan.subscriptions.size()),
                                   absl::StrCat(plan.deliveries.size())};
  argv.reserve(2 + plan.subscriptions.size() + plan.deliveries.size() + args.size());
  argv.insert(argv.end(), plan.subscriptions.begin(), plan.subscriptions.end());
  argv.insert(argv.end(), plan.deliveries.begin(), plan.deliveries.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

absl::StatusOr<Reply> WebhookStore::EvalPlanned(
    const common::redis::Script& script, absl::string_view org, KeyPlan plan,
    const std::vector<std::string>& args,
    const std::function<void(const std::vector<std::string>&, KeyPlan&)>& also) {
  for (int round = 0; round < kMaxKeyRounds; ++round) {
    std::vector<std::string> keys = PlanKeys(org, plan);
    if (keys.size() > static_cast<size_t>(limits_.max_script_keys)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "webhooks: ", script.name(), " of org '", org, "' would declare ", keys.size(),
          " keys, at most ", limits_.max_script_keys));
    }
    absl::StatusOr<Reply> reply = pool_.Eval(script, keys, PlanArgs(plan, args));
    if (!reply.ok() || !IsNeedKeys(*reply)) return reply;
    std::vector<std::string> subscriptions = Strings(reply->elements[1]);
    size_t added = plan.AddSubscriptions(subscriptions) +
                   plan.AddDeliveries(Strings(reply->elements[2]));
    if (added == 0) {
      // The script asked for keys it had: it and PlanKeys disagree.
      return absl::InternalError(absl::StrCat("webhooks: ", script.name(),
                                              " asked for keys it was given"));
    }
    if (also && !subscriptions.empty()) also(subscriptions, plan);
  }
  return absl::UnavailableError(absl::StrCat(
      "webhooks: ", script.name(), " of org '", org, "': the subscriptions or deliveries it touches changed ",
      kMaxKeyRounds, " times while it ran; retry"));
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
  // The script touches every subscription (the groups follow their types)
  // and this one's head: read first, so it usually runs once.
  auto known = pool_.Pipeline({{"SMEMBERS", SubscriptionsKey(org)}, {"LINDEX", QueueKey(org, id), "0"}});
  if (!known.ok()) return known.status();
  for (const auto& r : *known) {
    if (!r.ok()) return r.status();
  }
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  plan.AddSubscriptions(Strings(*(*known)[0]));
  if (!(*known)[1]->is_nil()) plan.AddDeliveries({(*known)[1]->str});
  absl::StatusOr<Reply> reply = EvalPlanned(put_subscription_, org, std::move(plan), args);
  if (!reply.ok()) return reply.status();
  return SubscriptionOf(id, HashOf(*reply));
}

absl::StatusOr<v1::WebhookSubscription> WebhookStore::GetSubscription(absl::string_view org,
                                                                      absl::string_view id) {
  absl::StatusOr<Reply> reply = pool_.Run({"HGETALL", SubscriptionKey(org, id)});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) {
    return absl::NotFoundError(absl::StrCat("subscription_id: no subscription ", id));
  }
  return SubscriptionOf(id, HashOf(*reply));
}

absl::StatusOr<std::vector<v1::WebhookSubscription>> WebhookStore::ListSubscriptions(
    absl::string_view org) {
  absl::StatusOr<Reply> ids = pool_.Run({"SMEMBERS", SubscriptionsKey(org)});
  if (!ids.ok()) return ids.status();
  std::vector<common::redis::Command> reads;
  for (const Reply& id : ids->elements) {
    reads.push_back({"HGETALL", SubscriptionKey(org, id.str)});
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
  // The script touches every subscription (the groups follow their types)
  // and every delivery of this one: read first, so it usually runs once.
  auto known = pool_.Pipeline({{"SMEMBERS", SubscriptionsKey(org)},
                               {"LRANGE", QueueKey(org, id), "0", "-1"},
                               {"LRANGE", LogKey(org, id), "0", "-1"}});
  if (!known.ok()) return known.status();
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  for (size_t i = 0; i < known->size(); ++i) {
    if (!(*known)[i].ok()) return (*known)[i].status();
    if (i == 0) {
      plan.AddSubscriptions(Strings(*(*known)[i]));
    } else {
      plan.AddDeliveries(Strings(*(*known)[i]));
    }
  }
  return EvalPlanned(delete_subscription_, org, std::move(plan), {std::string(id)}).status();
}

absl::Status WebhookStore::RotateSecret(absl::string_view org, absl::string_view id,
                                        absl::string_view secret) {
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  return EvalPlanned(rotate_secret_, org, std::move(plan), {std::string(id), std::string(secret)})
      .status();
}

absl::StatusOr<std::pair<std::vector<v1::Delivery>, int64_t>> WebhookStore::ListDeliveries(
    absl::string_view org, absl::string_view id, int64_t offset, int page_size) {
  std::string queue = QueueKey(org, id);
  std::string done = LogKey(org, id);
  auto lengths = pool_.Pipeline({{"EXISTS", SubscriptionKey(org, id)}, {"LLEN", queue}});
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
  for (const std::string& did : ids) reads.push_back({"HGETALL", DeliveryKey(org, did)});
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
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  plan.AddDeliveries({std::string(delivery_id)});
  absl::StatusOr<Reply> reply =
      EvalPlanned(redeliver_, org, std::move(plan),
                  {std::string(id), std::string(delivery_id), absl::StrCat(Ms(now)),
                   absl::StrCat(limits_.max_pending)});
  if (!reply.ok()) return reply.status();
  return DeliveryOf(delivery_id, HashOf(*reply));
}

absl::StatusOr<std::vector<std::string>> WebhookStore::ReadOrgIds() {
  // Every cluster slot's org registry, each read on its own node.
  return org_registry_.Orgs();
}

absl::StatusOr<std::vector<OrgWebhooks>> WebhookStore::GroupStreams(
    const std::vector<std::string>& orgs) {
  // One round trip per node and chunk instead of one per org; each org's
  // reads go to the node of its slot (a pipeline, not one multi-slot command).
  std::vector<common::redis::Command> reads;
  reads.reserve(2 * orgs.size());
  for (const std::string& org : orgs) {
    reads.push_back({"SMEMBERS", GroupStreamsKey(org)});
    reads.push_back({"SMEMBERS", SubscriptionsKey(org)});
  }
  auto replies = common::redis::PipelineByNode(pool_, reads, /*chunk=*/500);
  if (!replies.ok()) return replies.status();
  KUDOS_CHECK(replies->size() == reads.size(), "one reply per read");
  std::vector<OrgWebhooks> out;
  out.reserve(orgs.size());
  for (size_t i = 0; i < replies->size(); i += 2) {
    if (!(*replies)[i].ok()) return (*replies)[i].status();
    if (!(*replies)[i + 1].ok()) return (*replies)[i + 1].status();
    OrgWebhooks org;
    org.streams = Strings(*(*replies)[i]);
    std::sort(org.streams.begin(), org.streams.end());
    org.subscriptions = Strings(*(*replies)[i + 1]);
    out.push_back(std::move(org));
  }
  KUDOS_CHECK(out.size() == orgs.size(), "one list of streams per org");
  return out;
}

absl::StatusOr<std::pair<int64_t, int64_t>> WebhookStore::Enqueue(
    absl::string_view org, absl::string_view stream, const std::vector<std::string>& entry_ids,
    const std::vector<OutboundEvent>& events, absl::Time now,
    const std::vector<std::string>& subscriptions) {
  Source source;
  if (!SourceOfStream(org, stream, &source)) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhooks: '", stream, "' is not an event stream of org '", org, "'"));
  }
  // The deliveries a subscription may get from this batch (which match its
  // types is for the script to say: declaring the others costs nothing).
  auto deliveries_of = [&events](const std::vector<std::string>& subs, KeyPlan& plan) {
    std::vector<std::string> ids;
    ids.reserve(subs.size() * events.size());
    for (const std::string& sub : subs) {
      for (const OutboundEvent& event : events) ids.push_back(absl::StrCat(sub, ".", event.id));
    }
    plan.AddDeliveries(ids);
  };
  KeyPlan plan;
  plan.AddSubscriptions(subscriptions);
  deliveries_of(plan.subscriptions, plan);
  // KEYS[4..7] are the event streams in Source order (PlanKeys).
  std::vector<std::string> args = {absl::StrCat(4 + static_cast<int>(source)),
                                   absl::StrCat(limits_.max_pending), absl::StrCat(limits_.log_size),
                                   absl::StrCat(Ms(now)), absl::StrCat(entry_ids.size()),
                                   absl::StrCat(events.size())};
  args.insert(args.end(), entry_ids.begin(), entry_ids.end());
  for (const OutboundEvent& event : events) {
    args.insert(args.end(), {event.id, event.type, absl::StrCat(event.created_ms), event.json_body,
                             event.slack_body});
  }
  absl::StatusOr<Reply> reply = EvalPlanned(enqueue_, org, std::move(plan), args, deliveries_of);
  if (!reply.ok()) return reply.status();
  KUDOS_CHECK(reply->elements.size() == 2, "enqueue answers {queued, refused}");
  return std::make_pair(reply->elements[0].integer, reply->elements[1].integer);
}

absl::StatusOr<std::vector<DueSubscription>> WebhookStore::DueSubscriptions(
    absl::string_view org, absl::Time now, int limit) {
  absl::StatusOr<Reply> reply = pool_.Run({"ZRANGE", DueKey(org), "-inf", absl::StrCat(Ms(now)),
                                           "BYSCORE", "LIMIT", "0", absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  std::vector<DueSubscription> due;
  if (reply->elements.empty()) return due;
  // Their heads, for the claims' keys: one round trip for all of them.
  std::vector<common::redis::Command> heads;
  for (const Reply& sub : reply->elements) {
    due.push_back({sub.str, ""});
    heads.push_back({"LINDEX", QueueKey(org, sub.str), "0"});
  }
  auto replies = pool_.Pipeline(heads);
  if (!replies.ok()) return replies.status();
  KUDOS_CHECK(replies->size() == due.size(), "one head per due subscription");
  for (size_t i = 0; i < due.size(); ++i) {
    if (!(*replies)[i].ok()) return (*replies)[i].status();
    if (!(*replies)[i]->is_nil()) due[i].head = (*replies)[i]->str;
  }
  return due;
}

absl::StatusOr<std::optional<Claimed>> WebhookStore::Claim(absl::string_view org,
                                                           absl::string_view id,
                                                           absl::string_view owner, absl::Time now,
                                                           absl::Duration lease,
                                                           absl::string_view head) {
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  if (!head.empty()) plan.AddDeliveries({std::string(head)});
  absl::StatusOr<Reply> reply =
      EvalPlanned(claim_, org, std::move(plan),
                  {std::string(id), std::string(owner), absl::StrCat(Ms(now)),
                   absl::StrCat(absl::ToInt64Milliseconds(lease)), absl::StrCat(limits_.log_size)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<Claimed>();
  KUDOS_CHECK(reply->elements.size() == 8, "claim answers seven fields and Finish's hint");
  Claimed claimed;
  claimed.delivery_id = reply->elements[0].str;
  claimed.event_id = reply->elements[1].str;
  claimed.event_type = reply->elements[2].str;
  claimed.body = reply->elements[3].str;
  claimed.url = reply->elements[4].str;
  claimed.secret = reply->elements[5].str;
  claimed.attempts = reply->elements[6].integer;
  claimed.finish_touches = Strings(reply->elements[7]);
  return std::optional<Claimed>(std::move(claimed));
}

absl::StatusOr<bool> WebhookStore::Finish(absl::string_view org, absl::string_view id,
                                          absl::string_view delivery_id, absl::string_view owner,
                                          absl::Time now, const Outcome& outcome,
                                          absl::Time retry_at, absl::Duration retry_window,
                                          int pause_after_failures,
                                          const std::vector<std::string>& touches) {
  KeyPlan plan;
  plan.AddSubscriptions({std::string(id)});
  plan.AddDeliveries({std::string(delivery_id)});
  plan.AddDeliveries(touches);
  absl::StatusOr<Reply> reply = EvalPlanned(
      finish_, org, std::move(plan),
      {std::string(id), std::string(delivery_id), std::string(owner), absl::StrCat(Ms(now)),
       outcome.ok ? "1" : "0", absl::StrCat(outcome.http_status), outcome.error,
       absl::StrCat(Ms(retry_at)), absl::StrCat(absl::ToInt64Milliseconds(retry_window)),
       absl::StrCat(pause_after_failures), absl::StrCat(limits_.log_size)});
  if (!reply.ok()) return reply.status();
  return reply->integer == 1;
}

}  // namespace integrations::webhooks
