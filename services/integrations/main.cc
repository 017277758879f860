// integrations_server: outbound webhooks, the Slack-compatible app, directory
// sync and exports (issue 17). Flags and wiring only; each area registers
// itself through modules.h.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/ratelimit/rate_limit.h"
#include "common/redis/pool_flags.h"
#include "services/integrations/host.h"
#include "services/integrations/http_ingress_service.h"
#include "services/integrations/modules.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50054"), "gRPC address to serve on");
ABSL_FLAG(std::string, kudos, EnvOr("KUDOS_ADDR", "127.0.0.1:50052"), "kudos service host:port");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service host:port");
ABSL_FLAG(std::string, leaderboard, EnvOr("LEADERBOARD_ADDR", "127.0.0.1:50053"),
          "leaderboard service host:port");
ABSL_FLAG(int, call_timeout_ms, static_cast<int>(IntEnvOr("CALL_TIMEOUT_MS", 5000, 1)),
          "deadline of each call to another service");
ABSL_FLAG(bool, allow_insecure_http, false,
          "development only: accept plain-http webhook endpoints (also on with "
          "KUDOS_DEV_INSECURE_DEFAULTS=1); production requires https");

namespace {

absl::Status AddModules(integrations::Host& host) {
  for (auto add : {integrations::AddWebhooks, integrations::AddSlack,
                   integrations::AddDirectorySync, integrations::AddExport}) {
    absl::Status status = add(host);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<common::redis::PoolOptions> pool_options =
      common::redis::PoolOptionsFromFlags();
  if (!pool_options.ok()) {
    common::log::Error(pool_options.status().ToString());
    return 2;
  }
  common::redis::Pool pool(*pool_options);
  common::auth::JwtConfig jwt = common::auth::JwtConfigFromEnvironment();

  integrations::HostOptions options;
  options.upstreams.kudos = absl::GetFlag(FLAGS_kudos);
  options.upstreams.ledger = absl::GetFlag(FLAGS_ledger);
  options.upstreams.leaderboard = absl::GetFlag(FLAGS_leaderboard);
  options.call_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_call_timeout_ms));
  options.service_secret = jwt.service_secret;
  options.delegation_secret = jwt.delegation_secret;
  options.allow_insecure_http = absl::GetFlag(FLAGS_allow_insecure_http) ||
                                EnvOr(common::auth::kDevInsecureDefaultsEnv, "") == "1";
  // This service mints delegated tokens; it never accepts them (its admin RPCs
  // take people's own tokens only), so a leaked one cannot reach them.
  jwt.delegating_services.clear();
  common::auth::Authenticator auth(jwt);
  integrations::Host host(std::move(options), pool,
                          common::auth::Guard(auth, common::ratelimit::OptionsFromFlags()));
  absl::Status added = AddModules(host);
  if (!added.ok()) {
    common::log::Error(absl::StrCat("integrations: ", added.ToString()));
    return 2;
  }
  integrations::HttpIngressServiceImpl ingress(host);

  common::grpc_util::ServerOptions server;
  server.address = absl::GetFlag(FLAGS_listen);
  server.service_name = "integrations";
  server.services = host.services();
  server.services.push_back(&ingress);
  // A CSV import or a SCIM body is at most kMaxIngressBodyBytes, plus framing.
  server.max_receive_message_bytes = 2 * 1024 * 1024;
  host.StartWorkers();
  absl::Status status = common::grpc_util::RunServer(server);
  host.StopWorkers();
  if (!status.ok()) {
    common::log::Error(status.ToString());
    return 1;
  }
  return 0;
}
