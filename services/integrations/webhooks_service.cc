#include "services/integrations/webhooks_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/auth/ids.h"
#include "common/grpc/status.h"
#include "services/integrations/webhooks_events.h"
#include "services/integrations/webhooks_http.h"
#include "services/integrations/webhooks_signature.h"

namespace integrations::webhooks {
namespace {

using common::grpc_util::ToGrpcStatus;
using Fields = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kMaxDeliveryIdBytes = 300;
// Past any real log: the pending cap plus the log size stay far below it.
constexpr int64_t kMaxPageOffset = 1000000;

std::string NewSubscriptionId() {
  static absl::Mutex mutex(absl::kConstInit);
  static absl::BitGen* random = new absl::BitGen();
  absl::MutexLock lock(&mutex);
  return absl::StrCat("wh_", absl::Hex(absl::Uniform<uint64_t>(*random), absl::kZeroPad16));
}

// ",a,b," (the scripts look types up with ",type,"), known and distinct.
absl::StatusOr<std::string> TypesField(const google::protobuf::RepeatedPtrField<std::string>& types) {
  if (types.empty()) return absl::InvalidArgumentError("event_types: at least one event type");
  std::vector<std::string> distinct;
  for (const std::string& type : types) {
    if (absl::Status s = CheckEventType(type); !s.ok()) return s;
    if (std::find(distinct.begin(), distinct.end(), type) == distinct.end()) distinct.push_back(type);
  }
  return absl::StrCat(",", absl::StrJoin(distinct, ","), ",");
}

absl::StatusOr<std::string> FormatField(v1::WebhookFormat format) {
  switch (format) {
    case v1::WEBHOOK_FORMAT_UNSPECIFIED:
    case v1::WEBHOOK_FORMAT_JSON:
      return std::string("json");
    case v1::WEBHOOK_FORMAT_SLACK:
      return std::string("slack");
    default:
      return absl::InvalidArgumentError("format: JSON or SLACK");
  }
}

absl::Status CheckDescription(absl::string_view description, size_t max_bytes) {
  if (description.size() <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("description: ", description.size(), " bytes, at most ", max_bytes));
}

absl::Status CheckDeliveryId(absl::string_view id) {
  bool printable = std::all_of(id.begin(), id.end(), [](char c) { return c > ' ' && c < 127; });
  if (!id.empty() && id.size() <= kMaxDeliveryIdBytes && printable) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "delivery_id: 1..", kMaxDeliveryIdBytes, " printable characters, as ListDeliveries gives it"));
}

}  // namespace

absl::Status CheckUrl(absl::string_view url, bool allow_insecure_http, size_t max_bytes) {
  if (url.empty() || url.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("url: 1..", max_bytes, " bytes"));
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 127) {
      return absl::InvalidArgumentError("url: no whitespace or control characters");
    }
  }
  absl::string_view rest = url;
  bool https = absl::ConsumePrefix(&rest, "https://");
  bool http = !https && absl::ConsumePrefix(&rest, "http://");
  if (!https && !(http && allow_insecure_http)) {
    return absl::InvalidArgumentError(
        http ? "url: must be https:// (plain http only on a development server)"
             : "url: must start with https://");
  }
  absl::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.empty() || absl::StrContains(host, '@')) {
    return absl::InvalidArgumentError("url: needs a host (and no user:password@)");
  }
  return absl::OkStatus();
}

