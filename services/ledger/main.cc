// ledger_server: the points ledger (LedgerService). Flags and wiring only.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/redis/pool_flags.h"
#include "services/ledger/ledger_service.h"
#include "services/ledger/ledger_store.h"

using common::config::EnvOr;

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50051"), "gRPC address to serve on");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<common::redis::PoolOptions> pool_options =
      common::redis::PoolOptionsFromFlags();
  if (!pool_options.ok()) {
    common::log::Error(pool_options.status().ToString());
    return 2;
  }
  common::redis::Pool pool(*pool_options);

  common::auth::Authenticator auth(common::auth::JwtConfigFromEnvironment());
  ledger::LedgerStore store(pool);
  // Rate limits: --rate_limit_* flags (common/ratelimit/rate_limit.h).
  ledger::LedgerServiceImpl service(
      common::auth::Guard(auth, common::ratelimit::OptionsFromFlags()), store);

  common::grpc_util::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_listen);
  options.service_name = "ledger";
  options.services = {&service};
  // The largest valid PostTransfers (100 transfers with 16 tags of 256-byte
  // keys and values each) is about 1 MB; leave room so a valid request is
  // never refused by the transport with RESOURCE_EXHAUSTED, which callers
  // would mistake for an allowance refusal.
  options.max_receive_message_bytes = 2 * 1024 * 1024;
  absl::Status status = common::grpc_util::RunServer(options);
  if (!status.ok()) {
    common::log::Error(status.ToString());
    return 1;
  }
  return 0;
}
