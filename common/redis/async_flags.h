// AsyncClient's options from the same flags as the pool (pool_flags.h):
// --redis (REDIS_ADDR) is one address or a comma-separated list of seed
// nodes (standalone or cluster is detected), the credentials flags, plus
// --redis_loops (REDIS_LOOPS, 0 = one per core) and
// --redis_max_in_flight (REDIS_MAX_IN_FLIGHT, per connection).
#pragma once

#include "absl/status/statusor.h"
#include "common/redis/async_client.h"

namespace common::redis {

// INVALID_ARGUMENT when --redis is not host:port[,host:port...] or the
// credentials flags are inconsistent; FAILED_PRECONDITION when the password
// file cannot be read; UNAUTHENTICATED when the first reachable seed refuses
// the credentials or requires some. An unreachable Redis is not an error
// (logged; connections are retried).
absl::StatusOr<AsyncClientOptions> AsyncClientOptionsFromFlags();

}  // namespace common::redis
