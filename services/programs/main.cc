// programs_server (issue 18): program budgets, awards and nominations, and
// automatic celebrations. Flags and wiring only; each area registers itself
// through programs_modules.h.
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
#include "services/programs/programs_host.h"
#include "services/programs/programs_modules.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50055"), "gRPC address to serve on");
ABSL_FLAG(std::string, kudos, EnvOr("KUDOS_ADDR", "127.0.0.1:50052"), "kudos service host:port");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service host:port");
ABSL_FLAG(int, call_timeout_ms, static_cast<int>(IntEnvOr("CALL_TIMEOUT_MS", 5000, 1)),
          "deadline of each call to another service");
ABSL_FLAG(int, awards_sweep_interval_ms,
          static_cast<int>(IntEnvOr("AWARDS_SWEEP_INTERVAL_MS", 5000, 1)),
          "period of the sweep that finishes award payments left in flight");

namespace {

absl::Status AddModules(programs::Host& host) {
  for (auto add : {programs::AddAwards, programs::AddCelebrations}) {
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

  programs::HostOptions options;
  options.upstreams.kudos = absl::GetFlag(FLAGS_kudos);
  options.upstreams.ledger = absl::GetFlag(FLAGS_ledger);
  options.call_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_call_timeout_ms));
  options.sweep_interval =
      std::chrono::milliseconds(absl::GetFlag(FLAGS_awards_sweep_interval_ms));
  options.service_secret = jwt.service_secret;
  // People's own tokens only: no delegated token reaches budgets or awards.
  jwt.delegating_services.clear();
  common::auth::Authenticator auth(jwt);
  programs::Host host(std::move(options), pool,
                      common::auth::Guard(auth, common::ratelimit::OptionsFromFlags()));
  absl::Status added = AddModules(host);
  if (!added.ok()) {
    common::log::Error(absl::StrCat("programs: ", added.ToString()));
    return 2;
  }

  common::grpc_util::ServerOptions server;
  server.address = absl::GetFlag(FLAGS_listen);
  server.service_name = "programs";
  server.services = host.services();
  host.StartWorkers();
  absl::Status status = common::grpc_util::RunServer(server);
  host.StopWorkers();
  if (!status.ok()) {
    common::log::Error(status.ToString());
    return 1;
  }
  return 0;
}
