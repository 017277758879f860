// integrations.v1.WebhookService: subscriptions and their delivery log,
// admins only, the org from the token.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "common/auth/guard.h"
#include "integrations/v1/webhooks.grpc.pb.h"
#include "services/integrations/webhooks_store.h"

namespace integrations::webhooks {

struct ServiceLimits {
  size_t max_url_bytes = 2048;
  size_t max_description_bytes = 200;
  int max_page_size = 200;
  int default_page_size = 50;
  // Production: https only.
  bool allow_insecure_http = false;
  // Development: IP-literal hosts may be loopback or private.
  bool allow_private_addresses = false;
};

// INVALID_ARGUMENT naming the rule, or OK: https (http when allowed), a
// host, no whitespace or control characters, at most `max_bytes`.
absl::Status CheckUrl(absl::string_view url, bool allow_insecure_http, size_t max_bytes);
// INVALID_ARGUMENT when the host is an IP literal that is not public
// (IsPublicAddress); names pass here and are checked when curl connects.
absl::Status CheckUrlHost(absl::string_view url, bool allow_private_addresses);

class WebhookServiceImpl final : public v1::WebhookService::Service {
 public:
  WebhookServiceImpl(const common::auth::Guard& guard, WebhookStore& store, ServiceLimits limits);

  grpc::Status CreateSubscription(grpc::ServerContext* context,
                                  const v1::CreateSubscriptionRequest* request,
                                  v1::CreateSubscriptionResponse* response) override;
  grpc::Status ListSubscriptions(grpc::ServerContext* context,
                                 const v1::ListSubscriptionsRequest* request,
                                 v1::ListSubscriptionsResponse* response) override;
  grpc::Status GetSubscription(grpc::ServerContext* context,
                               const v1::GetSubscriptionRequest* request,
                               v1::GetSubscriptionResponse* response) override;
  grpc::Status UpdateSubscription(grpc::ServerContext* context,
                                  const v1::UpdateSubscriptionRequest* request,
                                  v1::UpdateSubscriptionResponse* response) override;
  grpc::Status DeleteSubscription(grpc::ServerContext* context,
                                  const v1::DeleteSubscriptionRequest* request,
                                  v1::DeleteSubscriptionResponse* response) override;
  grpc::Status RotateSecret(grpc::ServerContext* context, const v1::RotateSecretRequest* request,
                            v1::RotateSecretResponse* response) override;
  grpc::Status ListDeliveries(grpc::ServerContext* context,
                              const v1::ListDeliveriesRequest* request,
                              v1::ListDeliveriesResponse* response) override;
  grpc::Status Redeliver(grpc::ServerContext* context, const v1::RedeliverRequest* request,
                         v1::RedeliverResponse* response) override;

 private:
  // The admin's org, or UNAUTHENTICATED / PERMISSION_DENIED.
  absl::StatusOr<std::string> AdminOrg(grpc::ServerContext& context) const;

  const common::auth::Guard& guard_;
  WebhookStore& store_;
  ServiceLimits limits_;
};

}  // namespace integrations::webhooks
