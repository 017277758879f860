// The flags every service reads its Redis connection from (each default
// from the environment): --redis (REDIS_ADDR), --redis_pool_size
// (REDIS_POOL_SIZE), --redis_timeout_ms (REDIS_TIMEOUT_MS). Defined in
// pool_flags.cc, linked only into binaries that call PoolOptionsFromFlags.
#pragma once

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"

namespace common::redis {

// INVALID_ARGUMENT when --redis is not host:port.
absl::StatusOr<PoolOptions> PoolOptionsFromFlags();

}  // namespace common::redis