absl::Status CheckUrlHost(absl::string_view url, bool allow_private_addresses) {
  if (allow_private_addresses) return absl::OkStatus();
  absl::string_view rest = url.substr(std::min(url.size(), url.find("://") + 3));
  absl::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  std::string literal;
  if (absl::ConsumePrefix(&host, "[")) {
    literal = std::string(host.substr(0, host.find(']')));
  } else {
    literal = std::string(host.substr(0, host.find(':')));
  }
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  const sockaddr* address = nullptr;
  if (inet_pton(AF_INET, literal.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    address = reinterpret_cast<const sockaddr*>(&v4);
  } else if (inet_pton(AF_INET6, literal.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    address = reinterpret_cast<const sockaddr*>(&v6);
  }
  if (address == nullptr || IsPublicAddress(address)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "url: the host must be a public address (not loopback, private, link-local, "
      "unique-local, unspecified or multicast)");
}

WebhookServiceImpl::WebhookServiceImpl(const common::auth::Guard& guard, WebhookStore& store,
                                       ServiceLimits limits)
    : guard_(guard), store_(store), limits_(limits) {}

absl::StatusOr<std::string> WebhookServiceImpl::AdminOrg(grpc::ServerContext& context) const {
  absl::StatusOr<common::auth::Principal> who = guard_.Authenticate(context);
  if (!who.ok()) return who.status();
  if (!who->is_admin()) {
    return absl::PermissionDeniedError("only admins manage webhook subscriptions");
  }
  return who->org;
}

grpc::Status WebhookServiceImpl::CreateSubscription(grpc::ServerContext* context,
                                                    const v1::CreateSubscriptionRequest* request,
                                                    v1::CreateSubscriptionResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = CheckUrl(request->url(), limits_.allow_insecure_http, limits_.max_url_bytes);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (absl::Status s = CheckUrlHost(request->url(), limits_.allow_private_addresses); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<std::string> types = TypesField(request->event_types());
  if (!types.ok()) return ToGrpcStatus(types.status());
  absl::StatusOr<std::string> format = FormatField(request->format());
  if (!format.ok()) return ToGrpcStatus(format.status());
  if (absl::Status s = CheckDescription(request->description(), limits_.max_description_bytes);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<std::string> secret = NewSigningSecret();
  if (!secret.ok()) return ToGrpcStatus(secret.status());
  Fields fields = {{"url", request->url()},
                   {"types", *types},
                   {"format", *format},
                   {"description", request->description()},
                   {"secret", *secret}};
  absl::StatusOr<v1::WebhookSubscription> sub =
      store_.PutSubscription(*org, "create", NewSubscriptionId(), fields, absl::Now());
  if (!sub.ok()) return ToGrpcStatus(sub.status());
  *response->mutable_subscription() = *std::move(sub);
  response->set_signing_secret(*secret);
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::ListSubscriptions(grpc::ServerContext* context,
                                                   const v1::ListSubscriptionsRequest*,
                                                   v1::ListSubscriptionsResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  absl::StatusOr<std::vector<v1::WebhookSubscription>> subs = store_.ListSubscriptions(*org);
  if (!subs.ok()) return ToGrpcStatus(subs.status());
  for (v1::WebhookSubscription& sub : *subs) *response->add_subscriptions() = std::move(sub);
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::GetSubscription(grpc::ServerContext* context,
                                                 const v1::GetSubscriptionRequest* request,
                                                 v1::GetSubscriptionResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<v1::WebhookSubscription> sub =
      store_.GetSubscription(*org, request->subscription_id());
  if (!sub.ok()) return ToGrpcStatus(sub.status());
  *response->mutable_subscription() = *std::move(sub);
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::UpdateSubscription(grpc::ServerContext* context,
                                                    const v1::UpdateSubscriptionRequest* request,
                                                    v1::UpdateSubscriptionResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  std::vector<std::string> mask(request->update_mask().begin(), request->update_mask().end());
  if (mask.empty()) mask = {"url", "event_types", "paused", "description"};
  Fields fields;
  for (const std::string& path : mask) {
    if (path == "url") {
      absl::Status s = CheckUrl(request->url(), limits_.allow_insecure_http, limits_.max_url_bytes);
      if (!s.ok()) return ToGrpcStatus(s);
      s = CheckUrlHost(request->url(), limits_.allow_private_addresses);
      if (!s.ok()) return ToGrpcStatus(s);
      fields.emplace_back("url", request->url());
    } else if (path == "event_types") {
      absl::StatusOr<std::string> types = TypesField(request->event_types());
      if (!types.ok()) return ToGrpcStatus(types.status());
      fields.emplace_back("types", *types);
    } else if (path == "paused") {
      fields.emplace_back("paused", request->paused() ? "1" : "0");
    } else if (path == "description") {
      absl::Status s = CheckDescription(request->description(), limits_.max_description_bytes);
      if (!s.ok()) return ToGrpcStatus(s);
      fields.emplace_back("description", request->description());
    } else {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "update_mask: unknown field '", path, "'; url, event_types, paused or description")));
    }
  }
  absl::StatusOr<v1::WebhookSubscription> sub =
      store_.PutSubscription(*org, "update", request->subscription_id(), fields, absl::Now());
  if (!sub.ok()) return ToGrpcStatus(sub.status());
  *response->mutable_subscription() = *std::move(sub);
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::DeleteSubscription(grpc::ServerContext* context,
                                                    const v1::DeleteSubscriptionRequest* request,
                                                    v1::DeleteSubscriptionResponse*) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return ToGrpcStatus(store_.DeleteSubscription(*org, request->subscription_id()));
}

grpc::Status WebhookServiceImpl::RotateSecret(grpc::ServerContext* context,
                                              const v1::RotateSecretRequest* request,
                                              v1::RotateSecretResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<std::string> secret = NewSigningSecret();
  if (!secret.ok()) return ToGrpcStatus(secret.status());
  if (absl::Status s = store_.RotateSecret(*org, request->subscription_id(), *secret); !s.ok()) {
    return ToGrpcStatus(s);
  }
  response->set_signing_secret(*secret);
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::ListDeliveries(grpc::ServerContext* context,
                                                const v1::ListDeliveriesRequest* request,
                                                v1::ListDeliveriesResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  int page_size = request->page_size() == 0 ? limits_.default_page_size : request->page_size();
  if (page_size < 0 || page_size > limits_.max_page_size) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("page_size: 0..", limits_.max_page_size, " (0 = ", limits_.default_page_size, ")")));
  }
  int64_t offset = 0;
  if (!request->page_token().empty() &&
      (!absl::SimpleAtoi(request->page_token(), &offset) || offset < 0 || offset > kMaxPageOffset)) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("page_token: malformed; pass next_page_token as given"));
  }
  auto page = store_.ListDeliveries(*org, request->subscription_id(), offset, page_size);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (v1::Delivery& delivery : page->first) *response->add_deliveries() = std::move(delivery);
  if (page->second >= 0) response->set_next_page_token(absl::StrCat(page->second));
  return grpc::Status::OK;
}

grpc::Status WebhookServiceImpl::Redeliver(grpc::ServerContext* context,
                                           const v1::RedeliverRequest* request,
                                           v1::RedeliverResponse* response) {
  absl::StatusOr<std::string> org = AdminOrg(*context);
  if (!org.ok()) return ToGrpcStatus(org.status());
  if (absl::Status s = common::auth::CheckId("subscription_id", request->subscription_id());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (absl::Status s = CheckDeliveryId(request->delivery_id()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<v1::Delivery> delivery =
      store_.Redeliver(*org, request->subscription_id(), request->delivery_id(), absl::Now());
  if (!delivery.ok()) return ToGrpcStatus(delivery.status());
  *response->mutable_delivery() = *std::move(delivery);
  return grpc::Status::OK;
}

}  // namespace integrations::webhooks
