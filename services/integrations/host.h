// The integrations service's host: what every area of issue 17 (webhooks,
// the Slack-compatible app, directory sync, exports) is given, and where it
// registers its gRPC services, its raw HTTP routes (forwarded by the gateway
// through integrations.v1.HttpIngressService) and its background workers.
// Each area adds itself in its own Add<Area>(Host&) (modules.h), so the
// areas never edit one another's files.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/auth/guard.h"
#include "common/grpc/module_host.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/http_ingress.pb.h"

namespace integrations {

struct Upstreams {
  std::string kudos = "127.0.0.1:50052";
  std::string ledger = "127.0.0.1:50051";
  std::string leaderboard = "127.0.0.1:50053";
};

struct HostOptions {
  Upstreams upstreams;
  // Deadline of every call to another service.
  std::chrono::milliseconds call_timeout{5000};
  // Signs this service's tokens for calls to kudos and ledger (MintServiceToken).
  std::string service_secret;
  // Signs delegated tokens (delegation.h; JwtConfig::delegation_secret).
  // Empty: delegation is off and the calls that need it answer
  // FAILED_PRECONDITION "delegation disabled: ...".
  std::string delegation_secret;
  // Development only (KUDOS_DEV_INSECURE_DEFAULTS=1 or --allow_insecure_http):
  // plain-http webhook endpoints on loopback; production requires https.
  bool allow_insecure_http = false;
};

// A raw HTTP route: called on a gRPC handler thread; must answer within the
// caller's deadline and never throw.
using HttpHandler =
    std::function<v1::HandleResponse(const v1::HandleRequest& request, absl::Time now)>;

class Host : public common::grpc_util::ModuleHost {
 public:
  Host(HostOptions options, common::redis::Pool& pool, common::auth::Guard guard);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const HostOptions& options() const { return options_; }
  common::redis::Pool& pool() { return pool_; }
  const common::auth::Guard& guard() const { return guard_; }
  // ServiceAuthorization, AddService, AddWorker, Keep, StartWorkers: ModuleHost.

  // Requests whose path starts with `path_prefix` (the longest prefix wins).
  void AddHttpRoute(std::string path_prefix, HttpHandler handler);
  // The handler for `path`, or nullptr.
  const HttpHandler* FindHttpRoute(absl::string_view path) const;

 private:
  HostOptions options_;
  common::redis::Pool& pool_;
  common::auth::Guard guard_;
  std::vector<std::pair<std::string, HttpHandler>> http_routes_;
};

}  // namespace integrations
