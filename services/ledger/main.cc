// ledger_server: the points ledger (LedgerService). Flags and wiring only.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/redis/redis_client.h"
#include "services/ledger/ledger_service.h"
#include "services/ledger/ledger_store.h"

using common::config::EnvOr;

namespace {
// An integer from the environment, or `fallback` when unset or malformed.
int IntEnvOr(const char* name, int fallback) {
  int value = 0;
  return absl::SimpleAtoi(EnvOr(name, ""), &value) ? value : fallback;
}
}  // namespace

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50051"), "gRPC address to serve on");
ABSL_FLAG(std::string, redis, EnvOr("REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port");
ABSL_FLAG(int, redis_pool_size, IntEnvOr("REDIS_POOL_SIZE", 16), "Redis connections");
ABSL_FLAG(int, redis_timeout_ms, IntEnvOr("REDIS_TIMEOUT_MS", 2000),
          "timeout of each Redis call");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<common::redis::Endpoint> endpoint =
      common::redis::ParseEndpoint(absl::GetFlag(FLAGS_redis));
  if (!endpoint.ok()) {
    common::log::Error(endpoint.status().ToString());
    return 2;
  }
  common::redis::PoolOptions pool_options;
  pool_options.endpoint = *endpoint;
  pool_options.size = absl::GetFlag(FLAGS_redis_pool_size);
  pool_options.timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  common::redis::Pool pool(pool_options);

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
