#include "common/redis/pool_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "common/config/env.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, redis, EnvOr("REDIS_ADDR", "127.0.0.1:6379"),
          "Redis host:port (env REDIS_ADDR)");
ABSL_FLAG(int, redis_pool_size, static_cast<int>(IntEnvOr("REDIS_POOL_SIZE", 16, 1)),
          "Redis connections in the pool (env REDIS_POOL_SIZE)");
ABSL_FLAG(int, redis_timeout_ms, static_cast<int>(IntEnvOr("REDIS_TIMEOUT_MS", 2000, 1)),
          "timeout of each Redis call (env REDIS_TIMEOUT_MS)");

namespace common::redis {

absl::StatusOr<PoolOptions> PoolOptionsFromFlags() {
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(absl::GetFlag(FLAGS_redis));
  if (!endpoint.ok()) return endpoint.status();
  PoolOptions options;
  options.endpoint = *endpoint;
  options.size = absl::GetFlag(FLAGS_redis_pool_size);
  options.timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  return options;
}

}  // namespace common::redis
